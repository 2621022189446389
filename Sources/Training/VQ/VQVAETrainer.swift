import Foundation
import Tensor

/// Trains the VAR VQ-VAE on images: loss = mse(x̂, x) + L_vq (β = 0.25 commitment, averaged over scales), AdamW
/// β 0.9/0.95 with the no-decay group (biases, norms, codebook), warmup + cosine, global-norm clipping.
/// The checkpoint (official key names) loads in the inference `VQVAE` for sampling.
public final class VQVAETrainer {
    public let model: TrainableVQVAE
    public let loop: TrainLoop
    public var dataSummary = ""
    public private(set) var lastRecon = Double.nan, lastVQ = Double.nan, codesUsed = 0

    public init(config: VQVAETrainConfig, options: TrainOptions) throws {
        model = try TrainableVQVAE(config: config, seed: options.seed)
        loop = try TrainLoop(params: model.parameters, options: options)
        loop.save = { [unowned self] path in try self.save(to: path) }
    }

    public func save(to path: String) throws {
        try TrainCheckpoint.write(path: path, model: TrainableVQVAE.modelName, configJSON: try model.config.canonicalJSON(),
                                  step: loop.step, params: model.parameters, optimizer: loop.optimizer,
                                  extra: ["varlab.train": try loop.options.canonicalJSON(), "varlab.data": dataSummary,
                                          "varlab.patch_nums": model.config.patchNums.map(String.init).joined(separator: ",")])
    }

    public func resume(from path: String) throws {
        try loop.resume(from: path, model: TrainableVQVAE.modelName, configJSON: try model.config.canonicalJSON(), params: model.parameters)
    }

    public func run(source: LabeledImageSource, progress: (TrainProgress) -> Void = { _ in }) throws {
        guard source.imageSize == model.config.imageSize else {
            throw TrainingError.config("data images are \(source.imageSize)px, the model expects \(model.config.imageSize)px")
        }
        try loop.run(source: source, step: { x, _ in
            let s = self.model.trainStep(x)
            self.lastRecon = s.reconLoss; self.lastVQ = s.vqLoss
            self.codesUsed = Set(s.tokens.flatMap { $0 }).count
            return (s.loss, .nan)
        }, progress: progress)
    }

    /// Mean squared reconstruction error (images in [-1, 1]) on `n` images of a source.
    public func reconstructionMSE(source: LabeledImageSource, n: Int, batchSize: Int = 16) -> Double {
        var total = 0.0, i = 0
        let count = min(n, source.count)
        while i < count {
            let j = min(count, i + batchSize)
            let x = source.batch(Array(i..<j)).images
            total += Losses.mse(model.reconstruct(x).clamped(-1, 1), x).loss * Double(j - i)
            i = j
        }
        return total / Double(max(count, 1))
    }
}
