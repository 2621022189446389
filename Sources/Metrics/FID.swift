import Foundation
import Tensor

/// Mean and covariance of a feature set, in float64: what FID compares (and what ADM reference batches store
/// as `mu`/`sigma`, `mu_s`/`sigma_s`).
public struct GaussianStats: Sendable, Equatable {
    public var mu: [Double]
    /// Row-major dim x dim.
    public var sigma: [Double]
    /// Number of feature vectors behind the statistics (nil when read from a file that does not say).
    public var count: Int?

    public var dim: Int { mu.count }

    public init(mu: [Double], sigma: [Double], count: Int? = nil) throws {
        guard sigma.count == mu.count * mu.count else {
            throw MetricsError.badShape(what: "covariance", shape: [sigma.count], expected: "\(mu.count)x\(mu.count)")
        }
        if let i = mu.firstIndex(where: { !$0.isFinite }) { throw MetricsError.nonFinite(what: "mean", row: 0, column: i) }
        if let i = sigma.firstIndex(where: { !$0.isFinite }) {
            throw MetricsError.nonFinite(what: "covariance", row: i / mu.count, column: i % mu.count)
        }
        self.mu = mu; self.sigma = sigma; self.count = count
    }

    /// `np.mean(X, 0)` and `np.cov(X, rowvar=False)` (unbiased, N - 1) of float32 features [N, D], in float64.
    /// Rows are processed in chunks (the 50k x 2048 set never exists in float64 at once).
    public init(features x: Tensor, what: String = "features") throws {
        guard x.rank == 2 else { throw MetricsError.badShape(what: what, shape: x.shape, expected: "[N, D]") }
        let (n, d) = (x.shape[0], x.shape[1])
        guard n >= 2 else { throw MetricsError.tooFewSamples(what: what, count: n, needed: 2) }
        try requireFinite(x.data, columns: d, what: what)
        var mu = [Double](repeating: 0, count: d)
        x.data.withUnsafeBufferPointer { p in
            for i in 0..<n { for j in 0..<d { mu[j] += Double(p[i * d + j]) } }
        }
        for j in 0..<d { mu[j] /= Double(n) }
        var sigma = [Double](repeating: 0, count: d * d)
        let chunk = 2048
        var centred = [Double](repeating: 0, count: min(chunk, n) * d)
        var r0 = 0
        while r0 < n {
            let rows = min(chunk, n - r0)
            x.data.withUnsafeBufferPointer { p in
                for i in 0..<rows { for j in 0..<d { centred[i * d + j] = Double(p[(r0 + i) * d + j]) - mu[j] } }
            }
            centred.withUnsafeBufferPointer { pc in
                sigma.withUnsafeMutableBufferPointer { ps in
                    LA64.gemm(
                        transA: true, m: d, n: d, k: rows, a: pc.baseAddress!, lda: d, b: pc.baseAddress!, ldb: d,
                        accumulate: r0 > 0, c: ps.baseAddress!, ldc: d)
                }
            }
            r0 += rows
        }
        let scale = 1 / Double(n - 1)
        for i in 0..<(d * d) { sigma[i] *= scale }
        // Exactly symmetric (the column blocks of the product round independently).
        for i in 0..<d {
            for j in (i + 1)..<d { let v = 0.5 * (sigma[i * d + j] + sigma[j * d + i]); sigma[i * d + j] = v; sigma[j * d + i] = v }
        }
        try self.init(mu: mu, sigma: sigma, count: n)
    }
}

extension GaussianStats {
    /// Throws unless sigma is a covariance: symmetric and positive semidefinite up to float64 round-off. A
    /// statistics file with, say, a negative-definite sigma would otherwise give a meaningless (even negative)
    /// distance; ADM's evaluator fails on it too (complex square root).
    public func checkCovariance(what: String) throws {
        let d = dim
        var scale = 0.0
        for v in sigma { scale = max(scale, abs(v)) }
        for i in 0..<d {
            for j in (i + 1)..<d where abs(sigma[i * d + j] - sigma[j * d + i]) > 1e-9 * max(scale, 1e-300) {
                throw MetricsError.input(
                    "\(what): the covariance is not symmetric (entry [\(i), \(j)] \(sigma[i * d + j]) vs [\(j), \(i)] \(sigma[j * d + i]))")
            }
        }
        let (lam, _) = try LA64.symmetricEigen(sigma, n: d, vectors: false)
        let top = max(lam.last ?? 0, 0)
        if let low = lam.first, low < -1e-9 * max(top, scale) {
            throw MetricsError.input(
                "\(what): the covariance is not positive semidefinite (eigenvalue \(low), largest \(top)); not statistics of real features")
        }
    }
}

