import DiT
import Foundation
import Layers
import ModelIO
import Tensor

/// Trains a DiT on (scaled) latents as the official train.py does, with learn_sigma = False:
///   t ~ U{0..999}, eps ~ N(0, I), x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (linear betas, 1000 steps),
///   labels dropped to the null class with probability 0.1 (LabelEmbedder.token_drop), loss = mean (eps_hat - eps)^2
///   (or, with `minSNRGamma` > 0, each sample's mean weighted by min(SNR_t, γ) / SNR_t).
/// The randomness of step s (t, dropout, eps) is Philox stream 2^41 + s of the seed, so a run is a pure function of
/// the seed and resumes bit-identically. Optional EMA of the weights (`emaDecay`, 0 = off), kept in the checkpoint
/// as `ema.<name>` and exported as the sampling weights.
public final class DiTTrainer {
    public let model: DiTModel
    public let objective: DiTObjective
    public let loop: TrainLoop
    public let diffusion: GaussianDiffusion
    public private(set) var ema: WeightEMA
    public var emaDecay: Float { ema.decay }
    /// Metadata written with every checkpoint (latent scale, latent space, data, ...).
    public var metadata: [String: String] = [:]

    public init(config: DiTConfig, objective: DiTObjective = DiTObjective(), options: TrainOptions, emaDecay: Float = 0) throws {
        guard !config.learnSigma else { throw TrainingError.config("DiT training predicts epsilon only (learn_sigma = False)") }
        try objective.validate()
        do { model = try DiTModel(config: config, seed: options.seed) } catch let e as DiTError { throw TrainingError.config("\(e)") }
        self.objective = objective
        loop = try TrainLoop(params: model.parameters, options: options)
        diffusion = try GaussianDiffusion(respacing: "", diffusionSteps: objective.diffusionSteps, learnSigma: false)
        ema = try WeightEMA(decay: emaDecay, params: model.parameters)
        loop.save = { [unowned self] path in try self.save(to: path) }
    }

    /// One forward + backward on clean latents x0 [B, C, S, S] with labels y at training step `step`; returns the loss.
    public func trainStep(_ x0: Tensor, _ y: [Int], step: Int) -> Double {
        let n = x0.shape[0], c = model.config
        var rng = PhiloxRandom(seed: loop.options.seed, stream: (1 << 41) + UInt64(step))
        var t = [Int](repeating: 0, count: n), labels = y
        for i in 0..<n {
            t[i] = Int(rng.nextUInt32() % UInt32(objective.diffusionSteps))
            if rng.uniform() < c.classDropout { labels[i] = c.numClasses }
        }
        let noise = Tensor(shape: x0.shape, data: (0..<x0.count).map { _ in rng.normal() })
        let xt = diffusion.qSample(x0: x0, t: t, noise: noise)
        let out = model.trainingForward(xt, t: t.map(Float.init), y: labels)
        let (loss, grad) =
            objective.minSNRGamma > 0
            ? Losses.weightedMSE(out, noise, sampleWeights: t.map { minSNRWeight(t: $0, gamma: Double(objective.minSNRGamma)) })
            : Losses.mse(out, noise)
        model.backward(grad)
        return loss
    }

    /// The official (unweighted) epsilon-prediction MSE on held-out latents, at fixed draws: latent i gets the
    /// stratified timestep t_i = floor((i + 1/2) T / n) and noise from Philox stream i of `seed`, true labels. The
    /// same set and seed give the same draws for every model, so losses of different sizes are comparable.
    public func heldOutLoss(_ set: LatentSet, seed: UInt64 = 0, batchSize: Int = 64) throws -> Double {
        let c = model.config
        guard set.count >= 1, set.latentShape == [c.inChannels, c.inputSize, c.inputSize] else {
            throw TrainingError.data(
                "held-out latents \(set.latentShape) do not fit the DiT's [\(c.inChannels), \(c.inputSize), \(c.inputSize)]")
        }
        let steps = objective.diffusionSteps, n = set.count
        var sum = 0.0
        var start = 0
        while start < n {
            let idx = Array(start..<min(n, start + batchSize))
            let (x0, y) = set.batch(idx)
            let t = idx.map { (2 * $0 + 1) * steps / (2 * n) }
            let per = x0.count / idx.count
            var noise = [Float](repeating: 0, count: x0.count)
            for (k, i) in idx.enumerated() {
                var rng = PhiloxRandom(seed: seed, stream: UInt64(i))
                for j in 0..<per { noise[k * per + j] = rng.normal() }
            }
            let eps = Tensor(shape: x0.shape, data: noise)
            let out = model.trainingForward(diffusion.qSample(x0: x0, t: t, noise: eps), t: t.map(Float.init), y: y)
            sum += Losses.mse(out, eps).loss * Double(idx.count)
            start += batchSize
        }
        return sum / Double(n)
    }

