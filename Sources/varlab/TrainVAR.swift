import ArgumentParser
import Autoencoders
import Foundation
import Generation
import ModelIO
import Samplers
import Tensor
import Training
import VAR

/// `varlab train var`: the VAR transformer (or an ablation variant) on a frozen VQ-VAE's tokens.
struct TrainVAR: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "var",
        abstract: "Train a VAR transformer on frozen VQ-VAE tokens (or the ar / plain-ln ablation variants).",
        discussion: """
            The training images are encoded once by the frozen VQ-VAE (--token-cache keeps the tokens for later runs); \
            teacher-forcing inputs are rebuilt per batch. Loss: cross-entropy over all tokens with the official 1/L \
            weighting; class dropout --cond-drop to the null class (for classifier-free guidance). The var checkpoint uses \
            the official key names and carries varlab.patch_nums / varlab.heads, so `varlab sample --model var \
            --checkpoint CK --vae VQ` needs no other flag. Written atomically every --save-every steps; --resume continues \
            from -o (same config). --export writes the weights alone (no optimizer state) at the end. Deterministic given \
            --seed, for any --threads.
            """)

    @Option(help: "The frozen VQ-VAE (safetensors with varlab.patch_nums, e.g. from `varlab train vqvae`).") var vae: String
    @Option(help: "var (next-scale), ar (raster order, finest scale only) or plain-ln (next-scale, no AdaLN).") var variant: String = "var"
    @Option(help: "Transformer blocks.") var depth: Int = 6
    @Option(help: "Width (embed dim).") var width: Int = 128
    @Option(help: "Attention heads.") var heads: Int = 4
    @Option(help: "MLP hidden = ratio x width.") var mlpRatio: Double = 4
    @Option(help: "Class dropout probability (official 0.1).") var condDrop: Float = 0.1
    @Option(help: "Training data: toy or imagefolder:PATH.") var data: String = "toy"
    @Option(help: "Training images to encode (indices 0..<N of the split).") var trainSize: Int = 20_000
    @Option(help: "Toy data: dataset seed.") var dataSeed: UInt64 = 0
    @Option(help: "Token cache file (.safetensors): reused when it matches VQ-VAE, data and size, else written.") var tokenCache: String?
    @Option(help: "Optimizer steps.") var steps: Int = 1000
    @Option(help: "Images per step.") var batchSize: Int = 32
    @Option(help: "Peak learning rate.") var lr: Float = 1e-3
    @Option(help: "Warmup steps.") var warmup: Int = 50
    @Option(help: "Decoupled weight decay.") var weightDecay: Float = 0.05
    @Option(help: "Gradient clipping (global L2 norm).") var clip: Float = 2
    @Option(help: "Seed: initialisation, batch order, class dropout.") var seed: UInt64 = 0
    @Option(help: "EMA decay of the sampling weights (0 = none, as the official trainer; --export and the evaluation use the EMA).")
    var ema: Float = 0
    @Option(help: "Checkpoint every N steps.") var saveEvery: Int = 100
    @Option(help: "Print progress every N steps.") var logEvery: Int = 10
    @Option(help: "At the end, also write the weights alone (no optimizer state) here.") var export: String?
    @Option(
        help:
            "After training, sample --eval-n images (classes i % 10, default sampling settings) and report how often this toy classifier checkpoint recognises the requested class."
    ) var evalClassifier: String?
    @Option(help: "Samples for --eval-classifier.") var evalN: Int = 200
    @Option(help: "Classifier-free guidance for --eval-classifier (default 1.5 = varlab sample's default).") var evalCfg: Double = 1.5
    @Flag(help: "Skip training: only run --eval-classifier on the -o checkpoint.") var evalOnly = false
    @Flag(help: "Continue from the checkpoint at -o.") var resume = false
    @Option(name: [.short, .customLong("output")], help: "Checkpoint path (.safetensors).") var output: String
    @OptionGroup var common: CommonOptions

    func run() throws {
        try common.apply()
        guard logEvery >= 1 else { throw ValidationError("--log-every must be at least 1") }
        if evalOnly {
            guard let evalClassifier else { throw ValidationError("--eval-only needs --eval-classifier") }
            return try Self.classifierAccuracy(checkpoint: output, vae: vae, classifier: evalClassifier, n: evalN, cfg: evalCfg)
        }
        guard let v = VARVariant(rawValue: variant) else {
            throw ValidationError("--variant must be var, ar or plain-ln, got '\(variant)'")
        }
        let vaeArchive = try CheckpointLoader.open(path: vae)
        guard let pnText = (vaeArchive as? SafetensorsFile)?.metadata[.patchNums] else {
            throw ValidationError("--vae \(vae) has no varlab.patch_nums metadata (train it with `varlab train vqvae`)")
        }
        let pns = pnText.split(separator: ",").compactMap { Int($0) }
        let tokenizer: VQVAE
        do { tokenizer = try VQVAE(archive: vaeArchive, patchNums: pns) } catch {
            throw ValidationError("--vae \(vae) is not a VAR VQ-VAE: \(error)")
        }
        var config = VARConfig()
        config.variant = v; config.depth = depth; config.width = width; config.heads = heads; config.mlpRatio = mlpRatio
        config.condDropRate = condDrop; config.vocabSize = tokenizer.quantizer.vocabSize; config.cvae = tokenizer.quantizer.channels
        config.patchNums = tokenizer.patchNums
        let source = try TrainData.source(data, trainSize: trainSize, dataSeed: dataSeed, size: tokenizer.imageSize)
        config.numClasses = source.classCount
        do { try config.validate() } catch { throw ValidationError("\(error)") }
        var opts = TrainOptions()
        opts.steps = steps; opts.batchSize = batchSize; opts.lr = lr; opts.warmupSteps = warmup
        opts.weightDecay = weightDecay; opts.clip = clip; opts.seed = seed; opts.saveEvery = saveEvery
        do { try opts.validate() } catch { throw ValidationError("\(error)") }
        do { try WeightEMA.validate(decay: ema) } catch let TrainingError.config(message) { throw ValidationError("--ema: \(message)") }
        // A checkpoint of another config is refused now, not after minutes of encoding.
        if resume {
            do { try TrainLoop.resumable(output, model: VARModel.checkpointName, configJSON: try config.canonicalJSON()) } catch let e
                as TrainingError
            {
                throw ValidationError(e.description)
            }
        }

        // Tokens of the training images, from the cache when it matches.
        let kind: VARTokenSet.Kind = v == .ar ? .finestOnly : .multiScale
        let n = min(trainSize, source.count)
        let t0 = Date()
        var tokens: VARTokenSet? = nil
        var fingerprint = ""
        if let tokenCache {
            fingerprint = try VARTokenSet.fingerprint(
                vaePath: vae, dataSummary: source.summary, count: n, kind: kind, patchNums: config.patchNums)
            tokens = try VARTokenSet.read(path: tokenCache, fingerprint: fingerprint)
            if tokens != nil { note("tokens: \(tokenCache) (cached)") }
        }
        if tokens == nil {
            note("encoding \(n) training images with \(vae) (\(kind.rawValue) tokens)...")
            var last = Date()
            tokens = try VARTokenSet.encode(vae: tokenizer, source: source, count: n, kind: kind) { done in
                if Date().timeIntervalSince(last) > 15 || done == n {
                    last = Date()
                    note(String(format: "  encoded %d/%d (%.0f images/s)", done, n, Double(done) / Date().timeIntervalSince(t0)))
                }
            }
            if let tokenCache { try tokens!.write(to: tokenCache, fingerprint: fingerprint); note("tokens cached in \(tokenCache)") }
        }
        let encodeSeconds = Date().timeIntervalSince(t0)

        let trainer: VARTrainer
        do { trainer = try VARTrainer(config: config, options: opts, vae: tokenizer, data: tokens!, emaDecay: ema) } catch {
            throw ValidationError("\(error)")
        }
        trainer.dataSummary = tokens!.summary
        trainer.classNames = source.classNames
        trainer.loop.checkpointPath = output
        do {
            if resume {
                try trainer.resume(from: output); note("resuming from \(output) at step \(trainer.loop.step)")
            } else if FileManager.default.fileExists(atPath: output) {
                note("note: \(output) exists and will be replaced when the first new checkpoint is complete (use --resume to continue it)")
            }
        } catch let e as TrainingError { throw ValidationError(e.description) }
        let params = trainer.model.parameters.reduce(0) { $0 + $1.value.count }
        note("data: \(tokens!.summary)")
        note(
            "model: \(v.rawValue) depth \(depth) width \(width) heads \(heads) mlp \(config.mlpHidden), \(config.totalTokens) tokens, "
                + "vocab \(config.vocabSize), \(config.numClasses) classes; \(params) parameters (\(String(format: "%.1f", Double(params) * 4 / 1e6)) MB f32); \(Parallel.threads) threads"
        )
        let t1 = Date()
        do {
            try trainer.run { p in
                if p.step % logEvery == 0 || p.step == p.totalSteps {
                    note(TrainData.progressLine(p, String(format: "acc %.3f", p.accuracy)))
                }
            }
        } catch let e as TrainingError { throw ValidationError(e.description) }
        let seconds = Date().timeIntervalSince(t1)
        if let export { try trainer.exportWeights(to: export); note("weights (no optimizer state) written to \(export)") }
        print(
            String(
                format: "trained %@ to step %d in %@ (+ %@ encoding); checkpoint %@", v.rawValue, trainer.loop.step,
                TrainData.duration(seconds), TrainData.duration(encodeSeconds), output))
        if let evalClassifier {
            try Self.classifierAccuracy(checkpoint: output, vae: vae, classifier: evalClassifier, n: evalN, cfg: evalCfg)
        }
    }

    /// Toy-classifier accuracy of n samples (cfg as given, top-k 900, top-p 0.96, seed 0, sample i of class i % C),
    /// and of the tokenizer's reconstructions of n held-out images (the ceiling), through `ToyQuality`.
    static func classifierAccuracy(checkpoint: String, vae: String, classifier: String, n: Int, cfg: Double = 1.5) throws {
        guard n >= 20 else { throw ValidationError("--eval-n must be at least 20") }
        var settings = GenerationSettings(family: VARFamily.name)
        settings.checkpoint = checkpoint; settings.vae = vae; settings.cfg = cfg
        // A training checkpoint with an EMA is evaluated with its sampling weights.
        if (try? SafetensorsFile(path: checkpoint))?.info("ema.head.weight") != nil {
            settings.key = "ema"
            note("\(checkpoint): evaluating its EMA weights")
        }
        settings.tokens = TokenSamplingOverrides(topK: 900, topP: 0.96, moreSmooth: false)
        let generator = try settings.makeGenerator(log: note)
        let quality = try ToyQuality(n: n, dataSeed: 0, classifier: classifier)
        if let vq = (generator as? TokenModelGenerator<VARModel>)?.sampler.vae,
            generator.numClasses == quality.toy.classifier.config.classes
        {
            let ceiling = try quality.reconstructions(vq, batchSize: 50).row
            print(
                String(
                    format: "toy-classifier accuracy of %d held-out toy images reconstructed by the VQ-VAE (ceiling): %.4f", n,
                    ceiling.accuracy))
        }
        let (row, _) = try quality.samples("var", generator: generator, seed: 0, batchSize: 50)
        let per = row.perClass.map { String(format: "%.2f", $0.accuracy) }
        print(
            String(
                format: "toy-classifier accuracy of %d samples (cfg %g, top-k 900, top-p 0.96, seed 0): %.4f; per class %@; %.1fs",
                n, cfg, row.accuracy, per.joined(separator: " "), row.seconds))
    }
}