/// The Fréchet distance between two Gaussians (Heusel et al. 2017):
/// `FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))`.
///
/// pytorch-fid and ADM take `scipy.linalg.sqrtm(S1 @ S2)` (a Schur-based iterative method on a non-symmetric
/// matrix; they add 1e-6 to the diagonals if it is not finite and drop a small imaginary part). We use the
/// identity `tr((S1 S2)^(1/2)) = tr((R S2 R)^(1/2))` with `R = S1^(1/2)` (S1 S2 is similar to the symmetric PSD
/// matrix R S2 R): two symmetric eigendecompositions by LAPACK `dsyevd`, negative round-off eigenvalues clamped
/// to 0. This is always finite and real, including rank-deficient covariances (N < dim), so no epsilon is ever
/// added; there the result agrees with scipy to ~1e-3 relative (scipy's own error), elsewhere to ~1e-10.
public enum FID {
    public static func distance(_ a: GaussianStats, _ b: GaussianStats) throws -> Double {
        guard a.dim == b.dim else { throw MetricsError.widthMismatch(what: "FID statistics", a: a.dim, b: b.dim) }
        let d = a.dim
        var diff2 = 0.0
        for i in 0..<d { let t = a.mu[i] - b.mu[i]; diff2 += t * t }
        var tr1 = 0.0, tr2 = 0.0
        for i in 0..<d { tr1 += a.sigma[i * d + i]; tr2 += b.sigma[i * d + i] }
        let trCovmean = try traceSqrtProduct(a.sigma, b.sigma, n: d)
        return diff2 + tr1 + tr2 - 2 * trCovmean
    }

    /// `tr((S1 S2)^(1/2))` for symmetric PSD S1, S2 (n x n, row-major).
    public static func traceSqrtProduct(_ s1: [Double], _ s2: [Double], n: Int) throws -> Double {
        // R = U diag(sqrt(max(lambda, 0))) U^T
        let (lam, u) = try LA64.symmetricEigen(s1, n: n, vectors: true)
        // Eigenvalues below the numerical rank tolerance (numpy's matrix_rank / pinv rule: n * eps * max) are
        // round-off of exact zeros (rank-deficient covariances, N <= dim); their square roots would turn ~1e-16
        // noise into ~1e-8 each, so they count as 0.
        let tol1 = Double(n) * Double.ulpOfOne * max(lam.last ?? 0, 0)
        var us = u  // U scaled column-wise by sqrt(lambda)
        for j in 0..<n {
            let s = lam[j] > tol1 ? lam[j].squareRoot() : 0
            for i in 0..<n { us[i * n + j] *= s }
        }
        var r = [Double](repeating: 0, count: n * n)
        var t = [Double](repeating: 0, count: n * n)
        var m = [Double](repeating: 0, count: n * n)
        us.withUnsafeBufferPointer { pus in
            r.withUnsafeMutableBufferPointer { pr in
                u.withUnsafeBufferPointer { pu in
                    LA64.gemm(
                        transB: true, m: n, n: n, k: n, a: pus.baseAddress!, lda: n, b: pu.baseAddress!, ldb: n,
                        c: pr.baseAddress!, ldc: n)
                }
            }
        }
        r.withUnsafeBufferPointer { pr in
            s2.withUnsafeBufferPointer { ps in
                t.withUnsafeMutableBufferPointer { pt in
                    LA64.gemm(m: n, n: n, k: n, a: pr.baseAddress!, lda: n, b: ps.baseAddress!, ldb: n, c: pt.baseAddress!, ldc: n)
                }
            }
        }
        t.withUnsafeBufferPointer { pt in
            r.withUnsafeBufferPointer { pr in
                m.withUnsafeMutableBufferPointer { pm in
                    LA64.gemm(m: n, n: n, k: n, a: pt.baseAddress!, lda: n, b: pr.baseAddress!, ldb: n, c: pm.baseAddress!, ldc: n)
                }
            }
        }
        for i in 0..<n { for j in (i + 1)..<n { let v = 0.5 * (m[i * n + j] + m[j * n + i]); m[i * n + j] = v; m[j * n + i] = v } }
        let (mu, _) = try LA64.symmetricEigen(m, n: n, vectors: false)
        let tol2 = Double(n) * Double.ulpOfOne * max(mu.last ?? 0, 0)
        var tr = 0.0
        for v in mu where v > tol2 { tr += v.squareRoot() }
        return tr
    }
}
