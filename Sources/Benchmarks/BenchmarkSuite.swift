import DiT
import Foundation
import Tensor

/// `bench all`: the machine's sgemm rate, then every model workload at its official size (random weights), each
/// as one row: seconds per unit, the GEMM FLOPs it ran (counted at the sgemm entry in a separate, profiled run),
/// the rate that makes, that rate as a fraction of the same-run sgemm rate, and how busy the cores were.
public enum BenchmarkSuite {
    public struct Options: Sendable {
        public var varDepth = 16
        public var varBatch = 1
        public var dit = "XL/2"
        public var ditRepeats = 3
        /// InceptionV3 weights (nil skips the Inception row).
        public var inception: String?
        public var inceptionImages = 8
        public var sgemmSize = 2048
        public init() {}
    }

    public struct Row: Sendable {
        public let workload: String
        /// "image" or "step".
        public let unit: String
        /// Per unit.
        public let timing: Timing
        public let gemmGFLOP: Double
        /// The direct algorithms' FLOPs (Winograd convolutions counted as the direct convolution they replace).
        public let directGFLOP: Double
        public var gflops: Double { gemmGFLOP / timing.wall }
        public var directGFLOPs: Double { directGFLOP / timing.wall }
        /// CPU time over threads x wall time: 1 when every core was busy the whole time.
        public func coreUse(threads: Int) -> Double { timing.cpu / (Double(threads) * timing.wall) }
    }

    public struct Report: Sendable {
        public let sgemmGFLOPs: Double
        public let rows: [Row]
        public let peakResidentBytes: Int
        public let threads: Int

        /// A fixed-width table.
        public func table() -> String {
            var out = String(format: "sgemm (same run): %.1f GFLOP/s with %d threads\n", sgemmGFLOPs, threads)
            // GEMM: the sgemm FLOPs run; direct: the same work counted in the direct algorithm's FLOPs (they differ
            // where Winograd replaced a 3x3 convolution's product by 36 smaller ones).
            out +=
                "workload                                     s/unit    GEMM GFLOP   GFLOP/s   of sgemm   direct GFLOP/s   of sgemm   cores busy\n"
            for r in rows {
                out += String(
                    format: "%@ %9.3f    %10.1f   %7.1f   %7.0f%%   %14.1f   %7.0f%%   %9.0f%%\n",
                    (r.workload + " (s/" + r.unit + ")").padding(toLength: 44, withPad: " ", startingAt: 0), r.timing.wall, r.gemmGFLOP,
                    r.gflops, 100 * r.gflops / sgemmGFLOPs, r.directGFLOPs, 100 * r.directGFLOPs / sgemmGFLOPs,
                    100 * r.coreUse(threads: threads))
            }
            out += String(format: "peak resident memory: %.2f GB", Double(peakResidentBytes) / 1e9)
            return out
        }
    }

    /// Runs every workload; `progress` hears each finished row (the whole suite takes minutes).
    public static func run(_ o: Options, progress: (String) -> Void = { _ in }) throws -> Report {
        let sgemm = max(GemmBenchmark.sgemmRate(o.sgemmSize), GemmBenchmark.sgemmRate(o.sgemmSize))
        progress(String(format: "sgemm: %.1f GFLOP/s", sgemm))
        var rows: [Row] = []
        func add(_ r: Row) {
            rows.append(r)
            progress(String(format: "%@: %.3f s/%@", r.workload, r.timing.wall, r.unit))
        }

        let v = try VARBenchmark(depth: o.varDepth)
        try v.warmUp()
        let counted = try v.run(batch: o.varBatch, repeats: 1, profile: true)
        let timed = try v.run(batch: o.varBatch, repeats: 1)
        let perImage = Double(o.varBatch)
        let name = "VAR-d\(o.varDepth) batch \(o.varBatch)"
        add(
            Row(
                workload: name + " transformer", unit: "image", timing: timed.transformer,
                gemmGFLOP: counted.profiles[0].gemmGFLOP / perImage, directGFLOP: counted.profiles[0].directGFLOP / perImage))
        add(
            Row(
                workload: name + " VQ-VAE decode", unit: "image", timing: timed.decode, gemmGFLOP: counted.profiles[1].gemmGFLOP / perImage,
                directGFLOP: counted.profiles[1].directGFLOP / perImage)
        )

        let cfg = try DiTConfig.named(o.dit, imageSize: 256)
        let d = try DiTBenchmark(config: cfg)
        let step = try d.steps(repeats: o.ditRepeats, profile: true)
        add(
            Row(
                workload: "DiT-\(o.dit) step (CFG pair)", unit: "step", timing: Timing(wall: step.median, cpu: step.cpuPerStep),
                gemmGFLOP: step.profile!.gemmGFLOP, directGFLOP: step.profile!.directGFLOP))
        let sdVAE = try SDVAEDecodeBenchmark(latentSize: cfg.inputSize)
        let (_, sdProfile) = try sdVAE.run(profile: true)
        let (sd, _) = try sdVAE.run()
        add(
            Row(
                workload: "SD-VAE decode 256px", unit: "image", timing: sd, gemmGFLOP: sdProfile!.gemmGFLOP,
                directGFLOP: sdProfile!.directGFLOP))

        if let weights = o.inception {
            let n = Double(o.inceptionImages)
            let inception = try InceptionBenchmark(weights: weights, images: o.inceptionImages, batchSize: o.inceptionImages)
            let (_, p) = try inception.run(profile: true)
            let (t, _) = try inception.run()
            add(
                Row(
                    workload: "InceptionV3 features", unit: "image", timing: t / n, gemmGFLOP: p!.gemmGFLOP / n,
                    directGFLOP: p!.directGFLOP / n))
        }
        return Report(sgemmGFLOPs: sgemm, rows: rows, peakResidentBytes: MachineState.peakResidentBytes(), threads: Parallel.threads)
    }
}
