import Foundation
import Layers
import ModelIO
import Tensor

/// Hyper-parameters of the toy classifier; stored as JSON in the checkpoint metadata (`varlab.config`).
public struct ToyClassifierConfig: Codable, Equatable, Sendable {
    public var imageSize: Int = 64
    /// Output channels of the conv blocks (3x3 conv, GroupNorm, SiLU); the first `downsamples` have stride 2.
    public var channels: [Int] = [32, 64, 96, 128]
    public var downsamples: Int = 3
    public var groups: Int = 8
    /// Width of the penultimate layer: the toy feature extractor's feature dimension.
    public var featureDim: Int = 128
    public var classes: Int = 10

    public init() {}

    public func validate() throws {
        guard imageSize >= 8, !channels.isEmpty, channels.allSatisfy({ $0 > 0 && $0 % groups == 0 }),
            downsamples >= 0, downsamples <= channels.count, featureDim > 0, classes >= 2
        else {
            throw TrainingError.config("invalid toy classifier config \(self)")
        }
    }
}

/// A small conv net for 64x64 RGB in [-1, 1]: conv blocks (3x3 conv -> GroupNorm -> SiLU), global average pool,
/// fc1 -> SiLU (the penultimate features, `featureDim` wide) and fc2 -> class logits. Its features serve as the
/// toy feature extractor for toy-FID and its logits give toy classifier accuracy.
public final class ToyClassifier {
    public let config: ToyClassifierConfig
    public let body: Sequential
    public let head: Sequential
    public let classifier: LinearLayer

    public init(config: ToyClassifierConfig, seed: UInt64) throws {
        try config.validate()
        self.config = config
        var layers: [TrainableLayer] = []
        var cin = 3
        var stream: UInt64 = 0
        for (i, c) in config.channels.enumerated() {
            layers.append(
                ConvLayer(
                    "blocks.\(i).conv", cin: cin, cout: c, kernel: 3, stride: i < config.downsamples ? 2 : 1,
                    seed: seed, stream: stream))
            layers.append(GroupNormLayer("blocks.\(i).norm", channels: c, groups: config.groups))
            layers.append(SiLULayer())
            cin = c; stream += 2
        }
        layers.append(GlobalAveragePool())
        body = Sequential(layers)
        head = Sequential([
            LinearLayer("head.fc1", inFeatures: cin, outFeatures: config.featureDim, seed: seed, stream: stream),
            SiLULayer(),
        ])
        classifier = LinearLayer("head.fc2", inFeatures: config.featureDim, outFeatures: config.classes, seed: seed, stream: stream + 2)
    }

    public var parameters: [Parameter] { body.parameters + head.parameters + classifier.parameters }

    /// Penultimate features [N, featureDim] and logits [N, classes].
    public func forward(_ x: Tensor) -> (features: Tensor, logits: Tensor) {
        let f = head.forward(body.forward(x))
        return (f, classifier.forward(f))
    }

    public func backward(dLogits: Tensor) {
        _ = body.backward(head.backward(classifier.backward(dLogits)))
    }

    /// Features and logits of many images in batches (inference; images [N, 3, S, S] in [-1, 1]).
    public func evaluate(_ images: Tensor, batchSize: Int = 64) -> (features: Tensor, logits: Tensor) {
        let n = images.shape[0]
        var feats: [Float] = [], logits: [Float] = []
        var i = 0
        while i < n {
            let j = min(n, i + batchSize)
            let (f, l) = forward(images.slice0(i, j))
            feats += f.data; logits += l.data
            i = j
        }
        return (Tensor(shape: [n, config.featureDim], data: feats), Tensor(shape: [n, config.classes], data: logits))
    }

    public static let modelName = "toy-classifier"

    /// Loads weights (and checks they belong to this architecture) from a varlab checkpoint.
    public static func load(path: String) throws -> ToyClassifier {
        let ck = try TrainCheckpoint.read(path: path, model: modelName)
        let config = try JSONDecoder().decode(ToyClassifierConfig.self, from: Data(ck.configJSON.utf8))
        let model = try ToyClassifier(config: config, seed: 0)
        try ck.loadParameters(model.parameters)
        return model
    }
}
