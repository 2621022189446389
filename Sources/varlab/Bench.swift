import ArgumentParser
import Foundation
import Tensor

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks: prints the BLAS kernel, thread count, times and ratios against a baseline measured in the same run.",
        subcommands: [BenchGemm.self, BenchVAR.self, BenchDiT.self, BenchEval.self, BenchToyQuality.self])
}

struct BenchGemm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm", abstract: "sgemm GFLOP/s for square sizes, next to a plain Swift loop.")

    @Option(help: "Comma-separated square sizes.")
    var sizes: String = "256,512,1024,2048,4096"

    @Option(help: "Largest size for the plain Swift loop baseline (it is slow).")
    var loopMax: Int = 512

    @OptionGroup var common: CommonOptions

    func run() throws {
        let report = try common.apply()
        print(report)
        print("threads: \(Parallel.threads)")
        let ns = sizes.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        print("size    sgemm GFLOP/s   swift-loop GFLOP/s   ratio")
        for n in ns {
            var rng = PhiloxRandom(seed: UInt64(n))
            let a = Tensor.randn([n, n], rng: &rng), b = Tensor.randn([n, n], rng: &rng)
            let flops = 2 * Double(n) * Double(n) * Double(n)
            _ = a.matmul(b)  // warm-up
            let reps = max(1, Int(2e10 / flops))
            let t0 = Date()
            for _ in 0..<reps { _ = a.matmul(b) }
            let gemm = flops * Double(reps) / Date().timeIntervalSince(t0) / 1e9
            var loopText = "-", ratioText = "-"
            if n <= loopMax {
                let t1 = Date()
                _ = naiveMatmul(a.data, b.data, n)
                let loop = flops / Date().timeIntervalSince(t1) / 1e9
                loopText = String(format: "%.2f", loop)
                ratioText = String(format: "%.0fx", gemm / loop)
            }
            print(String(format: "%-7d %-15.1f %-20@ %@", n, gemm, loopText, ratioText))
        }
    }

    /// The straightforward triple loop (i, k, j order so the inner loop is contiguous).
    func naiveMatmul(_ a: [Float], _ b: [Float], _ n: Int) -> [Float] {
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
