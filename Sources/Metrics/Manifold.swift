import Foundation
import Tensor

/// k-nearest-neighbour manifolds (Kynkäänniemi et al. 2019; Naeem et al. 2020) with exact decisions.
///
/// Squared distances `|u|^2 + |v|^2 - 2 u.v` are computed in bulk with a float32 sgemm for the dot products
/// (norms in float64). Every decision ("is d <= r", "which value is the k-th smallest") is first taken from
/// that approximation only when a rigorous float32 error bound (|error of u.v| <= (D + 2) 2^-24 |u| |v|, with
/// 2 |u| |v| <= |u|^2 + |v|^2) cannot flip it; the rare undecided cases are recomputed exactly in float64 as
/// sum (u_i - v_i)^2. The results are therefore those of exact distances, whatever the BLAS kernel or thread
/// count, at sgemm speed.
public struct FeatureMatrix: Sendable {
    public let n: Int, d: Int
    public let data: [Float]
    let norms: [Double]

    public init(_ t: Tensor, what: String) throws {
        guard t.rank == 2 else { throw MetricsError.badShape(what: what, shape: t.shape, expected: "[N, D]") }
        let (rows, cols) = (t.shape[0], t.shape[1])
        n = rows; d = cols
        try requireFinite(t.data, columns: cols, what: what)
        data = t.data
        var nm = [Double](repeating: 0, count: rows)
        t.data.withUnsafeBufferPointer { p in
            for i in 0..<rows { var s = 0.0; for j in 0..<cols { let v = Double(p[i * cols + j]); s += v * v }; nm[i] = s }
        }
        norms = nm
    }

    /// sum_k (a_k - b_k)^2 in float64 (exact up to float64 rounding).
    @inline(__always)
    func exactSq(_ i: Int, _ other: FeatureMatrix, _ j: Int) -> Double {
        data.withUnsafeBufferPointer { a in
            other.data.withUnsafeBufferPointer { b in
                var s = 0.0
                let pa = a.baseAddress! + i * d, pb = b.baseAddress! + j * d
                for k in 0..<d { let t = Double(pa[k]) - Double(pb[k]); s += t * t }
                return s
            }
        }
    }

    /// Error bound factor of the float32 dot product for this width.
    var marginFactor: Double { Double(d + 2) * 0x1p-24 * 1.01 }
}

enum Manifold {
    /// Rows per block of the distance matrix (block = rows x N floats).
    static let rowBlock = 256

    /// Runs `body(r0, rows, G)` with G = X[r0 ..< r0 + rows] Y^T (float32, rows x Y.n), block by block.
    static func blocks(_ x: FeatureMatrix, _ y: FeatureMatrix, _ body: (Int, Int, UnsafePointer<Float>) -> Void) {
        var g = [Float](repeating: 0, count: min(rowBlock, x.n) * y.n)
        var r0 = 0
        while r0 < x.n {
            let rows = min(rowBlock, x.n - r0)
            x.data.withUnsafeBufferPointer { px in
                y.data.withUnsafeBufferPointer { py in
                    g.withUnsafeMutableBufferPointer { pg in
                        BLAS.sgemm(
                            transB: true, m: rows, n: y.n, k: x.d, a: px.baseAddress! + r0 * x.d, lda: x.d,
                            b: py.baseAddress!, ldb: y.d, c: pg.baseAddress!, ldc: y.n)
                    }
                }
            }
            g.withUnsafeBufferPointer { body(r0, rows, $0.baseAddress!) }
            r0 += rows
        }
    }

