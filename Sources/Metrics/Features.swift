import Foundation
import ImageIO
import ModelIO
import Tensor

/// Inception features of an image set: what every metric except accuracy is computed from.
public struct InceptionFeatures: Sendable {
    /// [N, 2048] pool3.
    public var pool3: Tensor
    /// [N, 2023] sFID spatial features.
    public var spatial: Tensor
    /// [N, 1008] logits without the fc bias (ADM's Inception-Score input).
    public var logits: Tensor
    public var count: Int { pool3.shape[0] }
}

/// Progress of a feature pass: images done, total, seconds elapsed.
public typealias ProgressHandler = (_ done: Int, _ total: Int, _ elapsed: Double) -> Void

/// Runs the Inception over an image set in batches, with an on-disk cache so a reference set is processed once.
///
/// Cache: `<cacheDir>/inception-<hash>.npz` holding `pool3`, `spatial`, `logits` (float32) and `key` (the
/// full cache key as bytes, checked on read so a hash collision cannot return another set's features). The key
/// covers the input files (absolute paths, sizes, modification times), the weights file (same) and the
/// preprocessing mode; any change recomputes.
public final class FeatureExtractor {
    public let network: InceptionV3
    public let preprocessing: InceptionPreprocessing
    public var batchSize = 16
    public var cacheDir: String?
    /// Whether the last `features(of:)` call came from the cache.
    public private(set) var lastFromCache = false

    public init(network: InceptionV3, preprocessing: InceptionPreprocessing, cacheDir: String?) {
        self.network = network; self.preprocessing = preprocessing; self.cacheDir = cacheDir
    }

    public func features(of set: ImageSet, progress: ProgressHandler? = nil) throws -> InceptionFeatures {
        guard set.count > 0 else { throw MetricsError.tooFewSamples(what: set.paths.joined(separator: ", "), count: 0, needed: 1) }
        let key = "varlab-inception-features-v1|\(preprocessing.rawValue)|\(ImageSet.stamp(network.path))|\(set.fingerprint)"
        let cachePath = cacheDir.map { URL(fileURLWithPath: $0).appendingPathComponent("inception-\(FeatureExtractor.hash(key)).npz").path }
        if let cachePath, let f = try? readCache(cachePath, key: key, count: set.count) {
            lastFromCache = true
            return f
        }
        lastFromCache = false
        var pool: [Float] = [], spatial: [Float] = [], logits: [Float] = []
        pool.reserveCapacity(set.count * network.featureWidth)
        var done = 0
        let t0 = Date()
        try set.forEachBatch(batchSize) { imgs in
            let out = network(try preprocessing.input(imgs))
            pool += out.pool3.data
            spatial += out.spatial.data
            logits += network.logits(out.pool3).data
            done += imgs.count
            progress?(done, set.count, Date().timeIntervalSince(t0))
        }
        let n = done
        let f = InceptionFeatures(pool3: Tensor(shape: [n, network.featureWidth], data: pool),
                                  spatial: Tensor(shape: [n, spatial.count / max(n, 1)], data: spatial),
                                  logits: Tensor(shape: [n, network.classes], data: logits))
        try requireFinite(f.pool3.data, columns: f.pool3.shape[1], what: "Inception pool3 features of \(set.paths.joined(separator: ", "))")
        if let cachePath { try? writeCache(cachePath, key: key, f) }
        return f
    }

    private func readCache(_ path: String, key: String, count: Int) throws -> InceptionFeatures? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let npz = try NPZFile(path: path)
        guard try npz.array("key").asUInt8() == Array(key.utf8) else { return nil }
        func t(_ k: String) throws -> Tensor {
            let a = try npz.array(k)
            guard a.shape.count == 2, a.shape[0] == count else { throw MetricsError.input("cache \(path): bad \(k)") }
            return Tensor(shape: a.shape, data: a.asFloat())
        }
        return InceptionFeatures(pool3: try t("pool3"), spatial: try t("spatial"), logits: try t("logits"))
    }

    private func writeCache(_ path: String, key: String, _ f: InceptionFeatures) throws {
        try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path,
                                                withIntermediateDirectories: true)
        var w = NPZWriter()
        w.add("pool3", try NPYArray(float32: f.pool3.data, shape: f.pool3.shape))
        w.add("spatial", try NPYArray(float32: f.spatial.data, shape: f.spatial.shape))
        w.add("logits", try NPYArray(float32: f.logits.data, shape: f.logits.shape))
        w.add("key", try NPYArray(uint8: Array(key.utf8), shape: [key.utf8.count]))
        try w.write(to: path)
    }

    /// FNV-1a 64-bit, hex.
    static func hash(_ s: String) -> String {
        var h: UInt64 = 0xcbf29ce484222325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        return String(format: "%016llx", h)
    }
}

/// Classifier logits of an image set (ResNet with the ImageNet transform).
public func classifierLogits(_ net: ResNet, _ set: ImageSet, batch: Int = 16, progress: ProgressHandler? = nil) throws -> Tensor {
    var out: [Float] = []
    var done = 0
    let t0 = Date()
    try set.forEachBatch(batch) { imgs in
        out += net(try ResNetPreprocessing.input(imgs)).data
        done += imgs.count
        progress?(done, set.count, Date().timeIntervalSince(t0))
    }
    return Tensor(shape: [done, net.classes], data: out)
}
