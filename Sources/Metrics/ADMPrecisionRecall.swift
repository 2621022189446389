import Foundation
import Tensor

/// ADM's precision / recall with ADM's own distances, to reproduce published ADM numbers: its TensorFlow
/// `DistanceBlock` casts both feature batches to float16 and computes `max(|u|^2 - 2 u.v + |v|^2, 0)` with every
/// op rounded to float16 (products accumulated in float32), falling back to float32 for a whole
/// 10,000 x 10,000 block when anything in it overflows; radii are the k-th smallest of each row (self = 0th),
/// membership is `d <= radius`, all on those rounded values. `PrecisionRecall.compute` (the default) uses exact
/// distances instead; the two differ by a few tenths of a percent.
public enum ADMPrecisionRecall {
    /// ADM ManifoldEstimator's row_batch_size / col_batch_size: the unit of the float32 fallback.
    static let admBlock = 10_000

    public static func compute(reference: Tensor, samples: Tensor, k: Int = 3) throws -> (precision: Double, recall: Double) {
        guard reference.rank == 2, samples.rank == 2 else {
            throw MetricsError.badShape(
                what: "precision/recall features", shape: reference.rank == 2 ? samples.shape : reference.shape, expected: "[N, D]")
        }
        guard reference.shape[1] == samples.shape[1] else {
            throw MetricsError.widthMismatch(what: "precision/recall", a: reference.shape[1], b: samples.shape[1])
        }
        let x = try Side(reference, "reference features"), y = try Side(samples, "sample features")
        let rx = try radii(x, k: k), ry = try radii(y, k: k)
        var refInSamples = [Bool](repeating: false, count: x.n), sampleInRef = [Bool](repeating: false, count: y.n)
        forEachBlock(x, y) { r0, c0, rows, cols, d in
            for i in 0..<rows {
                for j in 0..<cols {
                    let v = d[i * cols + j]
                    if v <= ry[c0 + j] { refInSamples[r0 + i] = true }
                    if v <= rx[r0 + i] { sampleInRef[c0 + j] = true }
                }
            }
        }
        return (Double(sampleInRef.filter { $0 }.count) / Double(y.n), Double(refInSamples.filter { $0 }.count) / Double(x.n))
    }

    /// ADM `manifold_radii`: the k-th smallest squared distance of each row (float32 values of the float16 block).
    public static func radii(_ features: Tensor, k: Int = 3) throws -> [Float] {
        try radii(Side(features, "features"), k: k)
    }

    /// Features as float32, their float16 roundings, and both kinds of squared norms.
    struct Side {
        let n: Int, d: Int
        let f32: [Float], f16: [Float]
        let norm32: [Float], norm16: [Float]

        init(_ t: Tensor, _ what: String) throws {
            guard t.rank == 2 else { throw MetricsError.badShape(what: what, shape: t.shape, expected: "[N, D]") }
            try requireFinite(t.data, columns: t.shape[1], what: what)
            (n, d) = (t.shape[0], t.shape[1])
            f32 = t.data
            f16 = t.data.map { Float(Float16($0)) }
            var a = [Float](repeating: 0, count: n), b = [Float](repeating: 0, count: n)
            for i in 0..<n {
                var s32: Float = 0, s16: Float = 0
                for j in 0..<d {
                    let v = f32[i * d + j], h = f16[i * d + j]
                    s32 += v * v
                    s16 += Float(Float16(h * h))  // tf.square in float16, reduce_sum accumulating in float32
                }
                a[i] = s32; b[i] = Float(Float16(s16))
            }
            norm32 = a; norm16 = b
        }
    }

    static func radii(_ x: Side, k: Int) throws -> [Float] {
        guard x.n > k else { throw MetricsError.tooFewSamples(what: "k-NN radius (k = \(k))", count: x.n, needed: k + 1) }
        var best = [[Float]](repeating: [Float](repeating: .infinity, count: k + 1), count: x.n)
        forEachBlock(x, x) { r0, _, rows, cols, d in
            for i in 0..<rows {
                var b = best[r0 + i]
                for j in 0..<cols where d[i * cols + j] < b[k] {
                    var p = k
                    while p > 0 && b[p - 1] > d[i * cols + j] { b[p] = b[p - 1]; p -= 1 }
                    b[p] = d[i * cols + j]
                }
                best[r0 + i] = b
            }
        }
        return best.map { $0[k] }
    }

    /// Calls `body(r0, c0, rows, cols, D)` for each ADM block of squared distances, row-major rows x cols.
    static func forEachBlock(_ x: Side, _ y: Side, _ body: (Int, Int, Int, Int, [Float]) -> Void) {
        var r0 = 0
        while r0 < x.n {
            let rows = min(admBlock, x.n - r0)
            var c0 = 0
            while c0 < y.n {
                let cols = min(admBlock, y.n - c0)
                var d = block(x, y, r0, c0, rows, cols, half: true)
                if d.contains(where: { !$0.isFinite }) { d = block(x, y, r0, c0, rows, cols, half: false) }
                body(r0, c0, rows, cols, d)
                c0 += cols
            }
            r0 += rows
        }
    }

    /// `_batch_pairwise_distances` on float16 (`half`) or float32 inputs.
    static func block(_ x: Side, _ y: Side, _ r0: Int, _ c0: Int, _ rows: Int, _ cols: Int, half: Bool) -> [Float] {
        var g = [Float](repeating: 0, count: rows * cols)
        let (a, b) = half ? (x.f16, y.f16) : (x.f32, y.f32)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                g.withUnsafeMutableBufferPointer { pg in
                    BLAS.sgemm(
                        transB: true, m: rows, n: cols, k: x.d, a: pa.baseAddress! + r0 * x.d, lda: x.d,
                        b: pb.baseAddress! + c0 * y.d, ldb: y.d, c: pg.baseAddress!, ldc: cols)
                }
            }
        }
        let nx = half ? x.norm16 : x.norm32, ny = half ? y.norm16 : y.norm32
        for i in 0..<rows {
            for j in 0..<cols {
                let v: Float
                if half {
                    let twoMM = Float(Float16(2 * Float(Float16(g[i * cols + j]))))
                    v = Float(Float16(Float(Float16(nx[r0 + i] - twoMM)) + ny[c0 + j]))
                } else {
                    v = nx[r0 + i] - 2 * g[i * cols + j] + ny[c0 + j]
                }
                g[i * cols + j] = max(v, 0)
            }
        }
        return g
    }
}
