import ArgumentParser
import Benchmarks
import Foundation
import ModelIO
import Tensor

/// `varlab bench kernels`: the kernel micro-benchmarks, against a stored baseline of the same CPU model.
struct BenchKernels: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "Kernel micro-benchmarks (GEMM blocks, conv, attention, norms, top-k) with statistics and a stored baseline.",
        discussion: """
            Each kernel runs once to warm up, then --repeats times: median, MAD and minimum seconds. With --baseline \
            (a file --save-baseline wrote on a machine with the same CPU model) each median is compared with the stored \
            one, and a kernel more than --tolerance slower, by more than three MADs or also at its fastest run, is a \
            REGRESSION (exit 1). \
            Baselines of the project's machines are in bench/baselines/.
            """)

    @Option(help: "Timed runs per kernel.") var repeats: Int = 15
    @Option(help: "Only the kernels whose name contains this.") var only: String?
    @Option(help: "Compare with this baseline (JSON from --save-baseline).") var baseline: String?
    @Option(help: "Write this run as a baseline (JSON).") var saveBaseline: String?
    @Option(help: "Slowdown that counts as a regression (0.10 = 10%).") var tolerance: Double = 0.10
    @OptionGroup var common: CommonOptions

    func run() throws {
        let report = try common.apply()
        guard (1...10_000).contains(repeats) else { throw ValidationError("--repeats must be in 1...10000, got \(repeats)") }
        guard tolerance >= 0, tolerance.isFinite else { throw ValidationError("--tolerance must be a number >= 0, got \(tolerance)") }
        if let saveBaseline { try AtomicFile.checkWritable(saveBaseline, what: "--save-baseline") }
        var base: KernelBenchmark.Baseline?
        if let baseline {
            guard let data = FileManager.default.contents(atPath: baseline) else {
                throw ValidationError("--baseline \(baseline): cannot read")
            }
            do { base = try JSONDecoder().decode(KernelBenchmark.Baseline.self, from: data) } catch {
                throw ValidationError("--baseline \(baseline): not a kernel baseline (\(error))")
            }
            if base!.cpu != CPUInfo.current.identity || base!.threads != Parallel.threads {
                throw ValidationError(
                    "--baseline \(baseline) was measured on '\(base!.cpu)' with \(base!.threads) threads; this is '\(CPUInfo.current.identity)' with \(Parallel.threads): compare like with like"
                )
            }
        }
        print(report)
        print(String(format: "threads: %d; load average %.2f; %d runs per kernel", Parallel.threads, MachineState.loadAverage(), repeats))
        let rows = KernelBenchmark.run(repeats: repeats, only: only, baseline: base, tolerance: tolerance)
        guard !rows.isEmpty else { throw ValidationError("--only \(only ?? ""): no kernel has that in its name") }
        print("kernel                                              median ms    MAD ms    min ms   GFLOP/s   vs baseline")
        for r in rows {
            let g = r.gflops.map { String(format: "%9.1f", $0) } ?? "        -"
            let vs = r.ratio.map { String(format: "%.2fx", $0) + (r.regression ? " REGRESSION" : "") } ?? "-"
            print(
                r.name.padding(toLength: 50, withPad: " ", startingAt: 0)
                    + String(format: " %10.3f %9.3f %9.3f ", r.stats.median * 1e3, r.stats.mad * 1e3, r.stats.min * 1e3) + g + "   " + vs)
        }
        if let saveBaseline {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write(try enc.encode(KernelBenchmark.baseline(rows)), to: saveBaseline)
            print("baseline written to \(saveBaseline)")
        }
        let slower = rows.filter(\.regression)
        if !slower.isEmpty {
            throw ValidationError("\(slower.count) kernel(s) slower than the baseline: \(slower.map(\.name).joined(separator: "; "))")
        }
    }
}
