import Foundation
import Tensor

/// Scaled dot-product attention on [B, H, L, D] with an optional additive mask [Lq, Lk] (constant, no gradient):
/// S = scale q kᵀ + mask, P = softmax(S), O = P v. Backward per (b, h), all products in sgemm:
/// dv = Pᵀ dO, dP = dO vᵀ, dS = P ⊙ (dP - rowsum(dP ⊙ P)), dq = scale dS k, dk = scale dSᵀ q.
/// The forward keeps P so the backward does not recompute the softmax.
public enum AttentionGrad {
    public struct Saved { public let probs: Tensor }

    public static func forward(q: Tensor, k: Tensor, v: Tensor, scale: Float, mask: Tensor? = nil) -> (out: Tensor, saved: Saved) {
        let (b, h, lq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let lk = k.shape[2], dv = v.shape[3]
        // Every (b, h) block of both is written: probs by sgemm then softmax / zero fill, out by sgemm (beta = 0).
        var out = Tensor.unfilled(b * h * lq * dv), probs = Tensor.unfilled(b * h * lq * lk)
        let visibleKeys = Self.visibleKeyCounts(mask: mask, rows: lq, keys: lk)
        q.data.withUnsafeBufferPointer { pq in
            k.data.withUnsafeBufferPointer { pk in
                v.data.withUnsafeBufferPointer { pv in
                    out.withUnsafeMutableBufferPointer { po in
                        probs.withUnsafeMutableBufferPointer { pp in
                            let sq = UnsafeSendable(pq.baseAddress!), sk = UnsafeSendable(pk.baseAddress!),
                                sv = UnsafeSendable(pv.baseAddress!)
                            let so = UnsafeSendable(UnsafePointer(po.baseAddress!)), sp = UnsafeSendable(UnsafePointer(pp.baseAddress!))
                            Parallel.forEach(b * h) { bh in
                                let s = UnsafeMutablePointer(mutating: sp.p) + bh * lq * lk
                                BLAS.sgemm(
                                    transB: true, m: lq, n: lk, k: d, alpha: scale, a: sq.p + bh * lq * d, lda: d,
                                    b: sk.p + bh * lk * d, ldb: d, c: s, ldc: lk)
                                if let mask { mask.data.withUnsafeBufferPointer { pm in for i in 0..<(lq * lk) { s[i] += pm[i] } } }
                                for r in 0..<lq {
                                    // Keys past the row's last unmasked one get exactly 0 (exp(-inf) = 0 adds nothing to the sum),
                                    // so the softmax runs over the visible prefix only: the same bits (attentionSoftmax), half the exps of a causal mask.
                                    let visible = visibleKeys[r]
                                    if visible == 0 { attentionSoftmax(s + r * lk, lk); continue }
                                    attentionSoftmax(s + r * lk, visible)
                                    (s + r * lk + visible).update(repeating: 0, count: lk - visible)
                                }
                                BLAS.sgemm(
                                    m: lq, n: dv, k: lk, a: UnsafePointer(s), lda: lk, b: sv.p + bh * lk * dv, ldb: dv,
                                    c: UnsafeMutablePointer(mutating: so.p) + bh * lq * dv, ldc: dv)
                            }
                        }
                    }
                }
            }
        }
        return (Tensor(shape: [b, h, lq, dv], data: out), Saved(probs: Tensor(shape: [b, h, lq, lk], data: probs)))
    }

    /// Per query row: 1 + the index of its last key not masked with -inf (lk without a mask; 0 = all masked).
    static func visibleKeyCounts(mask: Tensor?, rows lq: Int, keys lk: Int) -> [Int] {
        guard let mask else { return [Int](repeating: lk, count: lq) }
        return (0..<lq).map { r in
            var j = lk
            while j > 0 && mask.data[r * lk + j - 1] == -.infinity { j -= 1 }
            return j
        }
    }

    public static func backward(
        q: Tensor, k: Tensor, v: Tensor, scale: Float, saved: Saved, dOut: Tensor
    )
        -> (dq: Tensor, dk: Tensor, dv: Tensor)
    {
        let (b, h, lq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let lk = k.shape[2], dvDim = v.shape[3]
        // Each (b, h) block of dq, dk, dv is written by a beta-0 sgemm.
        var dq = Tensor.unfilled(q.count), dk = Tensor.unfilled(k.count), dv = Tensor.unfilled(v.count)
        q.data.withUnsafeBufferPointer { pq in
            k.data.withUnsafeBufferPointer { pk in
                v.data.withUnsafeBufferPointer { pv in
                    saved.probs.data.withUnsafeBufferPointer { pp in
                        dOut.data.withUnsafeBufferPointer { pg in
                            dq.withUnsafeMutableBufferPointer { qq in
                                dk.withUnsafeMutableBufferPointer { qk in
                                    dv.withUnsafeMutableBufferPointer { qv in
                                        let sq = UnsafeSendable(pq.baseAddress!), sk = UnsafeSendable(pk.baseAddress!),
                                            sv = UnsafeSendable(pv.baseAddress!)
                                        let sp = UnsafeSendable(pp.baseAddress!), sg = UnsafeSendable(pg.baseAddress!)
                                        let oq = UnsafeSendable(UnsafePointer(qq.baseAddress!)),
                                            ok = UnsafeSendable(UnsafePointer(qk.baseAddress!))
                                        let ov = UnsafeSendable(UnsafePointer(qv.baseAddress!))
                                        Parallel.forEach(b * h) { bh in
                                            let P = sp.p + bh * lq * lk, G = sg.p + bh * lq * dvDim
                                            var dS = [Float](repeating: 0, count: lq * lk)
                                            dS.withUnsafeMutableBufferPointer { ds in
                                                let S = ds.baseAddress!
                                                // dv [Lk, Dv] = Pᵀ [Lk, Lq] G [Lq, Dv]
                                                BLAS.sgemm(
                                                    transA: true, m: lk, n: dvDim, k: lq, a: P, lda: lk, b: G, ldb: dvDim,
                                                    c: UnsafeMutablePointer(mutating: ov.p) + bh * lk * dvDim, ldc: dvDim)
                                                // dP [Lq, Lk] = G vᵀ
                                                BLAS.sgemm(
                                                    transB: true, m: lq, n: lk, k: dvDim, a: G, lda: dvDim, b: sv.p + bh * lk * dvDim,
                                                    ldb: dvDim, c: S, ldc: lk)
                                                for r in 0..<lq {
                                                    var dot: Float = 0
                                                    for j in 0..<lk { dot += S[r * lk + j] * P[r * lk + j] }
                                                    for j in 0..<lk { S[r * lk + j] = P[r * lk + j] * (S[r * lk + j] - dot) }
                                                }
                                                // dq = scale dS k ; dk = scale dSᵀ q
                                                BLAS.sgemm(
                                                    m: lq, n: d, k: lk, alpha: scale, a: UnsafePointer(S), lda: lk, b: sk.p + bh * lk * d,
                                                    ldb: d, c: UnsafeMutablePointer(mutating: oq.p) + bh * lq * d, ldc: d)
                                                BLAS.sgemm(
                                                    transA: true, m: lk, n: d, k: lq, alpha: scale, a: UnsafePointer(S), lda: lk,
                                                    b: sq.p + bh * lq * d, ldb: d, c: UnsafeMutablePointer(mutating: ok.p) + bh * lk * d,
                                                    ldc: d)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return (Tensor(shape: q.shape, data: dq), Tensor(shape: k.shape, data: dk), Tensor(shape: v.shape, data: dv))
    }
}
