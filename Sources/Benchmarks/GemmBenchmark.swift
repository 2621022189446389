import Foundation
import Tensor

/// The machine's own arithmetic rate: sgemm on square matrices through varlab's BLAS path (its kernel choice and
/// tiling), the yardstick every model benchmark is a fraction of.
public enum GemmBenchmark {
    public struct Row: Sendable {
        public let size: Int
        public let gflops: Double
        /// The plain triple loop's rate (nil above the size it was run at).
        public let loopGFLOPs: Double?
    }

    /// sgemm GFLOP/s at n x n x n, repeated to about 2e10 FLOPs after a warm-up.
    public static func sgemmRate(_ n: Int) -> Double {
        var rng = PhiloxRandom(seed: UInt64(n))
        let a = Tensor.randn([n, n], rng: &rng), b = Tensor.randn([n, n], rng: &rng)
        let flops = 2 * Double(n) * Double(n) * Double(n)
        _ = a.matmul(b)
        let reps = max(1, Int(2e10 / flops))
        let t0 = Date()
        for _ in 0..<reps { _ = a.matmul(b) }
        return flops * Double(reps) / Date().timeIntervalSince(t0) / 1e9
    }

    public static func run(sizes: [Int], loopMax: Int) -> [Row] {
        sizes.map { n in
            var loop: Double?
            if n <= loopMax {
                var rng = PhiloxRandom(seed: UInt64(n))
                let a = Tensor.randn([n, n], rng: &rng).data, b = Tensor.randn([n, n], rng: &rng).data
                let t = Date()
                _ = naiveMatmul(a, b, n)
                loop = 2 * Double(n * n) * Double(n) / Date().timeIntervalSince(t) / 1e9
            }
            return Row(size: n, gflops: sgemmRate(n), loopGFLOPs: loop)
        }
    }

    /// The straightforward triple loop (i, k, j order so the inner loop is contiguous).
    static func naiveMatmul(_ a: [Float], _ b: [Float], _ n: Int) -> [Float] {
        var c = [Float](repeating: 0, count: n * n)
        for i in 0..<n {
            for k in 0..<n {
                let aik = a[i * n + k]
                for j in 0..<n { c[i * n + j] += aik * b[k * n + j] }
            }
        }
        return c
    }
}
