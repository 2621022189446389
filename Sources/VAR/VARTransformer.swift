import Foundation
import Autoencoders
import ModelIO
import Tensor

/// One AdaLN self-attention block (official `AdaLNSelfAttn`):
///   (gamma1, gamma2, scale1, scale2, shift1, shift2) = ada(cond)     (this order, unlike DiT)
///   x = x + attn(ln(x) * (1 + scale1) + shift1) * gamma1
///   x = x + ffn(ln(x) * (1 + scale2) + shift2) * gamma2
/// ln is a LayerNorm without affine (eps 1e-6); ffn = fc2(gelu_tanh(fc1)).
public struct VARBlock: Sendable {
    /// Per-block `ada_lin.1` (SiLU is applied to cond before), or nil with shared AdaLN.
    var adaLin: Linear?
    /// Shared-AdaLN models: this block's additive `ada_gss` [6C].
    var adaGss: Tensor?
    /// mat_qkv with bias cat(q_bias, zero_k_bias, v_bias).
    var qkv: Linear
    /// exp(min(scale_mul_1H11, ln 100)) per head (L2-normalised attention), or nil.
    var headScale: [Float]?
    var proj: Linear, fc1: Linear, fc2: Linear

    init(_ r: WeightReader, _ c: VARConfig) throws {
        let w = c.width
        if c.sharedAdaLN {
            adaLin = nil
            adaGss = try r.tensor("ada_gss", shape: [1, 1, 6, w]).reshaped([6 * w])
        } else {
            adaLin = try r["ada_lin"].linear("1", inFeatures: w, outFeatures: 6 * w)
            adaGss = nil
        }
        let a = r["attn"]
        let wq = try a.tensor("mat_qkv.weight", shape: [3 * w, w])
        let qb = try a.tensor("q_bias", shape: [w]), vb = try a.tensor("v_bias", shape: [w])
        // zero_k_bias is a fixed zero buffer in the official code; use the stored one when present.
        let kb = a.has("zero_k_bias") ? try a.tensor("zero_k_bias", shape: [w]) : Tensor(zeros: [w])
        qkv = Linear(weight: wq, bias: Tensor.cat0([qb, kb, vb]))
        if c.attnL2Norm {
            let s = try a.tensor("scale_mul_1H11", shape: [1, c.heads, 1, 1])
            let maxLog = logf(100)   // torch.log(torch.tensor(100)).item(), float32
            headScale = s.data.map { expf(min($0, maxLog)) }
        } else {
            headScale = nil
        }
        proj = try a.linear("proj", inFeatures: w, outFeatures: w)
        fc1 = try r["ffn"].linear("fc1", inFeatures: w, outFeatures: c.mlpHidden)
        fc2 = try r["ffn"].linear("fc2", inFeatures: c.mlpHidden, outFeatures: w)
    }

    /// The six modulation vectors [B, 6C] for this block.
    func modulation(siluCond: Tensor, shared: Tensor?) -> Tensor {
        if let adaLin { return adaLin(siluCond) }
        return shared!.zipWith(adaGss!, +)
    }

    /// x: [B, l, C]; `ada` [B, 6C]; `cache` gets this call's keys/values appended when given (then `mask` is nil
    /// and the queries see every cached position).
    func callAsFunction(_ x: Tensor, ada: Tensor, config c: VARConfig, mask: Tensor?, cache: inout KVCache?) -> Tensor {
        let (b, l, w) = (x.shape[0], x.shape[1], x.shape[2])
        var h = x
        let normed = LayerNorm(eps: c.normEps)(x)
        let a1 = attention(modulate(normed, ada, scale: 2, shift: 4), config: c, mask: mask, cache: &cache)
        addScaled(&h, a1, ada, gamma: 0, b: b, l: l, w: w)
        let normed2 = LayerNorm(eps: c.normEps)(h)
        let f = fc2(fc1(modulate(normed2, ada, scale: 3, shift: 5)).geluTanh())
        addScaled(&h, f, ada, gamma: 1, b: b, l: l, w: w)
        return h
    }

