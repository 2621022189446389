import Autoencoders
import DiT
import Foundation
import ImageIO
import ModelIO
import Samplers
import Tensor

/// The DiT-specific settings of a sample or edit run; nil fields take what a varlab-trained checkpoint records
/// (`varlab.sample_*`: the tiny toy DiT samples with 100 DDPM steps, cfg 4, guidance on all channels), else the
/// official FID settings of DiT's sample_ddp.py: 250 DDPM steps, cfg 1.5, guidance on the first three latent
/// channels (as the released code does it).
public struct DiTSettings: Sendable {
    /// Denoising steps, 1...1000 (respacing of the 1000-step schedule as create_diffusion(str(steps))).
    public var steps: Int?
    /// ddpm (ancestral, as sample.py) or ddim.
    public var sampler: String?
    /// DDIM eta (0 = deterministic DDIM; ignored by ddpm).
    public var eta: Float = 0
    /// first3 (the official forward_with_cfg, which guides only eps[:, :3]) or all.
    public var cfgChannels: String?
    /// Attention heads, for hidden sizes that are not an official S/B/L/XL size.
    public var heads: Int?
    /// Entry of a training checkpoint (ema or model; default: the file itself, else ema, else model).
    public var key: String?
    /// KL-VAE GroupNorm groups when the VAE has no config.json (default 32, the SD VAE).
    public var vaeGroups: Int?

    public init() {}

    public func validate() throws {
        if let steps, !(1...1000).contains(steps) { throw GenerationError("--steps must be between 1 and 1000, got \(steps)") }
        _ = try method(default: "ddpm")
        _ = try channels()
        if let heads, heads < 1 { throw GenerationError("--dit-heads must be positive, got \(heads)") }
        if let vaeGroups, vaeGroups < 1 { throw GenerationError("--vae-groups must be positive, got \(vaeGroups)") }
    }

    public func method(default name: String) throws -> DiffusionSampler.Method {
        do { return try DiffusionSampler.Method.parse(sampler ?? name, eta: eta) } catch { throw GenerationError("\(error)") }
    }

    public func channels(default name: String = "first3") throws -> CFGChannels {
        let given = cfgChannels ?? name
        guard let c = CFGChannels(rawValue: given.lowercased()) else {
            throw GenerationError("--cfg-channels must be first3 or all, got '\(given)'")
        }
        return c
    }

    /// Loads the DiT and its latent decoder. Steps, sampler and cfg not given fall back to the checkpoint's
    /// recorded defaults (`varlab.sample_*`, the tiny model), else the official 250 DDPM steps with cfg 1.5.
    public func makeGenerator(
        checkpoint: String, vae: String, cfg: Float?, precision: MatmulPrecision = .float32, log: (String) -> Void = { _ in }
    ) throws -> DiTGenerator {
        try validate()
        let info = DiTCheckpointInfo(path: checkpoint)
        let model = try DiTGenerator.loadDiT(path: checkpoint, key: key, heads: heads ?? info.heads, log: log)
        model.setMatmulPrecision(precision)
        let codec = try info.codec(vae: vae, groups: vaeGroups, checkpoint: checkpoint)
        let defaults = info.sampleDefaults
        return try DiTGenerator(
            model: model, codec: codec, vaePath: vae, checkpointPath: checkpoint,
            steps: steps ?? defaults.steps ?? 250,
            method: try method(default: defaults.sampler ?? "ddpm"), cfgScale: cfg ?? defaults.cfg ?? 1.5,
            channels: try channels(default: defaults.cfgChannels ?? "first3"))
    }
}

/// What a varlab-trained DiT checkpoint says about itself in its safetensors metadata (nothing for official files):
/// the head count, the latent space (`varlab.vae` = "var-vqvae" with `varlab.latent_scale`), default sampler settings.
public struct DiTCheckpointInfo {
    public var metadata: [String: String] = [:]

    public init(path: String) {
        if (try? CheckpointLoader.detectFormat(path: path)) == .safetensors, let f = try? SafetensorsFile(path: path) {
            metadata = f.metadata
        }
    }

    public var heads: Int? { metadata.int(.heads) }
    public var latentScale: Float? { metadata.float(.latentScale) }
    public var sampleDefaults: (steps: Int?, sampler: String?, cfg: Float?, cfgChannels: String?) {
        (metadata.int(.sampleSteps), metadata[.sampleSampler], metadata.float(.sampleCFG), metadata[.sampleCFGChannels])
    }
    /// Whether in-painting should use RePaint resampling when the user does not say (`varlab.edit_resample`).
    public var editResample: Bool? { metadata.bool(.editResample) }

