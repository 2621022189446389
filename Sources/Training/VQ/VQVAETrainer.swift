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

    /// The tokenizer a decoder fine-tuning started from ("file (step N)"), recorded in the checkpoint.
    public private(set) var finetunedFrom: String?

    public init(config: VQVAERunConfig, options: TrainOptions) throws {
        try config.validate()
        do { model = try VQVAE(config: config.model, patchNums: config.patchNums, seed: options.seed, heInit: config.heInit) } catch {
            throw TrainingError.config("\(error)")
        }
        self.config = config
        loop = try TrainLoop(params: config.decoderOnly ? model.decoderParameters : model.parameters, options: options)
        usage = CodebookUsage(vocabSize: config.model.vocabSize, scales: config.patchNums.count)
        restartWindow = usage
        loop.save = { [unowned self] path in try self.save(to: path) }
    }

    /// Decoder fine-tuning of a trained tokenizer (a `train vqvae` checkpoint or its export): its architecture and
    /// every weight, then only post_quant_conv and the decoder train (mse); no codebook init or restarts, so the
    /// tokens and f-hat of every image stay those of `base`.
    public convenience init(finetuningDecoderOf base: String, options: TrainOptions) throws {
        let ck = try TrainCheckpoint.read(path: base, model: VQVAE.checkpointName)
        var config: VQVAERunConfig
        do { config = try JSONDecoder().decode(VQVAERunConfig.self, from: Data(ck.configJSON.utf8)) } catch {
            throw TrainingError.checkpoint("\(base): varlab.config is not a VQ-VAE training config (\(error))")
        }
        // The architecture is read from the tensors (the loader's checked path), and the config must say the same:
        // a file's JSON alone never sizes the model.
        var inferred: VQVAEConfig
        do {
            inferred = try VQVAEConfig.infer(from: ck.file)
            inferred.normGroups = try VQVAEConfig.normGroups(of: ck.file)
        } catch { throw TrainingError.checkpoint("\(base): \(error)") }
        guard config.model == inferred, (8...1024).contains(config.imageSize), (1...32).contains(config.patchNums.count),
            config.patchNums.allSatisfy({ (1...256).contains($0) })
        else {
            throw TrainingError.checkpoint(
                "\(base): varlab.config (image size \(config.imageSize), scales \(config.patchNums.prefix(32))) does not match the tensors the file holds or is out of range"
            )
        }
        config.decoderOnly = true; config.dataInitCodebook = false; config.deadCodeRestartEvery = 0
        try self.init(config: config, options: options)
        try ck.loadParameters(model.parameters)
        finetunedFrom = "\(URL(fileURLWithPath: base).lastPathComponent) (step \(ck.step))"
    }

    public func save(to path: String) throws {
        try TrainCheckpoint.write(
            path: path, model: VQVAE.checkpointName, configJSON: try config.canonicalJSON(),
            step: loop.step, params: model.parameters, optimizer: loop.optimizer,
            extra: [
                MetadataKey.train.rawValue: try loop.options.canonicalJSON(), MetadataKey.data.rawValue: dataSummary,
                MetadataKey.patchNums.rawValue: config.patchNums.map(String.init).joined(separator: ","),
                MetadataKey.normGroups.rawValue: String(config.model.normGroups),
            ].merging(finetunedFrom.map { [MetadataKey.finetunedFrom.rawValue: $0] } ?? [:]) { a, _ in a })
    }

    /// Continues a run from its checkpoint (a decoder fine-tuning restores the frozen weights from it too).
    public func resume(from path: String) throws {
        let ck = try loop.resume(from: path, model: VQVAE.checkpointName, configJSON: try config.canonicalJSON(), params: loop.params)
        if config.decoderOnly {
            try ck.loadParameters(model.parameters)  // the frozen part too (the loop restores what it trains)
            finetunedFrom = ck.file.metadata[.finetunedFrom] ?? finetunedFrom
        }
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
                let s = config.decoderOnly ? self.model.decoderTrainStep(x) : self.model.trainStep(x)
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