    func attention(_ x: Tensor, config c: VARConfig, mask: Tensor?, cache: inout KVCache?) -> Tensor {
        let (b, l, w) = (x.shape[0], x.shape[1], x.shape[2])
        let (nh, hd) = (c.heads, c.headDim)
        // [B, L, 3, H, hd] -> [3, B, H, L, hd]
        let parts = qkv(x).reshaped([b, l, 3, nh, hd]).permuted([2, 0, 3, 1, 4]).split([1, 1, 1], dim: 0)
        var q = parts[0].reshaped([b, nh, l, hd]), k = parts[1].reshaped([b, nh, l, hd])
        let v = parts[2].reshaped([b, nh, l, hd])
        var scale: Float = 1
        if let headScale {
            // F.normalize(., dim=-1) = x / max(|x|, 1e-12); q additionally times the per-head temperature.
            l2normalise(&q, headScale: headScale, heads: nh, length: l, dim: hd)
            l2normalise(&k, headScale: nil, heads: nh, length: l, dim: hd)
        } else {
            scale = 0.25 / Float(hd).squareRoot()
        }
        var keys = k, values = v
        if cache != nil { (keys, values) = cache!.append(k: k, v: v) }
        let o = scaledDotProductAttention(q: q, k: keys, v: values, scale: scale, mask: mask)
        return proj(o.permuted([0, 2, 1, 3]).reshaped([b, l, w]))
    }
}

/// ln(x) * (1 + ada[scale chunk]) + ada[shift chunk], per batch row; chunks are C wide inside ada [B, kC].
func modulate(_ x: Tensor, _ ada: Tensor, scale si: Int, shift hi: Int) -> Tensor {
    let (b, l, w) = (x.shape[0], x.shape[1], x.shape[2])
    let chunks = ada.shape[1] / w
    var out = x.data
    ada.data.withUnsafeBufferPointer { pa in out.withUnsafeMutableBufferPointer { po in
        for bi in 0..<b {
            let sc = pa.baseAddress! + (bi * chunks + si) * w, sh = pa.baseAddress! + (bi * chunks + hi) * w
            for t in 0..<l {
                let p = po.baseAddress! + (bi * l + t) * w
                for c in 0..<w { p[c] = p[c] * (sc[c] + 1) + sh[c] }
            }
        }
    } }
    return Tensor(shape: x.shape, data: out)
}

/// h += y * ada[gamma chunk] (per batch row).
func addScaled(_ h: inout Tensor, _ y: Tensor, _ ada: Tensor, gamma gi: Int, b: Int, l: Int, w: Int) {
    let chunks = ada.shape[1] / w
    h.data.withUnsafeMutableBufferPointer { ph in y.data.withUnsafeBufferPointer { py in ada.data.withUnsafeBufferPointer { pa in
        for bi in 0..<b {
            let g = pa.baseAddress! + (bi * chunks + gi) * w
            for t in 0..<l {
                let o = (bi * l + t) * w
                for c in 0..<w { ph[o + c] += py[o + c] * g[c] }
            }
        }
    } } }
}

/// Normalises each hd-vector of [B, H, L, hd] to unit L2 norm (clamped at 1e-12), optionally times a per-head factor.
func l2normalise(_ t: inout Tensor, headScale: [Float]?, heads: Int, length: Int, dim: Int) {
    let rows = t.count / dim
    t.data.withUnsafeMutableBufferPointer { p in
        for r in 0..<rows {
            let v = p.baseAddress! + r * dim
            var s: Float = 0
            for i in 0..<dim { s += v[i] * v[i] }
            let n = max(s.squareRoot(), 1e-12)
            let m = headScale?[(r / length) % heads]
            if let m { for i in 0..<dim { v[i] = v[i] / n * m } }
            else { for i in 0..<dim { v[i] /= n } }
        }
    }
}