    /// The latent decoder: the VAR VQ-VAE (f-hat / latent_scale) when `vae` is one, else the SD KL-VAE.
    public func codec(vae: String, groups: Int?, checkpoint: String) throws -> LatentCodec {
        if VQLatentCodec.isVQVAE(path: vae) {
            guard let scale = latentScale else {
                throw GenerationError(
                    "--vae \(vae) is a VAR VQ-VAE, but the DiT \(checkpoint) has no varlab.latent_scale "
                        + "(it was not trained on VQ-VAE latents; use its KL-VAE)")
            }
            guard scale.isFinite, scale > 0 else {
                throw GenerationError(
                    "\(checkpoint): metadata varlab.latent_scale = \(metadata[.latentScale] ?? "") must be a positive number")
            }
            let pns = metadata[.vaePatchNums].map { $0.split(separator: ",").compactMap { Int($0) } }
            return VQLatentCodec(vae: try VQLatentCodec.loadVQVAE(path: vae, patchNums: pns), scale: scale)
        }
        if metadata[.vae] == "var-vqvae" {
            throw GenerationError("the DiT \(checkpoint) was trained on VAR VQ-VAE latents; --vae \(vae) is not a VQ-VAE")
        }
        return KLLatentCodec(vae: try KLVAE.load(path: vae, groups: groups))
    }
}

/// DiT + its latent decoder behind the `SampleGenerator` contract, as sample.py / sample_ddp.py run them:
/// z ~ N(0, I) per sample (Philox stream = sample index), the respaced reverse process with guidance when
/// cfg > 1 (the model sees [z; z] with labels [y; null]), decode (KL-VAE: z / scaling_factor; tiny VQ-VAE:
/// z / latent_scale), uint8 as clamp(127.5 x + 128, 0, 255) truncated.
public struct DiTGenerator: SampleGenerator {
    public let model: DiTModel
    public let codec: LatentCodec
    public let diffusion: GaussianDiffusion
    public let sampler: DiffusionSampler
    public let cfgScale: Float
    public let channels: CFGChannels

    public var family: String { DiTFamily.name }
    public var imageSize: Int { model.config.inputSize * codec.downsampleFactor }
    public var numClasses: Int { model.config.numClasses }

    public init(
        model: DiTModel, codec: LatentCodec, vaePath: String = "<vae>", checkpointPath: String = "<dit>", steps: Int,
        method: DiffusionSampler.Method, cfgScale: Float, channels: CFGChannels
    ) throws {
        guard codec.latentChannels == model.config.inChannels else {
            throw GenerationError(
                "--vae \(vaePath): the VAE has \(codec.latentChannels) latent channels but the DiT "
                    + "\(checkpointPath) denoises \(model.config.inChannels)-channel latents")
        }
        guard (1...1000).contains(steps) else { throw GenerationError("--steps must be between 1 and 1000, got \(steps)") }
        guard cfgScale.isFinite, cfgScale >= 0 else { throw GenerationError("--cfg must be a finite number >= 0, got \(cfgScale)") }
        self.model = model
        self.codec = codec
        diffusion = try GaussianDiffusion(respacing: String(steps), learnSigma: model.config.learnSigma)
        sampler = DiffusionSampler(diffusion: diffusion, method: method, clipDenoised: false)
        self.cfgScale = cfgScale
        self.channels = channels
    }

    /// Opens a DiT state dict. A training checkpoint (train.py: {model, ema, opt, args}) is read through its
    /// `ema` entry unless `key` chooses.
    public static func loadDiT(path: String, key: String?, heads: Int?, log: (String) -> Void = { _ in }) throws -> DiTModel {
        if let key { return try DiTModel.load(path: path, keyPath: key, numHeads: heads) }
        do {
            return try DiTModel.load(path: path, numHeads: heads)
        } catch {
            for k in ["ema", "model"] {
                if let a = try? CheckpointLoader.open(path: path, keyPath: k), a.contains("pos_embed") {
                    log("\(path): using its '\(k)' weights (choose with --dit-key)")
                    return try DiTModel.load(path: path, keyPath: k, numHeads: heads)
                }
            }
            throw error
        }
    }

    public func generate(_ requests: [SampleRequest], seed: UInt64, progress: (SampleProgress) -> Void) throws -> [Image8] {
        if requests.isEmpty { return [] }
        let c = model.config
        let labels = requests.map(\.classLabel)
        if let bad = labels.first(where: { $0 < 0 || $0 >= c.numClasses }) {
            throw GenerationError("class \(bad) is outside 0..<\(c.numClasses) for this DiT")
        }
        let shape = [requests.count, c.inChannels, c.inputSize, c.inputSize]
        var noise = PerSampleNoise(seed: seed, sampleIndices: requests.map(\.index))
        let denoiser =
            cfgScale > 1
            ? DiTDenoisers.guided(model, labels: labels, scale: cfgScale, channels: channels)
            : DiTDenoisers.plain(model, labels: labels)
        let latents = try sampler.sample(shape: shape, noise: &noise, denoiser: denoiser) { st in
            // Step st.step is done: the next one (or the decode) begins.
            progress(
                SampleProgress(
                    stage: st.step + 1, stages: st.steps,
                    label: st.step + 1 < st.steps ? "step \(st.step + 2)/\(st.steps)" : "decode"))
        }
        // vae.decode(samples / 0.18215), one image at a time to bound the decoder's memory.
        var images: [Image8] = []
        for i in 0..<requests.count {
            images.append(Image8(signedCHW: try codec.decode(latents.slice0(i, i + 1))))
        }
        return images
    }
}
