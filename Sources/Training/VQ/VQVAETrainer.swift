import Autoencoders
import Foundation
import Layers
import ModelIO
import Tensor

/// Trains the VAR VQ-VAE on images: loss = mse(x̂, x) + L_vq (β = 0.25 commitment, averaged over scales), AdamW
/// β 0.9/0.95 with the no-decay group (biases, norms, codebook), warmup + cosine, global-norm clipping.
/// The checkpoint (official key names) loads in the inference `VQVAE` for sampling.
public final class VQVAETrainer {
    public let model: VQVAE
    public let config: VQVAERunConfig
    public let loop: TrainLoop
    public var dataSummary = ""
    public private(set) var lastRecon = Double.nan, lastVQ = Double.nan
    /// Code usage since the caller last reset it (the CLI logs and resets it every --log-every steps).
    public var usage: CodebookUsage
    /// Codes restarted so far (dead-code restarts), for the log.
    public private(set) var restartedCodes = 0
    private var restartWindow: CodebookUsage

    public init(config: VQVAERunConfig, options: TrainOptions) throws {
        try config.validate()
        do { model = try VQVAE(config: config.model, patchNums: config.patchNums, seed: options.seed, heInit: config.heInit) } catch {
            throw TrainingError.config("\(error)")
        }
        self.config = config
        loop = try TrainLoop(params: model.parameters, options: options)
        usage = CodebookUsage(vocabSize: config.model.vocabSize, scales: config.patchNums.count)
        restartWindow = usage
        loop.save = { [unowned self] path in try self.save(to: path) }
    }

    public func save(to path: String) throws {
        try TrainCheckpoint.write(
            path: path, model: VQVAE.checkpointName, configJSON: try config.canonicalJSON(),
            step: loop.step, params: model.parameters, optimizer: loop.optimizer,
            extra: [
                MetadataKey.train.rawValue: try loop.options.canonicalJSON(), MetadataKey.data.rawValue: dataSummary,
                MetadataKey.patchNums.rawValue: config.patchNums.map(String.init).joined(separator: ","),
                MetadataKey.normGroups.rawValue: String(config.model.normGroups),
            ])
    }

    public func resume(from path: String) throws {
        try loop.resume(from: path, model: VQVAE.checkpointName, configJSON: try config.canonicalJSON(), params: model.parameters)
    }

    public func run(source: LabeledImageSource, progress: (TrainProgress) -> Void = { _ in }) throws {
        guard source.imageSize == config.imageSize else {
            throw TrainingError.config("data images are \(source.imageSize)px, the model expects \(config.imageSize)px")
        }
        let config = self.config
        try loop.run(
            source: source,
            step: { x, _ in
                let step = self.loop.step  // 0-based index of the step being run
                if step == 0 && config.dataInitCodebook { self.model.initialiseCodebook(from: x, seed: self.loop.options.seed) }
                let s = self.model.trainStep(x)
                self.lastRecon = s.reconLoss; self.lastVQ = s.vqLoss
                self.usage.record(s.tokens)
                self.restartWindow.record(s.tokens)
                if config.deadCodeRestartEvery > 0 && (step + 1) % config.deadCodeRestartEvery == 0 {
                    let dead = (0..<config.model.vocabSize).filter { v in self.restartWindow.counts.allSatisfy { $0[v] == 0 } }
                    var rng = PhiloxRandom(seed: self.loop.options.seed, stream: (1 << 43) + UInt64(step))
                    self.restartedCodes += self.model.quantizer.restart(dead, residualRows: s.residualRows, rng: &rng)
                    self.restartWindow.reset()
                }
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
