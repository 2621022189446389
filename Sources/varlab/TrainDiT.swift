import ArgumentParser
import Autoencoders
import DiT
import Foundation
import ModelIO
import Tensor
import Training

/// `varlab train dit`: a small DiT on the continuous latent f-hat of the tiny VAR VQ-VAE (the two families share
/// one decoder, so a comparison isolates the generator).
struct TrainDiT: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dit",
        abstract: "Train a small DiT (adaLN-Zero, epsilon MSE, learn_sigma off) on the latents of a trained VQ-VAE.",
        discussion: """
            The images (--data) are encoded once by the frozen VQ-VAE (--vae, from `varlab train vqvae`) into f-hat, the \
            latent its decoder consumes, and scaled by 1/std (stored as varlab.latent_scale); the encoded set is cached \
            in --latents, reused while the tokenizer's encoding tensors are the same (a decoder fine-tune keeps it). The checkpoint (-o) has the official DiT key names (it loads in `varlab sample --model dit` \
            with the same --vae), the EMA (if --ema > 0) and the optimizer state; it is written atomically every \
            --save-every steps and at the end. --export writes the sampling weights alone (EMA if kept). \
            --resume continues from -o (same config). Deterministic given --seed, for any --threads.
            """)

    @Option(help: "The trained VAR VQ-VAE (safetensors from `varlab train vqvae`).") var vae: String
    @Option(help: "Training data: toy or imagefolder:PATH.") var data: String = "toy"
    @Option(help: "Images to encode (toy: training indices 0..<N).") var trainSize: Int = 20_000
    @Option(help: "Toy data: dataset seed.") var dataSeed: UInt64 = 0
    @Option(help: "Cache of the encoded latents (default: <output>.latents.safetensors).") var latents: String?
    @Option(help: "Optimizer steps.") var steps: Int = 4000
    @Option(help: "Latents per step.") var batchSize: Int = 64
    @Option(help: "Peak learning rate (AdamW beta 0.9/0.95; the official DiT uses 1e-4 at batch 256 for 400k steps).") var lr: Float = 1e-3
    @Option(help: "Warmup steps (then cosine decay).") var warmup: Int = 100
    @Option(help: "Decoupled weight decay (official DiT: 0).") var weightDecay: Float = 0
    @Option(help: "Gradient clipping (global L2 norm).") var clip: Float = 1
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Checkpoint every N steps.") var saveEvery: Int = 250
    @Option(help: "Transformer blocks.") var depth: Int = 6
    @Option(help: "Hidden size (multiple of 4 and of --heads).") var hidden: Int = 128
    @Option(help: "Attention heads.") var heads: Int = 4
    @Option(help: "Patch size on the latent.") var patch: Int = 2
    @Option(help: "MLP width / hidden size.") var mlpRatio: Double = 4
    @Option(help: "Probability of the null class during training (classifier-free guidance).") var classDropout: Float = 0.1
    @Option(help: "EMA decay of the sampling weights (0 = none).") var ema: Float = 0
    @Option(
        help:
            "Min-SNR-γ loss weighting: each sample's loss times min(SNR_t, γ)/SNR_t (Hang et al. 2023; γ = 5 in the paper). 0 = the official uniform loss."
    )
    var minSnrGamma: Float = 0
    @Option(help: "Default sampler recorded in the checkpoint for `varlab sample --model dit`: steps.") var sampleSteps: Int = 100
    @Option(help: "Default sampler recorded in the checkpoint: ddpm or ddim.") var sampleSampler: String = "ddpm"
    @Option(help: "Default guidance scale recorded in the checkpoint.") var sampleCfg: Double = 4
    @Option(help: "Print progress every N steps.") var logEvery: Int = 10
    @Option(help: "Also write the sampling weights alone (no optimizer state) to this file at the end.") var export: String?
    @Flag(help: "Continue from the checkpoint at -o.") var resume = false
    @Option(name: [.short, .customLong("output")], help: "Checkpoint path (.safetensors).") var output: String
    @OptionGroup var common: CommonOptions

    func run() throws {
        try common.apply()
        guard logEvery >= 1 else { throw ValidationError("--log-every must be at least 1") }
        guard trainSize >= 1 else { throw ValidationError("--train-size must be at least 1") }
        guard minSnrGamma >= 0, minSnrGamma.isFinite else {
            throw ValidationError("--min-snr-gamma must be a finite number >= 0 (0 = the official uniform loss), got \(minSnrGamma)")
        }
        guard (1...1000).contains(sampleSteps), ["ddpm", "ddim"].contains(sampleSampler), sampleCfg >= 0 else {
            throw ValidationError("--sample-steps must be in 1...1000, --sample-sampler ddpm or ddim, --sample-cfg >= 0")
        }
        let vq: VQVAE
        do { vq = try VQLatentCodec.loadVQVAE(path: vae) } catch { throw ValidationError("--vae \(vae): \(error)") }
        let codec = VQLatentCodec(vae: vq, scale: 1)
        let imageSize = vq.imageSize
        let source = try TrainData.source(data, trainSize: trainSize, dataSeed: dataSeed, size: imageSize)
        func makeConfig(latentShape: [Int]) -> DiTRunConfig {
            var model = DiTConfig(
                inputSize: latentShape[1], patchSize: patch, inChannels: latentShape[0], hiddenSize: hidden,
                depth: depth, numHeads: heads, mlpRatio: mlpRatio, numClasses: source.classCount, learnSigma: false)
            model.classDropout = classDropout
            var objective = DiTObjective()
            objective.minSNRGamma = minSnrGamma
            return DiTRunConfig(model: model, objective: objective)
        }
        // A checkpoint of another config is refused now, not after minutes of encoding (one image gives the
        // latent shape the config needs).
        if resume, source.count > 0 {
            let probe = try codec.fhat(source.batch([0]).images)
            do {
                try TrainLoop.resumable(
                    output, model: DiTModel.checkpointName,
                    configJSON: try makeConfig(latentShape: Array(probe.shape.dropFirst())).canonicalJSON())
            } catch let e as TrainingError { throw ValidationError(e.description) }
        }
        let set = try latentSet(source: source, codec: codec)
        let config = makeConfig(latentShape: set.latentShape)
        var opts = TrainOptions()
        opts.steps = steps; opts.batchSize = batchSize; opts.lr = lr; opts.warmupSteps = warmup
        opts.weightDecay = weightDecay; opts.clip = clip; opts.seed = seed; opts.saveEvery = saveEvery
        let trainer: DiTTrainer
        do { trainer = try DiTTrainer(config: config.model, objective: config.objective, options: opts, emaDecay: ema) } catch {
            throw ValidationError("\(error)")
        }
        trainer.metadata = DiTTrainer.vqLatentMetadata(
            set: set, patchNums: vq.patchNums, classNames: source.classNames, sampler: sampleSampler, steps: sampleSteps,
            cfg: sampleCfg)
        trainer.loop.checkpointPath = output
        do {
            if resume { try trainer.resume(from: output); note("resuming from \(output) at step \(trainer.loop.step)") }
        } catch let e as TrainingError { throw ValidationError(e.description) }
        note("data: \(set.summary); latent scale \(set.scale)")
        note(
            "model: DiT \(config.model.description); \(trainer.model.parameters.reduce(0) { $0 + $1.value.count }) parameters; "
                + "\(Parallel.threads) threads")
        let t0 = Date()
        do {
            try trainer.run(source: set) { p in
                if p.step % logEvery == 0 || p.step == p.totalSteps {
                    note(TrainData.progressLine(p))
                }
            }
        } catch let e as TrainingError { throw ValidationError(e.description) }
        let seconds = Date().timeIntervalSince(t0)
        if let export { try trainer.export(to: export); note("exported the sampling weights to \(export)") }
        print(
            String(
                format: "trained to step %d in %@ (%.1fs); checkpoint %@", trainer.loop.step, TrainData.duration(seconds), seconds, output))
    }

    /// The encoded training set, from the cache when it was made by the same encoder (a decoder fine-tune or a
    /// copy of the VQ-VAE file keeps it) from the same data.
    func latentSet(source: LabeledImageSource, codec: VQLatentCodec) throws -> LatentSet {
        let cache = latents ?? output + ".latents.safetensors"
        let key = try LatentSet.cacheKey(vaePath: vae, dataSummary: source.summary, count: min(trainSize, source.count))
        if let set = try? LatentSet.read(path: cache, key: key) {
            note("latents: \(set.count) from the cache \(cache)")
            return set
        }
        let n = min(trainSize, source.count)
        note("encoding \(n) images with the VQ-VAE (once; cached in \(cache))")
        let t0 = Date()
        let set = try LatentSet.encode(source: source, count: n, codec: codec) { done in
            if done % 2048 < 32 || done == n {
                let el = Date().timeIntervalSince(t0)
                note(
                    String(
                        format: "encoded %d/%d  %.1f images/s  ETA %@", done, n, Double(done) / max(el, 1e-9),
                        TrainData.duration(el / Double(done) * Double(n - done))))
            }
        }
        try set.write(path: cache, key: key)
        return set
    }
}
