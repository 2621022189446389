import Foundation
import ImageIO
import Metrics
import ModelIO
import Tensor

/// The metric formulas at the paper scale (50,000 x 2048 features) with scipy's sqrtm FID (the pytorch-fid / ADM
/// route) as the same-run baseline, and the feature networks' throughput.
public enum EvalBenchmark {
    public struct FIDResult: Sendable {
        public let statsSeconds: Double
        public let fid: Double
        public let seconds: Double
        /// scipy's value and seconds on the same statistics (nil without python3 + numpy/scipy or the script).
        public let scipy: (fid: Double, seconds: Double)?
    }

    public static func fid(n: Int, dim: Int, scipyScript: String) throws -> FIDResult {
        let a = features(n: n, dim: dim, seed: 1, shift: 0)
        let b = features(n: n, dim: dim, seed: 2, shift: 0.02)
        let ((sa, sb), tStats) = try Timing.measure { (try GaussianStats(features: a), try GaussianStats(features: b)) }
        let (fid, tFID) = try Timing.measure { try FID.distance(sa, sb) }
        return FIDResult(statsSeconds: tStats.wall, fid: fid, seconds: tFID.wall, scipy: try scipyFID(sa, sb, script: scipyScript))
    }

    public struct PRResult: Sendable {
        public let precision: Double
        public let recall: Double
        public let seconds: Double
        /// The three N x N x dim distance matrices' rate.
        public let gflops: Double
    }

    public static func precisionRecall(n: Int, dim: Int) throws -> PRResult {
        let pa = features(n: n, dim: dim, seed: 1, shift: 0)
        let pb = features(n: n, dim: dim, seed: 2, shift: 0.02)
        let (pr, t) = try Timing.measure { try PrecisionRecall.compute(reference: pa, samples: pb) }
        let flops = 3 * 2 * Double(n) * Double(n) * Double(dim)
        return PRResult(precision: pr.precision, recall: pr.recall, seconds: t.wall, gflops: flops / t.wall / 1e9)
    }

    /// Random 256x256 RGB images (deterministic in `seed`).
    public static func randomImages(_ count: Int, seed: UInt64) -> [Image8] {
        var rng = PhiloxRandom(seed: seed)
        return (0..<count).map { _ in
            Image8(width: 256, height: 256, channels: 3, pixels: (0..<(256 * 256 * 3)).map { _ in UInt8(rng.nextUInt32() & 255) })
        }
    }

    public struct NetworkResult: Sendable {
        public let name: String
        public let gflopPerImage: Double
        /// Time for all the images.
        public let timing: Timing
    }

    /// FD-DINOv2's and CMMD's networks at their released sizes (random weights), one image at a time as the
    /// evaluator runs them.
    public static func vits(images: Int) throws -> [NetworkResult] {
        let imgs = randomImages(images, seed: 11)
        let dc = DINOv2Config.hub("l")!
        let dinov2 = DINOv2Features(try DINOv2(archive: RandomArchive(shapes: dc.stateDictShapes, shareBlocks: false)))
        let cc = CLIPVisionConfig.vitL14_336
        let clip = CLIPFeatures(try CLIPVision(archive: RandomArchive(shapes: cc.stateDictShapes, shareBlocks: false), config: cc))
        return try [(dinov2 as FeatureNetwork, dc.flopsPerImage), (clip as FeatureNetwork, cc.flopsPerImage)].map { net, flops in
            _ = try net.features([imgs[0]])
            let (_, t) = try Timing.measure { try net.features(imgs) }
            return NetworkResult(name: net.name.components(separatedBy: " (").first ?? net.name, gflopPerImage: flops / 1e9, timing: t)
        }
    }

    /// Synthetic features with Inception-like structure: a mixture of 20 clusters with random centres, noise,
    /// ReLU (pool3 features are non-negative); `shift` moves the centres (the "sample" set).
    public static func features(n: Int, dim: Int, seed: UInt64, shift: Float) -> Tensor {
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

    /// Runs the scipy baseline script on the same statistics; nil if python3 or the script is unavailable.
    static func scipyFID(_ a: GaussianStats, _ b: GaussianStats, script: String) throws -> (fid: Double, seconds: Double)? {
        guard FileManager.default.fileExists(atPath: script) else { return nil }
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
        p.arguments = ["python3", script, tmp]
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

/// InceptionV3 (256 -> 299, tf preprocessing; pool3, spatial and logits) over random images in batches: the
/// weights loaded and warmed up once (one image), then timed for all images as often as asked.
public final class InceptionBenchmark {
    let net: InceptionV3
    let images: [Image8]
    let batchSize: Int

    public init(weights: String, images count: Int, batchSize: Int) throws {
        net = try InceptionV3(path: weights)
        images = EvalBenchmark.randomImages(count, seed: 7)
        self.batchSize = batchSize
        _ = net(try InceptionPreprocessing.tf.input([images[0]]))
    }

    public func run(profile: Bool = false) throws -> (Timing, OpProfile?) {
        let (_, t, p) = try profiled(profile, "InceptionV3, \(images.count) images") {
            for s in stride(from: 0, to: images.count, by: batchSize) {
                let out = net(try InceptionPreprocessing.tf.input(Array(images[s..<min(s + batchSize, images.count)])))
                _ = net.logits(out.pool3)
            }
        }
        return (t, p)
    }
}
