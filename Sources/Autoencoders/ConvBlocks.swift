import Foundation
import ModelIO
import Tensor

// Convolutional building blocks shared by the VAR VQ-VAE (taming/LDM key names) and diffusers' AutoencoderKL
// (used by DiT). Each block is loaded from an archive under a key prefix with configurable sub-key names, so
// the same code serves both layouts.

/// Key names inside a ResNet block.
public struct ResnetKeys: Sendable {
    public var norm1 = "norm1", conv1 = "conv1", norm2 = "norm2", conv2 = "conv2"
    /// 1x1 shortcut when channel counts differ: "nin_shortcut" (taming/VAR) or "conv_shortcut" (diffusers).
    public var shortcut = "nin_shortcut"
    public init(shortcut: String = "nin_shortcut") { self.shortcut = shortcut }
    public static let taming = ResnetKeys()
    public static let diffusers = ResnetKeys(shortcut: "conv_shortcut")
}

/// h = conv1(silu(norm1(x))); h = conv2(silu(norm2(h))); out = shortcut(x) + h. (Dropout is identity at inference.)
public struct ResnetBlock: Sendable {
    public var norm1: GroupNorm, conv1: Conv2d, norm2: GroupNorm, conv2: Conv2d
    public var shortcut: Conv2d?

    public init(norm1: GroupNorm, conv1: Conv2d, norm2: GroupNorm, conv2: Conv2d, shortcut: Conv2d?) {
        self.norm1 = norm1; self.conv1 = conv1; self.norm2 = norm2; self.conv2 = conv2; self.shortcut = shortcut
    }

    public init(
        _ r: WeightReader, inChannels: Int, outChannels: Int? = nil, groups: Int = 32, eps: Float,
        keys: ResnetKeys = .taming
    ) throws {
        norm1 = try r.groupNorm(keys.norm1, channels: inChannels, groups: groups, eps: eps)
        conv1 = try r.conv(keys.conv1, inChannels: inChannels, outChannels: outChannels)
        let out = conv1.outChannels
        norm2 = try r.groupNorm(keys.norm2, channels: out, groups: groups, eps: eps)
        conv2 = try r.conv(keys.conv2, inChannels: out, outChannels: out)
        if inChannels != out {
            shortcut = try r.conv(keys.shortcut, inChannels: inChannels, outChannels: out)
        } else {
            shortcut = nil
        }
    }

    public var outChannels: Int { conv2.outChannels }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var h = conv1(norm1(x).silu())
        h = conv2(norm2(h).silu())
        let s = shortcut.map { $0(x) } ?? x
        h.addInPlace(s)
        return h
    }
}

/// Single-head self-attention over the H*W positions of a feature map, with a residual:
/// out = x + proj(softmax(q^T k / sqrt(C)) applied to v). q/k/v come either from one fused 1x1 conv with
/// 3C outputs split in (q, k, v) order (VAR's `qkv`) or from three linears (diffusers' to_q/to_k/to_v);
/// both are stored here as three [C, C] matrices, which computes the same dot products.
public struct SpatialAttention: Sendable {
    public var norm: GroupNorm
    public var q: Linear, k: Linear, v: Linear, proj: Linear

    public init(norm: GroupNorm, q: Linear, k: Linear, v: Linear, proj: Linear) {
        self.norm = norm; self.q = q; self.k = k; self.v = v; self.proj = proj
    }

    /// VAR / taming layout: `norm`, `qkv` (1x1 conv, 3C outputs), `proj_out` (1x1 conv).
    public static func fusedQKV(
        _ r: WeightReader, channels c: Int, groups: Int = 32, eps: Float,
        norm: String = "norm", qkv: String = "qkv", proj: String = "proj_out"
    ) throws -> SpatialAttention {
        let n = try r.groupNorm(norm, channels: c, groups: groups, eps: eps)
        let w = try r.linear(qkv, inFeatures: c, outFeatures: 3 * c)
        let ws = w.weight.split([c, c, c], dim: 0)
        let bs = w.bias?.split([c, c, c], dim: 0)
        return SpatialAttention(
            norm: n, q: Linear(weight: ws[0], bias: bs?[0]), k: Linear(weight: ws[1], bias: bs?[1]),
            v: Linear(weight: ws[2], bias: bs?[2]),
            proj: try r.linear(proj, inFeatures: c, outFeatures: c))
    }

