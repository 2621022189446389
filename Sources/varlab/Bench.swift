import ArgumentParser
import Benchmarks
import Foundation
import Tensor

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks: prints the BLAS kernel, thread count, times and ratios against a baseline measured in the same run.",
        subcommands: [
            BenchAll.self, BenchGemm.self, BenchKernels.self, BenchVAR.self, BenchDiT.self, BenchEval.self, BenchToyQuality.self,
        ])
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
        guard !ns.isEmpty, ns.allSatisfy({ $0 >= 1 && $0 <= 16384 }) else {
            throw ValidationError("--sizes must be comma-separated sizes in 1...16384, got '\(sizes)'")
        }
        print("size    sgemm GFLOP/s   swift-loop GFLOP/s   ratio")
        for r in GemmBenchmark.run(sizes: ns, loopMax: loopMax) {
            let loop = r.loopGFLOPs.map { String(format: "%.2f", $0) } ?? "-"
            let ratio = r.loopGFLOPs.map { String(format: "%.0fx", r.gflops / $0) } ?? "-"
            print(String(format: "%-7d %-15.1f %-20@ %@", r.size, r.gflops, loop, ratio))
        }
    }
}

/// `--conv`: which route 3x3 stride-1 convolutions take in a benchmark, so the Winograd gain is measured in one run.
struct ConvOptions: ParsableArguments {
    enum Route: String, ExpressibleByArgument, CaseIterable { case winograd, im2col }
    @Option(help: "3x3 stride-1 convolutions: winograd (the default) or im2col (the route before it, for comparison).")
    var conv: Route = .winograd

    func apply() { Conv2d.algorithm = conv == .winograd ? .automatic : .im2col }
}
