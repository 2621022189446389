import ArgumentParser
import Foundation
import ImageIO
import Metrics
import ModelIO
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

        var t = Date()
        if n > 0 { try benchFID(&t) }
        try benchRest(&t)
        if vitImages > 0 { try benchViTs() }
    }

    /// FD-DINOv2's and CMMD's networks at their released sizes, one image at a time (as the evaluator runs them).
    func benchViTs() throws {
        var rng = PhiloxRandom(seed: 11)
        let imgs = (0..<vitImages).map { _ in
            Image8(width: 256, height: 256, channels: 3, pixels: (0..<(256 * 256 * 3)).map { _ in UInt8(rng.nextUInt32() & 255) })
        }
        let dc = DINOv2Config.hub("l")!
        let dinov2 = DINOv2Features(try DINOv2(archive: RandomArchive(shapes: dc.stateDictShapes, shareBlocks: false)))
        let cc = CLIPVisionConfig.vitL14_336
        let clip = CLIPFeatures(try CLIPVision(archive: RandomArchive(shapes: cc.stateDictShapes, shareBlocks: false), config: cc))
        for (net, flops) in [(dinov2 as FeatureNetwork, dc.flopsPerImage), (clip as FeatureNetwork, cc.flopsPerImage)] {
            _ = try net.features([imgs[0]])  // warm-up
            let t = Date(), cpu0 = ProcessClock.cpuSeconds()
            _ = try net.features(imgs)
            let secs = Date().timeIntervalSince(t), cpu = ProcessClock.cpuSeconds() - cpu0
            print(
                String(
                    format:
                        "%@ (random weights, 256x256 inputs): %.2f s per image, %.1f GFLOP/s (%.1f GFLOP per image); %.2f CPU-s per image",
                    net.name.components(separatedBy: " (").first ?? net.name, secs / Double(vitImages),
                    flops * Double(vitImages) / secs / 1e9, flops / 1e9, cpu / Double(vitImages)))
        }
    }

    func benchFID(_ t: inout Date) throws {
        let a = BenchEval.features(n: n, dim: dim, seed: 1, shift: 0)
        let b = BenchEval.features(n: n, dim: dim, seed: 2, shift: 0.02)
        print(String(format: "features: 2 x %d x %d generated in %.1f s", n, dim, Date().timeIntervalSince(t)))

        t = Date()
        let sa = try GaussianStats(features: a), sb = try GaussianStats(features: b)
        let tStats = Date().timeIntervalSince(t)
        t = Date()
        let fid = try FID.distance(sa, sb)
        let tFID = Date().timeIntervalSince(t)
        print(String(format: "mean + covariance (float64), both sets: %.2f s", tStats))
        print(String(format: "FID (eigendecomposition route, LAPACK dsyevd): %.10g in %.2f s", fid, tFID))

        if let (sfid, secs) = try scipyFID(sa, sb) {
            print(
                String(
                    format: "FID (scipy sqrtm route, python3):           %.10g in %.2f s  (relative difference %.2e, speed-up %.1fx)",
                    sfid, secs, abs(fid - sfid) / abs(sfid), secs / tFID))
        } else {
            print("FID (scipy sqrtm route): skipped (python3 with numpy/scipy or \(scipyScript) not found)")
        }
    }

    func benchRest(_ t: inout Date) throws {
        if prN > 0 {
            let pa = BenchEval.features(n: prN, dim: dim, seed: 1, shift: 0)
            let pb = BenchEval.features(n: prN, dim: dim, seed: 2, shift: 0.02)
            t = Date()
            let pr = try PrecisionRecall.compute(reference: pa, samples: pb)
            let secs = Date().timeIntervalSince(t)
            let flops = 3 * 2 * Double(prN) * Double(prN) * Double(dim)
            print(
                String(
                    format: "precision/recall k=3 (%d vs %d): P %.4f R %.4f in %.1f s (%.1f GFLOP/s for the 3 distance matrices)",
                    prN, prN, pr.precision, pr.recall, secs, flops / secs / 1e9))
        }

        if images > 0 {
            let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("../shared/fixtures/eval/fid_inception_v3_fp16.safetensors")
                .standardizedFileURL.path
            let path = inception ?? ProcessInfo.processInfo.environment["VARLAB_INCEPTION"] ?? fixture
            guard FileManager.default.fileExists(atPath: path) else {
                print("Inception throughput: skipped (no weights; give --inception F)")
                return
            }
            let net = try InceptionV3(path: path)
            var rng = PhiloxRandom(seed: 7)
            let imgs = (0..<images).map { _ in
                Image8(width: 256, height: 256, channels: 3, pixels: (0..<(256 * 256 * 3)).map { _ in UInt8(rng.nextUInt32() & 255) })
            }
            _ = net(try InceptionPreprocessing.tf.input([imgs[0]]))  // warm-up
            t = Date()
            let cpu0 = ProcessClock.cpuSeconds()
            for s in stride(from: 0, to: images, by: batchSize) {
                let out = net(try InceptionPreprocessing.tf.input(Array(imgs[s..<min(s + batchSize, images)])))
                _ = net.logits(out.pool3)
            }
            let secs = Date().timeIntervalSince(t), cpu = ProcessClock.cpuSeconds() - cpu0
            print(
                String(
                    format:
                        "Inception (256x256 -> 299, tf preprocessing, pool3 + spatial + logits): %.2f images/s (%d images, batch %d); %.3f CPU-s per image (%.1f images/s if %d cores were all ours)",
                    Double(images) / secs, images, batchSize, cpu / Double(images), Double(images) * Double(Parallel.threads) / cpu,
                    Parallel.threads))
        }
    }

    /// Synthetic features with Inception-like structure: a mixture of 20 clusters with random centres, noise,
    /// ReLU (pool3 features are non-negative); `shift` moves the centres (the "sample" set).
    static func features(n: Int, dim: Int, seed: UInt64, shift: Float) -> Tensor {
        var crng = PhiloxRandom(seed: 1000)
        let centres = (0..<(20 * dim)).map { _ in crng.normal() * 0.5 + 0.3 }
        var out = [Float](repeating: 0, count: n * dim)
        out.withUnsafeMutableBufferPointer { p in
            let base = UnsafeSendable(UnsafePointer(p.baseAddress!))
            Parallel.forEach((n + 255) / 256) { blk in
                let dst = UnsafeMutablePointer(mutating: base.p)
                for i in (blk * 256)..<min(n, (blk + 1) * 256) {
                    var rng = PhiloxRandom(seed: seed, stream: UInt64(i))
                    let c = Int(rng.nextUInt32() % 20)
                    for j in 0..<dim {
                        let v = centres[c * dim + j] + shift * (j % 2 == 0 ? 1 : -1) + 0.4 * rng.normal()
                        dst[i * dim + j] = max(v, 0)
                    }
                }
            }
        }
        return Tensor(shape: [n, dim], data: out)
    }

    /// Runs the scipy baseline on the same statistics; nil if python3 / the script is unavailable.
    func scipyFID(_ a: GaussianStats, _ b: GaussianStats) throws -> (Double, Double)? {
        guard FileManager.default.fileExists(atPath: scipyScript) else { return nil }
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("varlab-bench-fid-\(getpid()).npz").path
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        var w = NPZWriter()
        w.add("mu1", try NPYArray(float64: a.mu, shape: [a.dim]))
        w.add("sigma1", try NPYArray(float64: a.sigma, shape: [a.dim, a.dim]))
        w.add("mu2", try NPYArray(float64: b.mu, shape: [b.dim]))
        w.add("sigma2", try NPYArray(float64: b.sigma, shape: [b.dim, b.dim]))
        try w.write(to: tmp)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", scipyScript, tmp]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.standardError
        do { try p.run() } catch { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0,
            let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let fid = obj["fid"] as? Double, let secs = obj["seconds"] as? Double
        else { return nil }
        return (fid, secs)
    }
}
