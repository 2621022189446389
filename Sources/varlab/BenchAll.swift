import ArgumentParser
import Benchmarks
import DiT
import Foundation
import Tensor

/// `varlab bench all`: one table for every workload, each against the sgemm rate measured in the same run.
struct BenchAll: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "all",
        abstract:
            "sgemm, VAR (transformer, VQ-VAE decode), DiT step, SD-VAE decode and Inception in one run: s per image, GFLOP/s, fraction of the same-run sgemm rate."
    )

    @Option(help: "VAR depth (official shapes, random weights).") var depth: Int = 16
    @Option(help: "VAR batch size (images).") var batch: Int = 1
    @Option(help: "Official DiT config (S|B|L|XL followed by /2, /4 or /8).") var dit: String = "XL/2"
    @Option(help: "Timed DiT steps (median).") var ditRepeats: Int = 3
    @Option(help: "Inception weights (default $VARLAB_INCEPTION or the fixture weights; skipped if missing).") var inception: String?
    @Option(help: "Images for the Inception row.") var inceptionImages: Int = 8
    @OptionGroup var convRoute: ConvOptions
    @OptionGroup var common: CommonOptions

    func run() throws {
        convRoute.apply()
        let report = try common.apply()
        guard depth >= 1 && depth <= 64 else { throw ValidationError("--depth must be in 1...64, got \(depth)") }
        guard batch >= 1, ditRepeats >= 1, inceptionImages >= 1 else {
            throw ValidationError("--batch, --dit-repeats and --inception-images must be at least 1")
        }
        do { _ = try DiTConfig.named(dit) } catch { throw ValidationError("--dit: \(error)") }
        setvbuf(stdout, nil, _IOLBF, 0)
        print(report)
        print(String(format: "threads: %d; load average at start: %.1f", Parallel.threads, MachineState.loadAverage()))
        var o = BenchmarkSuite.Options()
        o.varDepth = depth
        o.varBatch = batch
        o.dit = dit
        o.ditRepeats = ditRepeats
        o.inceptionImages = inceptionImages
        let weights = inception ?? ProcessInfo.processInfo.environment["VARLAB_INCEPTION"] ?? BenchEval.fixtureInception
        o.inception = FileManager.default.fileExists(atPath: weights) ? weights : nil
        if o.inception == nil { note("Inception row skipped: no weights at \(weights) (give --inception F)") }
        let result = try BenchmarkSuite.run(o) { note($0) }
        print(result.table())
    }
}