    /// Squared distance from each point to its k-th nearest neighbour in the same set, the point itself being
    /// neighbour 0 (ADM `manifold_radii` with nhood k: column k of the partitioned row; prdc with nearest_k = k:
    /// the (k+1)-th smallest including self). Exact (see `FeatureMatrix`).
    static func kthRadii(_ x: FeatureMatrix, k: Int) throws -> [Double] {
        guard x.n > k else { throw MetricsError.tooFewSamples(what: "k-NN radius (k = \(k))", count: x.n, needed: k + 1) }
        var radii = [Double](repeating: 0, count: x.n)
        let maxNorm = x.norms.max() ?? 0
        let f = x.marginFactor
        radii.withUnsafeMutableBufferPointer { pr in
            let out = UnsafeSendable(UnsafePointer(pr.baseAddress!))
            blocks(x, x) { r0, rows, g in
                let pg = UnsafeSendable(g)
                Parallel.forEach(rows) { li in
                    let i = r0 + li
                    let row = pg.p + li * x.n
                    let ni = x.norms[i]
                    // k+1 smallest approximate values (ascending), by insertion.
                    var best = [Double](repeating: .infinity, count: k + 1)
                    for j in 0..<x.n {
                        let a = ni + x.norms[j] - 2 * Double(row[j])
                        if a < best[k] {
                            var p = k
                            while p > 0 && best[p - 1] > a { best[p] = best[p - 1]; p -= 1 }
                            best[p] = a
                        }
                    }
                    let t = best[k]
                    let m = 2 * f * (ni + maxNorm) + 1e-300
                    var below = 0
                    var exact: [Double] = []
                    for j in 0..<x.n {
                        let a = ni + x.norms[j] - 2 * Double(row[j])
                        if a < t - m { below += 1 } else if a <= t + m { exact.append(x.exactSq(i, x, j)) }
                    }
                    exact.sort()
                    UnsafeMutablePointer(mutating: out.p)[i] = exact[k - below]
                }
            }
        }
        return radii
    }

    struct Membership {
        /// For each Y point: number of X points whose ball holds it (d(x_i, y_j) vs radius of x_i).
        var countY: [Int]
        /// For each X point: is it inside some Y ball (d(x_i, y_j) vs radius of y_j).
        var xInY: [Bool]
        /// For each X point: does its own ball hold some Y point.
        var xCovers: [Bool]
    }

