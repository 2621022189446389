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

/// The FID Inception with its preprocessing as a feature network: outputs "pool3", "spatial", "logits".
public final class InceptionFeatureNetwork: FeatureNetwork {
    public let network: InceptionV3
    public let mode: InceptionPreprocessing
    public init(_ network: InceptionV3, preprocessing: InceptionPreprocessing) { self.network = network; self.mode = preprocessing }
    public var name: String { "FID InceptionV3 (\(URL(fileURLWithPath: network.path).lastPathComponent))" }
    public var preprocessing: String { mode.rawValue }
    public var cacheName: String { "inception" }
    public var cacheIdentity: String { "inception-v1|\(mode.rawValue)|\(ImageSet.stamp(network.path))" }
    public var outputs: [FeatureOutput] {
        [
            FeatureOutput(name: "pool3", width: network.featureWidth),
            FeatureOutput(name: "spatial", width: InceptionV3.spatialChannels * 17 * 17),
            FeatureOutput(name: "logits", width: network.classes),
        ]
    }
    public func features(_ images: [Image8]) throws -> [String: Tensor] {
        let out = network(try mode.input(images))
        return [
            "pool3": out.pool3, "spatial": out.spatial.reshaped([images.count, out.spatial.count / max(images.count, 1)]),
            "logits": network.logits(out.pool3),
        ]
    }
}

/// Inception features of image sets through the feature cache (what the Inception metrics read).
public final class FeatureExtractor {
    public let network: InceptionV3
    public let preprocessing: InceptionPreprocessing
    public let cache: FeatureCache
    public var batchSize: Int {
        get { cache.batchSize }
        set { cache.batchSize = newValue }
    }
    /// Whether the last `features(of:)` call came from the cache.
    public var lastFromCache: Bool { cache.lastFromCache }

    public init(network: InceptionV3, preprocessing: InceptionPreprocessing, cacheDir: String?) {
        self.network = network; self.preprocessing = preprocessing; cache = FeatureCache(dir: cacheDir)
    }

    public var featureNetwork: InceptionFeatureNetwork { InceptionFeatureNetwork(network, preprocessing: preprocessing) }

    public func features(of set: ImageSet, progress: ProgressHandler? = nil) throws -> InceptionFeatures {
        let f = try cache.features(of: set, network: featureNetwork, progress: progress)
        return InceptionFeatures(pool3: f["pool3"]!, spatial: f["spatial"]!, logits: f["logits"]!)
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
