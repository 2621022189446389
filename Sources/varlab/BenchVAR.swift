import ArgumentParser
import Autoencoders
import Foundation
import ModelIO
import Samplers
import Tensor
import VAR

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
    @OptionGroup var common: CommonOptions

    func run() throws {
        let report = try common.apply()
        guard depth >= 1 && depth <= 64 else { throw ValidationError("--depth must be in 1...64, got \(depth)") }
        guard repeats >= 1 else { throw ValidationError("--repeats must be >= 1") }
        let bs = batches.split(separator: ",").compactMap { Int($0) }
        guard !bs.isEmpty && bs.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--batches must be positive integers, got '\(batches)'")
        }
        print(report)
        print("threads: \(Parallel.threads)")
        print(String(format: "load average at start: %.1f", Self.loadAverage()))
        let vc = VARConfig.official(depth: depth)
        let t0 = Date()
        let model = try VARModel(archive: RandomArchive(shapes: vc.stateDictShapes, shareBlocks: shareBlocks))
        let vae = try VQVAE(
            archive: RandomArchive(shapes: VQVAEConfig.official.stateDictShapes, shareBlocks: false),
            patchNums: vc.patchNums)
        print(
            String(
                format: "VAR-d%d: width %d, %d heads, %d blocks%@; VQ-VAE ch160 z32 v4096; patch nums %@ (built in %.1fs)",
                depth, vc.width, vc.heads, vc.depth, shareBlocks ? " (shared weights)" : "",
                vc.patchNums.map(String.init).joined(separator: ","), Date().timeIntervalSince(t0)))
        let pruning = try fast.pruning()
        if let pruning {
            print(
                "FastVAR pruning: drop \(pruning.dropRatios) of the tokens at the last \(pruning.dropRatios.count) scales, blocks \(pruning.firstPrunedBlock)+"
            )
        }
        let sampler = try NextScaleSampler(model: model, vae: vae, cfg: 1.5, options: TokenSamplingOptions(), pruning: pruning)
        let tflop = vc.samplingFLOPs / 1e9, dflop = VQVAEConfig.official.decoderFLOPs(latent: vc.patchNums.last!) / 1e9
        print(String(format: "analytic GFLOP per image: transformer (CFG pair) %.1f, VAE decode %.1f", tflop, dflop))
        _ = try sampler.sample(labels: [1], seed: 0, decode: false)  // warm-up (page in weights, BLAS buffers)
        // Wall-clock seconds, plus process CPU seconds (on a shared machine the CPU time divided by the thread
        // count is what an otherwise idle machine would take).
        print("batch   transformer s/img  GFLOP/s   decode s/img  GFLOP/s   total s/img   (CPU s/img: transformer, decode)")
        for b in bs {
            var tT = 0.0, tD = 0.0, cT = 0.0, cD = 0.0
            var profiles: [String] = []
            for r in 0..<repeats {
                let labels = (0..<b).map { ($0 * 97 + r) % vc.numClasses }
                let last = profile && r == repeats - 1
                if last { Profiler.start() }
                let s0 = Date(), c0 = ProcessClock.cpuSeconds()
                let res = try sampler.sample(labels: labels, sampleIndices: Array(0..<b), seed: UInt64(r), decode: false)
                let s1 = Date(), c1 = ProcessClock.cpuSeconds()
                if last {
                    profiles.append("transformer phase, batch \(b):\n" + Profiler.table(Profiler.stop(), wall: s1.timeIntervalSince(s0)));
                    Profiler.start()
                }
                let d1 = Date()
                _ = vae.decode(fhat: res.fhat)
                let s2 = Date(), c2 = ProcessClock.cpuSeconds()
                if last {
                    profiles.append("VQ-VAE decode, batch \(b):\n" + Profiler.table(Profiler.stop(), wall: s2.timeIntervalSince(d1)))
                }
                tT += s1.timeIntervalSince(s0); tD += s2.timeIntervalSince(s1)
                cT += c1 - c0; cD += c2 - c1
            }
            let n = Double(b * repeats)
            print(
                String(
                    format: "%-7d %-18.3f %-9.1f %-13.3f %-9.1f %-13.3f (%.2f, %.2f)", b, tT / n, tflop * n / tT, tD / n, dflop * n / tD,
                    (tT + tD) / n, cT / n, cD / n))
            for p in profiles { print(p) }
            fflush(stdout)
        }
    }

    static func loadAverage() -> Double {
        var l = [Double](repeating: 0, count: 3)
        return getloadavg(&l, 3) > 0 ? l[0] : .nan
    }

}
