import Foundation
import Layers
import ModelIO
import Tensor

/// Trains the toy classifier with AdamW + warmup/cosine schedule + clipping on softmax cross-entropy.
///
/// Determinism: parameters are initialised from Philox streams of `seed`; the batch of step s is drawn from the
/// Philox stream 2^40 + s (uniform indices into the source), every op splits work by shape only, so a run is a
/// pure function of (options, data) whatever the thread count, and a resumed run continues exactly where the
/// interrupted one would have gone.
public final class ClassifierTrainer {
    public let model: ToyClassifier
    public let loop: TrainLoop
    public var options: TrainOptions { loop.options }
    public var step: Int { loop.step }
    public var checkpointPath: String? {
        get { loop.checkpointPath }
        set { loop.checkpointPath = newValue }
    }
    public var dataSummary = ""
    /// Probability that a training image is replaced by its luma (ITU-R 601: 0.299 R + 0.587 G + 0.114 B in all three
    /// channels). The toy classes are shapes and textures in random colours, so colour is a nuisance the classifier
    /// must not depend on: the tiny tokenizer's reconstructions are nearly colourless (README "Built-in models").
    public var grayProbability: Float = 0

    /// `options` defaults for this model: `TrainOptions.classifier`.
    public init(config: ToyClassifierConfig, options: TrainOptions) throws {
        try options.validate()
        model = try ToyClassifier(config: config, seed: options.seed)
        loop = try TrainLoop(params: model.parameters, options: options)
        loop.save = { [unowned self] path in try self.save(to: path) }
    }

    /// Continues from a checkpoint of the same model config (weights, optimizer moments, step).
    public func resume(from path: String) throws {
        try loop.resume(from: path, model: ToyClassifier.modelName, configJSON: try model.config.canonicalJSON(), params: model.parameters)
    }

    public func save(to path: String) throws {
        try TrainCheckpoint.write(
            path: path, model: ToyClassifier.modelName, configJSON: try model.config.canonicalJSON(),
            step: loop.step, params: model.parameters, optimizer: loop.optimizer,
            extra: [
                MetadataKey.train.rawValue: try options.canonicalJSON(), MetadataKey.data.rawValue: dataSummary,
                MetadataKey.augment.rawValue: "gray_p=\(grayProbability)",
            ])
    }

    /// Softmax cross-entropy steps of the shared `TrainLoop` (deterministic batches, NaN stop that keeps the last
    /// good checkpoint, clipping, AdamW + warmup/cosine, atomic checkpoints every `saveEvery` steps).
    public func run(source: LabeledImageSource, progress: (TrainProgress) -> Void = { _ in }) throws {
        guard source.classCount == model.config.classes else {
            throw TrainingError.config("data has \(source.classCount) classes, the model \(model.config.classes)")
        }
        guard source.imageSize == model.config.imageSize else {
            throw TrainingError.config("data images are \(source.imageSize)px, the model expects \(model.config.imageSize)px")
        }
        try loop.run(
            source: source,
            step: { x, y in
                let (_, logits) = self.model.forward(self.augment(x, step: self.loop.step))
                let (loss, dl, correct) = Losses.softmaxCrossEntropy(logits: logits, labels: y)
                if loss.isFinite { self.model.backward(dLogits: dl) }
                return (loss, Double(correct) / Double(y.count))
            }, progress: progress)
    }

    /// Random grayscale per image: the draw for image i of step s comes from Philox stream 2^41 + s (pure function
    /// of seed and step, like the batch itself).
    func augment(_ x: Tensor, step: Int) -> Tensor {
        guard grayProbability > 0, x.shape.count == 4, x.shape[1] == 3 else { return x }
        var rng = PhiloxRandom(seed: options.seed, stream: (1 << 41) + UInt64(step))
        var y = x
        let plane = x.shape[2] * x.shape[3]
        for i in 0..<x.shape[0] where rng.uniform() < grayProbability {
            let o = i * 3 * plane
            for j in 0..<plane {
                let l = 0.299 * x.data[o + j] + 0.587 * x.data[o + plane + j] + 0.114 * x.data[o + 2 * plane + j]
                y.data[o + j] = l; y.data[o + plane + j] = l; y.data[o + 2 * plane + j] = l
            }
        }
        return y
    }

    /// Top-1 accuracy of the model on `n` images of a source (indices 0..<n).
    public static func accuracy(_ model: ToyClassifier, source: LabeledImageSource, n: Int, batchSize: Int = 100) -> Double {
        var correct = 0, i = 0
        let total = min(n, source.count)
        while i < total {
            let j = min(total, i + batchSize)
            let (x, y) = source.batch(Array(i..<j))
            let pred = model.forward(x).logits.argmaxLastAxis()
            correct += zip(pred, y).filter { $0 == $1 }.count
            i = j
        }
        return Double(correct) / Double(max(total, 1))
    }
}
