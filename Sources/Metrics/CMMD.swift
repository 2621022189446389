import Foundation
import Tensor

/// CMMD (Jayasumana et al. 2024; google-research `cmmd/distance.py`): the squared maximum mean discrepancy
/// between two embedding sets with a Gaussian RBF kernel, sigma 10, times 1000:
///   k(a, b) = exp(-gamma (|a|^2 + |b|^2 - 2 a.b)),  gamma = 1 / (2 sigma^2)
///   CMMD = 1000 (mean_ij k(x_i, x_j) + mean_ij k(y_i, y_j) - 2 mean_ij k(x_i, y_j))
/// over all pairs, i = j included (the official V-statistic). The official code runs in JAX's float32, whose
/// cancellation error on unit-norm embeddings is a few 1e-4 relative; this computes the same formula in
/// float64 (equal to the official code run with x64 enabled), which the float32 value approximates.
/// Unlike the official loader, every image counts: nothing beyond the last full batch is dropped.
public enum CMMD {
    public static let sigma = 10.0
    public static let scale = 1000.0

    public struct Result: Sendable, Equatable {
        public var value: Double
        public var kxx: Double, kyy: Double, kxy: Double
    }

    /// x: [N1, D], y: [N2, D] (float32 embeddings; each set needs at least one row).
    public static func compute(_ x: Tensor, _ y: Tensor) throws -> Result {
        guard x.rank == 2, y.rank == 2 else {
            throw MetricsError.badShape(what: "CMMD embeddings", shape: x.rank == 2 ? y.shape : x.shape, expected: "[N, D]")
        }
        guard x.shape[1] == y.shape[1] else { throw MetricsError.widthMismatch(what: "CMMD embeddings", a: x.shape[1], b: y.shape[1]) }
        for (t, what) in [(x, "first"), (y, "second")] {
            guard t.shape[0] >= 1 else { throw MetricsError.tooFewSamples(what: "CMMD \(what) embedding set", count: 0, needed: 1) }
            try requireFinite(t.data, columns: t.shape[1], what: "CMMD \(what) embedding set")
        }
        let a = x.data.map(Double.init), b = y.data.map(Double.init)
        let d = x.shape[1]
        let kxx = meanKernel(a, x.shape[0], a, x.shape[0], d)
        let kyy = meanKernel(b, y.shape[0], b, y.shape[0], d)
        let kxy = meanKernel(a, x.shape[0], b, y.shape[0], d)
        return Result(value: scale * (kxx + kyy - 2 * kxy), kxx: kxx, kyy: kyy, kxy: kxy)
    }

    /// mean over all (i, j) of exp(-gamma (|p_i|^2 + |q_j|^2 - 2 p_i.q_j)), in row blocks so an N x N kernel
    /// never exists whole (50k reference embeddings would need 20 GB).
    static func meanKernel(_ p: [Double], _ n: Int, _ q: [Double], _ m: Int, _ d: Int) -> Double {
        let gamma = 1 / (2 * sigma * sigma)
        func norms(_ v: [Double], _ rows: Int) -> [Double] {
            (0..<rows).map { r in
                var s = 0.0; for k in 0..<d { s += v[r * d + k] * v[r * d + k] }; return s
            }
        }
        let np = norms(p, n), nq = norms(q, m)
        let block = 1024
        var total = 0.0
        var dots = [Double](repeating: 0, count: block * m)
        var r0 = 0
        while r0 < n {
            let rows = min(block, n - r0)
            p.withUnsafeBufferPointer { pp in
                q.withUnsafeBufferPointer { pq in
                    dots.withUnsafeMutableBufferPointer { pd in
                        LA64.gemm(
                            transB: true, m: rows, n: m, k: d, a: pp.baseAddress! + r0 * d, lda: d, b: pq.baseAddress!, ldb: d,
                            c: pd.baseAddress!, ldc: m)
                    }
                }
            }
            var partial = 0.0
            for i in 0..<rows {
                for j in 0..<m { partial += exp(-gamma * (np[r0 + i] + nq[j] - 2 * dots[i * m + j])) }
            }
            total += partial
            r0 += rows
        }
        return total / (Double(n) * Double(m))
    }
}
