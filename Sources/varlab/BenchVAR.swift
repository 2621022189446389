import ArgumentParser
import Benchmarks
import Foundation
import Tensor

/// `varlab bench var`: random weights in the exact official shapes (VAR-d{depth} + the ch160/z32/v4096 VQ-VAE),
/// so it runs without downloads. Times a full 256x256 generation with CFG (official settings: cfg 1.5, top-k 900,
/// top-p 0.96) at each batch size, split into the transformer loop (10 scales, KV cache, token sampling) and the
/// VQ-VAE decode, with achieved GFLOP/s from an analytic FLOP count (multiply-adds x 2).
struct BenchVAR: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "var",
        abstract: "VAR seconds per 256x256 image (transformer / VAE decode split, GFLOP/s) with random official-shape weights.")

    @Option(help: "VAR depth (16, 20, 24, 30; 36 uses shared AdaLN as released).") var depth: Int = 16
    @Option(help: "Comma-separated batch sizes (images; the CFG batch is twice that).") var batches: String = "1,8"
    @Option(help: "Timed runs per batch size (after one warm-up run at batch 1).") var repeats: Int = 1
    @Flag(help: "One set of block weights for all blocks (same arithmetic, a fraction of the memory).") var shareBlocks = false
    @Flag(
        help:
            "Also print wall time per op kind (matmul, conv, im2col, attention, norms, elementwise, sampling, interpolation) for the last run of each batch size."
    )
    var profile = false
    @OptionGroup var fast: FastOptions
    @OptionGroup var precision: PrecisionOptions
    @OptionGroup var convRoute: ConvOptions
    @OptionGroup var common: CommonOptions

    func run() throws {
        convRoute.apply()
        let report = try common.apply()
        guard depth >= 1 && depth <= 64 else { throw ValidationError("--depth must be in 1...64, got \(depth)") }
        guard repeats >= 1 else { throw ValidationError("--repeats must be >= 1") }
        let bs = batches.split(separator: ",").compactMap { Int($0) }
        guard !bs.isEmpty && bs.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--batches must be positive integers, got '\(batches)'")
        }
        print(report)
        print("threads: \(Parallel.threads)")
        print(String(format: "load average at start: %.1f", MachineState.loadAverage()))
        let matmul = precision.precision()
        let bench = try VARBenchmark(depth: depth, shareBlocks: shareBlocks, pruning: try fast.pruning(), precision: matmul)
        let vc = bench.config
        print(
            String(
                format:
                    "VAR-d%d: width %d, %d heads, %d blocks%@; VQ-VAE ch160 z32 v4096; patch nums %@ (built in %.1fs); Linear products in %@",
                depth, vc.width, vc.heads, vc.depth, shareBlocks ? " (shared weights)" : "",
                vc.patchNums.map(String.init).joined(separator: ","), bench.buildSeconds, matmul.rawValue))
        if let pruning = bench.pruning {
            print(
                "FastVAR pruning: drop \(pruning.dropRatios) of the tokens at the last \(pruning.dropRatios.count) scales, blocks \(pruning.firstPrunedBlock)+"
            )
        }
        let tflop = bench.transformerGFLOP, dflop = bench.decodeGFLOP
        print(String(format: "analytic GFLOP per image: transformer (CFG pair) %.1f, VAE decode %.1f", tflop, dflop))
        try bench.warmUp()
        // Wall-clock seconds, plus process CPU seconds (on a shared machine the CPU time divided by the thread
        // count is what an otherwise idle machine would take).
        print("batch   transformer s/img  GFLOP/s   decode s/img  GFLOP/s   total s/img   (CPU s/img: transformer, decode)")
        for b in bs {
            let r = try bench.run(batch: b, repeats: repeats, profile: profile)
            print(
                String(
                    format: "%-7d %-18.3f %-9.1f %-13.3f %-9.1f %-13.3f (%.2f, %.2f)", b, r.transformer.wall, tflop / r.transformer.wall,
                    r.decode.wall, dflop / r.decode.wall, r.total.wall, r.transformer.cpu, r.decode.cpu))
            for p in r.profiles { print(p.table) }
            fflush(stdout)
        }
        print(String(format: "peak resident memory: %.2f GB", Double(MachineState.peakResidentBytes()) / 1e9))
        if matmul != .float32 {
            let agreement = try bench.tokenAgreementWithFloat32(batch: bs.max()!)
            print(
                "tokens equal to the float32 run (batch \(bs.max()!), seed 0, per scale): "
                    + agreement.map { String(format: "%.3f", $0) }.joined(separator: " "))
        }
    }
}
