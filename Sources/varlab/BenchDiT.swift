import ArgumentParser
import Benchmarks
import DiT
import Foundation
import Tensor

/// `varlab bench dit`: random weights in the official shapes, so it runs without downloads.
/// One denoising step is the CFG pair (batch 2: the conditional and the null row of one image), exactly what
/// sample.py runs per step; the per-image time at N steps is N times that, plus one VAE decode.
struct BenchDiT: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dit",
        abstract: "DiT denoising step (batch 2 = one image with CFG) and SD-VAE decode times with random weights in official shapes.")

    @Option(help: "Official DiT config: S|B|L|XL followed by /2, /4 or /8.")
    var config: String = "XL/2"

    @Option(help: "Image size in pixels (256 or 512 for the released models).")
    var imageSize: Int = 256

    @Option(help: "Timed denoising steps (after one warm-up step).")
    var repeats: Int = 3

    @Flag(help: "Use one set of block weights for all blocks (same arithmetic, a fraction of the memory).")
    var shareBlocks = false

    @Flag(help: "Skip the VAE decode timing.")
    var noVae = false

    @Flag(
        help:
            "Also print wall time per op kind (matmul, conv, im2col, attention, norms, elementwise, interpolation) for one denoising step and the VAE decode."
    )
    var profile = false
    @OptionGroup var precision: PrecisionOptions
    @OptionGroup var convRoute: ConvOptions
    @OptionGroup var common: CommonOptions

    func run() throws {
        convRoute.apply()
        let report = try common.apply()
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        let cfg: DiTConfig
        do { cfg = try DiTConfig.named(config, imageSize: imageSize) } catch { throw ValidationError("--config: \(error)") }
        print(report)
        print("threads: \(Parallel.threads)")
        print(cfg)
        let gflop = cfg.forwardFLOPs * 2 / 1e9
        print(String(format: "forward FLOPs per image: %.1f GFLOP (x2 for the CFG pair: %.1f GFLOP per step)", gflop / 2, gflop))

        let matmul = precision.precision()
        let bench = try DiTBenchmark(config: cfg, shareBlocks: shareBlocks, precision: matmul)
        print(
            String(
                format: "random weights: %.1f s (%@); Linear products in %@", bench.buildSeconds,
                shareBlocks ? "shared blocks" : "distinct blocks", matmul.rawValue))
        let r = try bench.steps(repeats: repeats, profile: profile)
        print(
            String(
                format: "denoising step (batch 2, CFG pair): warm-up %.3f s, median of %d: %.3f s/step (%.1f GFLOP/s); "
                    + "CPU time %.3f s/step (%.1f GFLOP per CPU-second; on a busy machine wall time exceeds CPU time / threads)",
                r.warmUp, repeats, r.median, gflop / r.median, r.cpuPerStep, gflop / r.cpuPerStep))
        if let p = r.profile { print(p.table) }

        var decode = 0.0
        if !noVae {
            let (t, table) = try SDVAEDecodeBenchmark(latentSize: cfg.inputSize).run(profile: profile)
            decode = t.wall
            if let table { print(table.table) }
            print(
                String(
                    format: "SD-VAE decode %dx%d: %.3f s/image (CPU time %.3f s)", cfg.inputSize * 8, cfg.inputSize * 8, t.wall, t.cpu))
        }
        for n in [250, 50] {
            print(
                String(
                    format: "extrapolated: %d steps -> %.1f s/image (%.1f s denoising + %.2f s decode)",
                    n, Double(n) * r.median + decode, Double(n) * r.median, decode))
        }
        print(String(format: "peak resident memory: %.2f GB", Double(MachineState.peakResidentBytes()) / 1e9))
    }
}