    /// min(SNR_t, γ) / SNR_t for epsilon prediction (Min-SNR-γ).
    public func minSNRWeight(t: Int, gamma: Double) -> Float {
        let abar = diffusion.alphasCumprod[t]
        let snr = abar / (1 - abar)
        return Float(min(snr, gamma) / snr)
    }

    public func run(source: LabeledImageSource, progress: (TrainProgress) -> Void = { _ in }) throws {
        let c = model.config
        guard source.imageSize == c.inputSize else {
            throw TrainingError.config("latents are \(source.imageSize)x\(source.imageSize), the DiT expects \(c.inputSize)")
        }
        guard source.classCount <= c.numClasses else {
            throw TrainingError.config("the data has \(source.classCount) classes, the DiT \(c.numClasses)")
        }
        try loop.run(source: source, step: { x, y in (self.trainStep(x, y, step: self.loop.step), .nan) }) { p in
            self.ema.update(self.model.parameters)
            progress(p)
        }
    }

    /// Metadata of a DiT trained on a VAR VQ-VAE's f-hat (`set`): what sampling needs to decode without flags
    /// (latent space, scale, the tokenizer's scales), the class names and the recommended sampler.
    public static func vqLatentMetadata(
        set: LatentSet, patchNums: [Int], classNames: [String], sampler: String, steps: Int, cfg: Double
    ) -> [String: String] {
        [
            MetadataKey.data.rawValue: set.summary,
            ClassNamesMetadata.key: ClassNamesMetadata.encode(classNames),
            MetadataKey.vae.rawValue: "var-vqvae",
            MetadataKey.latentScale.rawValue: String(set.scale),
            MetadataKey.vaePatchNums.rawValue: patchNums.map(String.init).joined(separator: ","),
            MetadataKey.sampleSteps.rawValue: String(steps),
            MetadataKey.sampleSampler.rawValue: sampler,
            MetadataKey.sampleCFG.rawValue: String(cfg),
            // The official forward_with_cfg guides only eps[:, :3] (4-channel SD latents); f-hat has 16 channels.
            MetadataKey.sampleCFGChannels.rawValue: "all",
        ]
    }

    /// The weights to sample with: the EMA when kept, else the raw weights (plus the fixed pos_embed).
    public var samplingWeights: [Parameter] {
        guard ema.isOn else { return model.stateDict }
        return [model.posEmbed] + ema.samplingWeights(model.parameters)
    }

    /// The model config and the objective, as `varlab.config` records them.
    public var runConfig: DiTRunConfig { DiTRunConfig(model: model.config, objective: objective) }

    var checkpointMetadata: [String: String] {
        var m = metadata
        m[.train] = (try? loop.options.canonicalJSON()) ?? ""
        m[.heads] = String(model.config.numHeads)
        m[.emaDecay] = String(emaDecay)
        return m
    }

    /// Training checkpoint: raw weights + pos_embed at the official names (it loads in DiTModel as is), the EMA as
    /// `ema.<name>`, the AdamW state, and the metadata.
    public func save(to path: String) throws {
        try TrainCheckpoint.write(
            path: path, model: DiTModel.checkpointName, configJSON: try runConfig.canonicalJSON(),
            step: loop.step, params: model.stateDict + ema.checkpointEntries(model.parameters), optimizer: loop.optimizer,
            extra: checkpointMetadata)
    }

    /// Inference-only file: the sampling weights (EMA if kept) under the official names and the metadata; no
    /// optimizer state (a third of the size).
    public func export(to path: String) throws {
        try TrainCheckpoint.write(
            path: path, model: DiTModel.checkpointName, configJSON: try runConfig.canonicalJSON(),
            step: loop.step, params: samplingWeights, optimizer: nil,
            extra: checkpointMetadata.merging([MetadataKey.weights.rawValue: ema.isOn ? "ema" : "raw"]) { $1 })
    }

    public func resume(from path: String) throws {
        let ck = try loop.resume(
            from: path, model: DiTModel.checkpointName, configJSON: try runConfig.canonicalJSON(),
            params: model.parameters)
        try ema.restore(from: ck, params: model.parameters, path: path)
    }
}