    /// `strict == false`: ADM's `d <= r` on float32-rounded squared distances and radii (what its DistanceBlock
    /// compares). `strict == true`: prdc's `d < r` (Euclidean; compared here as squares in float64).
    /// `fullCounts == false` stops counting a Y point once it is inside one ball (enough for precision).
    static func membership(
        x: FeatureMatrix, radiiX: [Double], y: FeatureMatrix, radiiY: [Double], strict: Bool,
        fullCounts: Bool
    ) -> Membership {
        var countY = [Int](repeating: 0, count: y.n)
        var xInY = [Bool](repeating: false, count: x.n)
        var xCovers = [Bool](repeating: false, count: x.n)
        let f = x.marginFactor
        /// Exact decision of `d (approx a, bound m) vs r` for the pair (i, j).
        @inline(__always) func inside(_ a: Double, _ m: Double, _ r: Double, _ i: Int, _ j: Int) -> Bool {
            if strict {
                if a + m < r { return true }
                if a - m >= r { return false }
                return x.exactSq(i, y, j) < r
            } else {
                if a + m <= r { return true }
                if a - m > r * (1 + 0x1p-21) { return false }
                return Float(x.exactSq(i, y, j)) <= Float(r)
            }
        }
        countY.withUnsafeMutableBufferPointer { pc in
            xInY.withUnsafeMutableBufferPointer { pin in
                xCovers.withUnsafeMutableBufferPointer { pcov in
                    let oc = UnsafeSendable(UnsafePointer(pc.baseAddress!))
                    let oin = UnsafeSendable(UnsafePointer(pin.baseAddress!)), ocov = UnsafeSendable(UnsafePointer(pcov.baseAddress!))
                    blocks(x, y) { r0, rows, g in
                        let pg = UnsafeSendable(g)
                        // Per X row: inside some Y ball? does its ball hold some Y point?
                        Parallel.forEach(rows) { li in
                            let i = r0 + li, row = pg.p + li * y.n, ni = x.norms[i]
                            var inY = false, covers = false
                            for j in 0..<y.n {
                                let a = ni + y.norms[j] - 2 * Double(row[j])
                                let m = f * (ni + y.norms[j]) + 1e-300
                                if !inY && inside(a, m, radiiY[j], i, j) { inY = true }
                                if !covers && inside(a, m, radiiX[i], i, j) { covers = true }
                                if inY && covers { break }
                            }
                            UnsafeMutablePointer(mutating: oin.p)[i] = inY
                            UnsafeMutablePointer(mutating: ocov.p)[i] = covers
                        }
                        // Per Y column (fixed chunks): how many X balls of this block hold it.
                        let chunk = 512
                        Parallel.forEach((y.n + chunk - 1) / chunk) { blk in
                            let counts = UnsafeMutablePointer(mutating: oc.p)
                            for j in (blk * chunk)..<min(y.n, (blk + 1) * chunk) {
                                if !fullCounts && counts[j] > 0 { continue }
                                let nj = y.norms[j]
                                for li in 0..<rows {
                                    let i = r0 + li
                                    let a = x.norms[i] + nj - 2 * Double(pg.p[li * y.n + j])
                                    let m = f * (x.norms[i] + nj) + 1e-300
                                    if inside(a, m, radiiX[i], i, j) {
                                        counts[j] += 1
                                        if !fullCounts { break }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return Membership(countY: countY, xInY: xInY, xCovers: xCovers)
    }
}

/// Improved precision and recall (k = 3) exactly as ADM's `ManifoldEstimator` (radii from each set by squared
/// distance to the k-th neighbour, self being neighbour 0; a point is in a manifold if `d <= radius` of any of
/// its points). precision = fraction of samples inside the reference manifold, recall = fraction of reference
/// points inside the sample manifold. ADM computes the distances in float16 on the GPU; we use exact distances
/// (the fixture's `_exact` values; the fp16 path differs by a few tenths of a percent).
public enum PrecisionRecall {
    public static func compute(reference: Tensor, samples: Tensor, k: Int = 3) throws -> (precision: Double, recall: Double) {
        guard reference.rank == 2, samples.rank == 2 else {
            throw MetricsError.badShape(
                what: "precision/recall features", shape: reference.rank == 2 ? samples.shape : reference.shape, expected: "[N, D]")
        }
        guard reference.shape[1] == samples.shape[1] else {
            throw MetricsError.widthMismatch(what: "precision/recall", a: reference.shape[1], b: samples.shape[1])
        }
        let x = try FeatureMatrix(reference, what: "reference features"), y = try FeatureMatrix(samples, what: "sample features")
        let rx = try Manifold.kthRadii(x, k: k), ry = try Manifold.kthRadii(y, k: k)
        let mem = Manifold.membership(x: x, radiiX: rx, y: y, radiiY: ry, strict: false, fullCounts: false)
        let precision = Double(mem.countY.filter { $0 > 0 }.count) / Double(y.n)
        let recall = Double(mem.xInY.filter { $0 }.count) / Double(x.n)
        return (precision, recall)
    }

    /// ADM's radii (squared k-th neighbour distances, float64).
    public static func radii(_ features: Tensor, k: Int = 3) throws -> [Double] {
        try Manifold.kthRadii(FeatureMatrix(features, what: "features"), k: k)
    }
}

/// Precision, recall, density and coverage (Naeem et al. 2020) as clovaai/prdc `compute_prdc` (k = 5):
/// Euclidean radii to the k-th neighbour excluding self, strict `<`.
public enum PRDC {
    public struct Result: Sendable, Equatable {
        public var precision, recall, density, coverage: Double
    }

    public static func compute(real: Tensor, fake: Tensor, k: Int = 5) throws -> Result {
        guard real.rank == 2, fake.rank == 2 else {
            throw MetricsError.badShape(what: "prdc features", shape: real.rank == 2 ? fake.shape : real.shape, expected: "[N, D]")
        }
        guard real.shape[1] == fake.shape[1] else { throw MetricsError.widthMismatch(what: "prdc", a: real.shape[1], b: fake.shape[1]) }
        let x = try FeatureMatrix(real, what: "real features"), y = try FeatureMatrix(fake, what: "fake features")
        let rx = try Manifold.kthRadii(x, k: k), ry = try Manifold.kthRadii(y, k: k)
        let mem = Manifold.membership(x: x, radiiX: rx, y: y, radiiY: ry, strict: true, fullCounts: true)
        let precision = Double(mem.countY.filter { $0 > 0 }.count) / Double(y.n)
        let recall = Double(mem.xInY.filter { $0 }.count) / Double(x.n)
        // prdc: (1 / k) * mean(counts), in this order (same float64 rounding)
        let density = (1 / Double(k)) * (Double(mem.countY.reduce(0, +)) / Double(y.n))
        let coverage = Double(mem.xCovers.filter { $0 }.count) / Double(x.n)
        return Result(precision: precision, recall: recall, density: density, coverage: coverage)
    }
}
