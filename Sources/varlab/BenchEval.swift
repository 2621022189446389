import ArgumentParser
import Benchmarks
import Foundation
import Tensor

/// `varlab bench eval`: the metric formulas at the paper scale (50,000 x 2048 features) and the Inception's
/// throughput, with the scipy sqrtm FID (pytorch-fid / ADM route) computed in the same run as the baseline.
struct BenchEval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract:
            "FID and precision/recall on two N x 2048 feature sets (vs scipy's sqrtm FID in the same run), Inception, DINOv2 ViT-L/14 and CLIP ViT-L/14-336 images/s."
    )

    @Option(help: "Feature vectors per set for FID (0 skips the FID part).")
    var n: Int = 50_000

    @Option(help: "Feature width.")
    var dim: Int = 2048

    @Option(help: "Precision/recall set size (0 skips it; it costs three N x N x dim distance matrices).")
    var prN: Int = 50_000

    @Option(help: "The scipy baseline script (skipped if python3 or the script is missing).")
    var scipyScript: String = "scripts/fid_scipy_baseline.py"

    @Option(help: "Inception weights for the throughput test (default $VARLAB_INCEPTION or the fixture weights).")
    var inception: String?

    @Option(help: "Images for the Inception throughput test (256 x 256, tf preprocessing).")
    var images: Int = 16

    @Option(help: "Inception batch size.")
    var batchSize: Int = 8

    @Option(help: "Images for the DINOv2 ViT-L/14 and CLIP ViT-L/14-336 throughput test (random weights of the released shapes; 0 skips).")
    var vitImages: Int = 2

    @OptionGroup var common: CommonOptions

    func run() throws {
        let report = try common.apply()
        setvbuf(stdout, nil, _IOLBF, 0)  // each line as soon as it is measured (the full run takes minutes)
        print(report)
        print("threads: \(Parallel.threads)")
        guard n == 0 || n >= 2, dim >= 1, prN >= 0, images >= 0, batchSize >= 1, vitImages >= 0 else {
            throw ValidationError("sizes must be positive")
        }

        if n > 0 {
            let r = try EvalBenchmark.fid(n: n, dim: dim, scipyScript: scipyScript)
            print(String(format: "mean + covariance (float64), both sets: %.2f s", r.statsSeconds))
            print(String(format: "FID (eigendecomposition route, LAPACK dsyevd): %.10g in %.2f s", r.fid, r.seconds))
            if let (sfid, secs) = r.scipy {
                print(
                    String(
                        format: "FID (scipy sqrtm route, python3):           %.10g in %.2f s  (relative difference %.2e, speed-up %.1fx)",
                        sfid, secs, abs(r.fid - sfid) / abs(sfid), secs / r.seconds))
            } else {
                print("FID (scipy sqrtm route): skipped (python3 with numpy/scipy or \(scipyScript) not found)")
            }
        }
        if prN > 0 {
            let r = try EvalBenchmark.precisionRecall(n: prN, dim: dim)
            print(
                String(
                    format: "precision/recall k=3 (%d vs %d): P %.4f R %.4f in %.1f s (%.1f GFLOP/s for the 3 distance matrices)",
                    prN, prN, r.precision, r.recall, r.seconds, r.gflops))
        }
        if images > 0 {
            let path = inception ?? ProcessInfo.processInfo.environment["VARLAB_INCEPTION"] ?? BenchEval.fixtureInception
            if FileManager.default.fileExists(atPath: path) {
                let (t, _) = try InceptionBenchmark(weights: path, images: images, batchSize: batchSize).run()
                print(
                    String(
                        format:
                            "Inception (256x256 -> 299, tf preprocessing, pool3 + spatial + logits): %.2f images/s (%d images, batch %d); %.3f CPU-s per image (%.1f images/s if %d cores were all ours)",
                        Double(images) / t.wall, images, batchSize, t.cpu / Double(images),
                        Double(images) * Double(Parallel.threads) / t.cpu,
                        Parallel.threads))
            } else {
                print("Inception throughput: skipped (no weights; give --inception F)")
            }
        }
        if vitImages > 0 {
            for r in try EvalBenchmark.vits(images: vitImages) {
                let n = Double(vitImages)
                print(
                    String(
                        format:
                            "%@ (random weights, 256x256 inputs): %.2f s per image, %.1f GFLOP/s (%.1f GFLOP per image); %.2f CPU-s per image",
                        r.name, r.timing.wall / n, r.gflopPerImage * n / r.timing.wall, r.gflopPerImage, r.timing.cpu / n))
            }
        }
    }

    /// The fixture Inception weights of the source tree this binary was built from (the bench's default).
    static var fixtureInception: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("../shared/fixtures/eval/fid_inception_v3_fp16.safetensors")
            .standardizedFileURL.path
    }
}
