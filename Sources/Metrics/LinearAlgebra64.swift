import CBLAS
import Foundation
import Tensor

/// Float64 dense linear algebra for the metric formulas (row-major, square or [rows, cols] arrays).
enum LA64 {
    /// C[m, n] = op(A) op(B) (+ C if accumulate), cut into fixed column blocks that depend only on the shape, each
    /// a single-threaded dgemm, so results are identical for any thread count.
    static func gemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
        accumulate: Bool = false, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        BLAS.setUp()
        if m == 0 || n == 0 || k == 0 { return }
        let ta = transA ? CblasTrans : CblasNoTrans, tb = transB ? CblasTrans : CblasNoTrans
        let blocks = Double(m) * Double(n) * Double(k) < 4e6 ? 1 : min(16, max(1, n / 64))
        let per = (n + blocks - 1) / blocks
        let pa = UnsafeSendable(a), pb = UnsafeSendable(b), pc = UnsafeSendable(UnsafePointer(c))
        Parallel.forEach(blocks) { blk in
            let c0 = blk * per, c1 = min(n, c0 + per)
            if c0 >= c1 { return }
            let bOff = transB ? c0 * ldb : c0
            cblas_dgemm(
                CblasRowMajor, ta, tb, Int32(m), Int32(c1 - c0), Int32(k), 1, pa.p, Int32(lda),
                pb.p + bOff, Int32(ldb), accumulate ? 1 : 0, UnsafeMutablePointer(mutating: pc.p) + c0, Int32(ldc))
        }
    }

    /// Eigenvalues (ascending) and, if `vectors`, eigenvectors (columns of the returned row-major matrix) of a
    /// symmetric n x n matrix, by LAPACK's divide-and-conquer `dsyevd` (upper triangle used).
    static func symmetricEigen(_ s: [Double], n: Int, vectors: Bool) throws -> (values: [Double], vectors: [Double]) {
        var a = s
        var w = [Double](repeating: 0, count: n)
        let info = a.withUnsafeMutableBufferPointer { pa in
            w.withUnsafeMutableBufferPointer { pw in
                LAPACKE_dsyevd(
                    LAPACK_ROW_MAJOR, vectors ? Int8(UInt8(ascii: "V")) : Int8(UInt8(ascii: "N")),
                    Int8(UInt8(ascii: "U")), Int32(n), pa.baseAddress, Int32(n), pw.baseAddress)
            }
        }
        guard info == 0 else {
            throw MetricsError.numerical("LAPACK dsyevd failed (info \(info)) on a \(n)x\(n) covariance")
        }
        return (w, a)
    }
}
