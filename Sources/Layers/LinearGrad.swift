import Foundation
import Tensor

/// Reverse-mode gradients of the matrix ops. Every heavy product is one sgemm (transposes are free).
public enum LinearGrad {
    /// C = op(A) op(B) batched as `Tensor.matmul`: returns (dA, dB) for dC. `B` may be 2-D (shared), then dB sums
    /// over the batch (accumulated by sgemm with beta = 1, in batch order: deterministic).
    public static func matmulBackward(
        _ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false,
        dC: Tensor
    ) -> (dA: Tensor, dB: Tensor) {
        let (ar, ac) = (a.dim(-2), a.dim(-1)), (br, bc) = (b.dim(-2), b.dim(-1))
        let m = transposeA ? ac : ar, k = transposeA ? ar : ac
        let n = transposeB ? br : bc
        let batch = a.count / max(ar * ac, 1)
        let shared = b.count == br * bc && batch > 1
        var dA = [Float](repeating: 0, count: a.count), dB = [Float](repeating: 0, count: b.count)
        a.data.withUnsafeBufferPointer { pa in
            b.data.withUnsafeBufferPointer { pb in
                dC.data.withUnsafeBufferPointer { pc in
                    dA.withUnsafeMutableBufferPointer { qa in
                        dB.withUnsafeMutableBufferPointer { qb in
                            for bi in 0..<batch {
                                let A = pa.baseAddress! + bi * ar * ac, B = pb.baseAddress! + (shared ? 0 : bi * br * bc)
                                let G = pc.baseAddress! + bi * m * n
                                let DA = qa.baseAddress! + bi * ar * ac, DB = qb.baseAddress! + (shared ? 0 : bi * br * bc)
                                let betaB: Float = shared && bi > 0 ? 1 : 0
                                // dop(A) = G op(B)^T  [m, k];  dop(B) = op(A)^T G  [k, n]. Stored in A's / B's own layout.
                                if !transposeA {  // dA [m,k] = G [m,n] op(B)^T
                                    BLAS.sgemm(
                                        transA: false, transB: !transposeB, m: m, n: k, k: n, a: G, lda: n, b: B, ldb: bc, c: DA, ldc: ac)
                                } else {  // dA = (G op(B)^T)^T = op(B) G^T  [k, m]
                                    BLAS.sgemm(
                                        transA: transposeB, transB: true, m: k, n: m, k: n, a: B, lda: bc, b: G, ldb: n, c: DA, ldc: ac)
                                }
                                if !transposeB {  // dB [k,n] = op(A)^T G
                                    BLAS.sgemm(
                                        transA: !transposeA, transB: false, m: k, n: n, k: m, a: A, lda: ac, b: G, ldb: n,
                                        beta: betaB, c: DB, ldc: bc)
                                } else {  // dB = (op(A)^T G)^T = G^T op(A)  [n, k]
                                    BLAS.sgemm(
                                        transA: true, transB: transposeA, m: n, n: k, k: m, a: G, lda: n, b: A, ldb: ac,
                                        beta: betaB, c: DB, ldc: bc)
                                }
                            }
                        }
                    }
                }
            }
        }
        return (Tensor(shape: a.shape, data: dA), Tensor(shape: b.shape, data: dB))
    }

    /// y = x W^T + b (nn.Linear). Returns dx; adds dW, db to the parameters' gradients.
    public static func linearBackward(x: Tensor, weight: Tensor, dy: Tensor) -> (dx: Tensor, dW: Tensor, db: Tensor) {
        let inF = weight.shape[1], outF = weight.shape[0]
        let rows = x.count / inF
        var dx = Tensor.unfilled(x.count), dW = Tensor.unfilled(weight.count)  // both written by beta-0 sgemms
        var db = [Float](repeating: 0, count: outF)
        x.data.withUnsafeBufferPointer { px in
            weight.data.withUnsafeBufferPointer { pw in
                dy.data.withUnsafeBufferPointer { pg in
                    dx.withUnsafeMutableBufferPointer { qx in
                        dW.withUnsafeMutableBufferPointer { qw in
                            // dx [rows, in] = dy [rows, out] W [out, in]
                            BLAS.sgemm(
                                m: rows, n: inF, k: outF, a: pg.baseAddress!, lda: outF, b: pw.baseAddress!, ldb: inF,
                                c: qx.baseAddress!, ldc: inF)
                            // dW [out, in] = dy^T x
                            BLAS.sgemm(
                                transA: true, m: outF, n: inF, k: rows, a: pg.baseAddress!, lda: outF, b: px.baseAddress!,
                                ldb: inF, c: qw.baseAddress!, ldc: inF)
                        }
                    }
                    // db = column sums of dy in row order, in Double for an accurate sum; column blocks run in parallel.
                    db.withUnsafeMutableBufferPointer { qb in
                        let sg = UnsafeSendable(pg.baseAddress!), sb = UnsafeMutableSendable(qb.baseAddress!)
                        Parallel.forRanges(outF, grain: 32) { cols in
                            withUnsafeTemporaryAllocation(of: Double.self, capacity: cols.count) { acc in
                                acc.initialize(repeating: 0)
                                for r in 0..<rows {
                                    let row = sg.p + r * outF + cols.lowerBound; for o in 0..<cols.count { acc[o] += Double(row[o]) }
                                }
                                for o in 0..<cols.count { sb.p[cols.lowerBound + o] = Float(acc[o]) }
                            }
                        }
                    }
                }
            }
        }
        return (Tensor(shape: x.shape, data: dx), Tensor(shape: weight.shape, data: dW), Tensor(shape: [outF], data: db))
    }

    /// Embedding lookup rows[ids]: the table gradient scatters dy rows back (repeated ids add up, in order).
    public static func embeddingBackward(ids: [Int], tableShape: [Int], dy: Tensor) -> Tensor {
        let d = tableShape[1]
        var g = [Float](repeating: 0, count: tableShape[0] * d)
        dy.data.withUnsafeBufferPointer { p in
            for (i, id) in ids.enumerated() { for j in 0..<d { g[id * d + j] += p[i * d + j] } }
        }
        return Tensor(shape: tableShape, data: g)
    }
}
