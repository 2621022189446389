import Foundation
import Layers
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

/// New conv weights of a block: (name, in, out, kernel) -> (weight, bias).
public typealias ConvInit = (_ name: String, _ cin: Int, _ cout: Int, _ kernel: Int) -> (weight: Tensor, bias: Tensor)

/// h = conv1(silu(norm1(x))); h = conv2(silu(norm2(h))); out = shortcut(x) + h. (Dropout is identity at inference.)
/// `callAsFunction` is inference; `forward` / `backward` are training.
public final class ResnetBlock {
    public let norm1: GroupNormLayer, conv1: ConvLayer, norm2: GroupNormLayer, conv2: ConvLayer
    public let shortcut: ConvLayer?
    let silu1 = SiLULayer(), silu2 = SiLULayer()

    /// Under `name` (e.g. "encoder.down.0.block.1"); the 1x1 shortcut exists when the widths differ.
    public init(
        _ name: String, inChannels cin: Int, outChannels cout: Int, groups: Int, eps: Float, keys: ResnetKeys = .taming,
        source src: ParameterSource, initial: ConvInit
    ) throws {
        let p = name + "."
        norm1 = try GroupNormLayer(p + keys.norm1, channels: cin, groups: groups, eps: eps, source: src)
        conv1 = try ConvLayer(p + keys.conv1, cin: cin, cout: cout, kernel: 3, stride: 1, pads: (1, 1, 1, 1), source: src) {
            initial(p + keys.conv1, cin, cout, 3)
        }
        norm2 = try GroupNormLayer(p + keys.norm2, channels: cout, groups: groups, eps: eps, source: src)
        conv2 = try ConvLayer(p + keys.conv2, cin: cout, cout: cout, kernel: 3, stride: 1, pads: (1, 1, 1, 1), source: src) {
            initial(p + keys.conv2, cout, cout, 3)
        }
        shortcut =
            cin != cout
            ? try ConvLayer(p + keys.shortcut, cin: cin, cout: cout, kernel: 1, stride: 1, pads: (0, 0, 0, 0), source: src) {
                initial(p + keys.shortcut, cin, cout, 1)
            } : nil
    }

    public var outChannels: Int { conv2.weight.value.shape[0] }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var h = conv1(norm1(x, thenSiLU: true))
        h = conv2(norm2(h, thenSiLU: true))
        h.addInPlace(shortcut.map { $0(x) } ?? x)
        return h
    }

    public func forward(_ x: Tensor) -> Tensor {
        var h = conv2.forward(silu2.forward(norm2.forward(conv1.forward(silu1.forward(norm1.forward(x))))))
        h.addInPlace(shortcut?.forward(x) ?? x)
        return h
    }

    public func backward(_ dy: Tensor) -> Tensor {
        var dx = norm1.backward(silu1.backward(conv1.backward(norm2.backward(silu2.backward(conv2.backward(dy))))))
        dx.addInPlace(shortcut?.backward(dy) ?? dy)
        return dx
    }

    public var parameters: [Parameter] {
        norm1.parameters + conv1.parameters + norm2.parameters + conv2.parameters + (shortcut?.parameters ?? [])
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
                                                    attentionSoftmax(UnsafeMutablePointer(mutating: sp.p) + r * n, n)
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

/// Pad (0, 1, 0, 1) (right and bottom only) with zeros, then 3x3 conv stride 2, no other padding: `name.conv`.
public func downsampleConv(_ name: String, channels c: Int, source src: ParameterSource, initial: ConvInit) throws -> ConvLayer {
    try ConvLayer(name, cin: c, cout: c, kernel: 3, stride: 2, pads: (0, 1, 0, 1), source: src) { initial(name, c, c, 3) }
}

/// Nearest-neighbour x2, then 3x3 conv (padding 1): `name.conv`.
public final class Upsample {
    public let conv: ConvLayer
    private var inShape: [Int] = []

    public init(_ name: String, channels c: Int, source src: ParameterSource, initial: ConvInit) throws {
        conv = try ConvLayer(name, cin: c, cout: c, kernel: 3, stride: 1, pads: (1, 1, 1, 1), source: src) { initial(name, c, c, 3) }
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        conv(x.interpolated(height: 2 * x.dim(-2), width: 2 * x.dim(-1), mode: .nearest))
    }

    public func forward(_ x: Tensor) -> Tensor {
        inShape = x.shape
        return conv.forward(x.interpolated(height: 2 * x.dim(-2), width: 2 * x.dim(-1), mode: .nearest))
    }

    public func backward(_ dy: Tensor) -> Tensor {
        InterpolateGrad.backward(inputShape: inShape, mode: .nearest, dy: conv.backward(dy))
    }

    public var parameters: [Parameter] { conv.parameters }
}

/// Files only: a block read from a checkpoint never needs new weights.
public let noNewWeights: ConvInit = { name, _, _, _ in preconditionFailure("\(name): a checkpoint's block asked for new weights") }