    /// diffusers layout: `group_norm`, `to_q`, `to_k`, `to_v`, `to_out.0` (Linear), or the old
    /// `group_norm`/`query`/`key`/`value`/`proj_attn` names (detected automatically).
    public static func separate(_ r: WeightReader, channels c: Int, eps: Float) throws -> SpatialAttention {
        let old = !r.has("to_q.weight") && r.has("query.weight")
        let names = old ? ("query", "key", "value", "proj_attn") : ("to_q", "to_k", "to_v", "to_out.0")
        return SpatialAttention(
            norm: try r.groupNorm("group_norm", channels: c, eps: eps),
            q: try r.linear(names.0, inFeatures: c, outFeatures: c),
            k: try r.linear(names.1, inFeatures: c, outFeatures: c),
            v: try r.linear(names.2, inFeatures: c, outFeatures: c),
            proj: try r.linear(names.3, inFeatures: c, outFeatures: c))
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let profile = Profiler.begin(.attention)
        defer { Profiler.end(profile) }
        let (b, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let n = h * w
        let hn = norm(x)
        var out = x
        let scale = 1 / Float(c).squareRoot()
        // Per image, channels-first: Q = Wq H + bq ([C, N]) etc., all in sgemm.
        func project(_ l: Linear, _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>) {
            if let bias = l.bias { for ch in 0..<c { (dst + ch * n).update(repeating: bias.data[ch], count: n) } }
            l.weight.data.withUnsafeBufferPointer { pw in
                BLAS.sgemm(
                    m: c, n: n, k: c, a: pw.baseAddress!, lda: c, b: src, ldb: n,
                    beta: l.bias == nil ? 0 : 1, c: dst, ldc: n)
            }
        }
        var qb = [Float](repeating: 0, count: c * n), kb = qb, vb = qb, ab = qb, pb = qb
        var scores = [Float](repeating: 0, count: n * n)
        hn.data.withUnsafeBufferPointer { ph in
            out.data.withUnsafeMutableBufferPointer { po in
                for bi in 0..<b {
                    let src = ph.baseAddress! + bi * c * n
                    qb.withUnsafeMutableBufferPointer { pq in
                        kb.withUnsafeMutableBufferPointer { pk in
                            vb.withUnsafeMutableBufferPointer { pv in
                                ab.withUnsafeMutableBufferPointer { pa in
                                    pb.withUnsafeMutableBufferPointer { pp in
                                        scores.withUnsafeMutableBufferPointer { ps in
                                            project(q, src, pq.baseAddress!)
                                            project(k, src, pk.baseAddress!)
                                            project(v, src, pv.baseAddress!)
                                            // scores[i, j] = scale * sum_c q[c, i] k[c, j]; softmax over keys j.
                                            BLAS.sgemm(
                                                transA: true, m: n, n: n, k: c, alpha: scale, a: pq.baseAddress!, lda: n,
                                                b: pk.baseAddress!, ldb: n, c: ps.baseAddress!, ldc: n)
                                            let sp = UnsafeSendable(UnsafePointer(ps.baseAddress!))
                                            Parallel.forEach((n + 63) / 64) { blk in
                                                for r in (blk * 64)..<min(n, blk * 64 + 64) {
                                                    softmaxInPlace(UnsafeMutablePointer(mutating: sp.p) + r * n, n)
                                                }
                                            }
                                            // attended[c, i] = sum_j v[c, j] scores[i, j]
                                            BLAS.sgemm(
                                                transB: true, m: c, n: n, k: n, a: pv.baseAddress!, lda: n, b: ps.baseAddress!, ldb: n,
                                                c: pa.baseAddress!, ldc: n)
                                            project(proj, pa.baseAddress!, pp.baseAddress!)
                                            let o = po.baseAddress! + bi * c * n
                                            for i in 0..<(c * n) { o[i] += pp[i] }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}

/// Pad (0, 1, 0, 1) (right and bottom only) with zeros, then 3x3 conv stride 2, no other padding.
public struct Downsample: Sendable {
    public var conv: Conv2d
    public init(_ r: WeightReader, channels: Int, name: String = "conv") throws {
        conv = try r.conv(name, inChannels: channels, outChannels: channels, stride: 2, pads: (0, 1, 0, 1))
    }
    public func callAsFunction(_ x: Tensor) -> Tensor { conv(x) }
}

/// Nearest-neighbour x2, then 3x3 conv (padding 1).
public struct Upsample: Sendable {
    public var conv: Conv2d
    public init(_ r: WeightReader, channels: Int, name: String = "conv") throws {
        conv = try r.conv(name, inChannels: channels, outChannels: channels)
    }
    public func callAsFunction(_ x: Tensor) -> Tensor {
        conv(x.interpolated(height: 2 * x.dim(-2), width: 2 * x.dim(-1), mode: .nearest))
    }
}
