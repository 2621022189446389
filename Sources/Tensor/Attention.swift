import CKernels
import Foundation

/// Softmax of one row of attention scores in place: CKernels' vectorised kernel (a fixed summation order, the same
/// bits on every path; with libm's scalar expf VAR-d16's attention took 0.72 s instead of 0.47 s). A causal row's
/// masked tail (-inf) gives exactly the bits of the softmax of its visible prefix followed by zeros. Sampling keeps
/// `softmaxInPlace`.
@inline(__always)
public func attentionSoftmax(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
    varlab_softmax(p, Int32(n))
}

/// Scaled dot-product attention on [B, H, L, D] tensors: softmax(q k^T * scale + mask) v.
/// `mask` is additive, broadcast over batch and heads: shape [Lq, Lk] (use -inf to forbid).
public func scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, scale: Float, mask: Tensor? = nil) -> Tensor {
    let profile = Profiler.begin(.attention)
    defer { Profiler.end(profile) }
    precondition(q.rank == 4 && k.rank == 4 && v.rank == 4, "attention expects [B,H,L,D]")
    let (b, h, lq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
    let lk = k.shape[2], dv = v.shape[3]
    precondition(k.shape == [b, h, lk, d] && v.shape[0...2] == [b, h, lk], "attention shapes q\(q.shape) k\(k.shape) v\(v.shape)")
    if let mask { precondition(mask.shape == [lq, lk], "attention mask \(mask.shape) vs [\(lq), \(lk)]") }
    var out = [Float](repeating: 0, count: b * h * lq * dv)
    out.withUnsafeMutableBufferPointer { pout in
        let po = UnsafeSendable(UnsafePointer(pout.baseAddress!))
        q.data.withUnsafeBufferPointer { pq in
            k.data.withUnsafeBufferPointer { pk in
                v.data.withUnsafeBufferPointer { pv in
                    let sq = UnsafeSendable(pq.baseAddress!), sk = UnsafeSendable(pk.baseAddress!), sv = UnsafeSendable(pv.baseAddress!)
                    Parallel.forEach(b * h) { bh in
                        var scores = Tensor.unfilled(lq * lk)  // written by sgemm (beta 0)
                        scores.withUnsafeMutableBufferPointer { ps in
                            let s = ps.baseAddress!
                            BLAS.sgemm(
                                transB: true, m: lq, n: lk, k: d, alpha: scale, a: sq.p + bh * lq * d, lda: d,
                                b: sk.p + bh * lk * d, ldb: d, c: s, ldc: lk)
                            if let mask {
                                mask.data.withUnsafeBufferPointer { pm in for i in 0..<(lq * lk) { s[i] += pm[i] } }
                            }
                            for r in 0..<lq { attentionSoftmax(s + r * lk, lk) }
                            BLAS.sgemm(
                                m: lq, n: dv, k: lk, a: UnsafePointer(s), lda: lk, b: sv.p + bh * lk * dv, ldb: dv,
                                c: UnsafeMutablePointer(mutating: po.p) + bh * lq * dv, ldc: dv)
                        }
                    }
                }
            }
        }
    }
    return Tensor(shape: [b, h, lq, dv], data: out)
}

/// Keys and values of earlier steps, grown by appending along the sequence axis ([B, H, L, D] each).
public struct KVCache: Sendable {
    public private(set) var keys: Tensor?
    public private(set) var values: Tensor?
    public init() {}

    public var length: Int { keys?.shape[2] ?? 0 }

    /// Appends this step's k, v and returns the full history (including them).
    public mutating func append(k: Tensor, v: Tensor) -> (Tensor, Tensor) {
        if let keys, let values {
            self.keys = Tensor.cat([keys, k], dim: 2)
            self.values = Tensor.cat([values, v], dim: 2)
        } else {
            keys = k; values = v
        }
        return (keys!, values!)
    }

    public mutating func reset() { keys = nil; values = nil }
}

/// Multi-head self-attention with a fused input projection (timm's `Attention`, which DiT, DINOv2 and every
/// plain ViT use): qkv(x) -> (B, T, 3, H, hd) -> softmax(q k^T / sqrt(hd)) v -> merge heads -> proj.
public struct SelfAttention: Sendable {
    /// [3D, D]: query, key and value rows stacked in that order.
    public var qkv: Linear
    public var proj: Linear
    public var heads: Int

    public init(qkv: Linear, proj: Linear, heads: Int) {
        precondition(
            heads > 0 && qkv.outFeatures == 3 * qkv.inFeatures && qkv.inFeatures % heads == 0,
            "self-attention qkv \(qkv.weight.shape) with \(heads) heads")
        self.qkv = qkv; self.proj = proj; self.heads = heads
    }

    /// x: [B, T, D].
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let (n, t, d) = (x.shape[0], x.shape[1], x.shape[2])
        let hd = d / heads
        let qkvOut = qkv(x).reshaped([n, t, 3, heads, hd]).permuted([2, 0, 3, 1, 4])  // [3, B, H, T, hd]
        let parts = qkvOut.split([1, 1, 1], dim: 0).map { $0.reshaped([n, heads, t, hd]) }
        let o = scaledDotProductAttention(q: parts[0], k: parts[1], v: parts[2], scale: 1 / Float(hd).squareRoot())
        return proj(o.permuted([0, 2, 1, 3]).reshaped([n, t, d]))
    }
}
