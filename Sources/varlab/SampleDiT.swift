import ArgumentParser
import Autoencoders
import DiT
import Foundation
import ImageIO
import ModelIO
import Samplers
import Tensor

/// DiT-specific flags of `varlab sample --model dit` (the `sample` command holds `@OptionGroup var dit: DiTSampleOptions`
/// and, for `--model dit`, calls `dit.makeGenerator(checkpoint:vae:cfg:)`).
/// Defaults are the official FID settings of DiT's sample_ddp.py: 250 DDPM steps, cfg 1.5, guidance on the
/// first three latent channels (as the released code does it).
struct DiTSampleOptions: ParsableArguments {
    @Option(help: "DiT: denoising steps, 1...1000 (respacing of the 1000-step schedule as create_diffusion(str(steps))).")
    var steps: Int = 250

    @Option(help: "DiT: ddpm (ancestral, as sample.py) or ddim.")
    var sampler: String = "ddpm"

    @Option(help: "DiT: DDIM eta (0 = deterministic DDIM; ignored by ddpm).")
    var eta: Float = 0

    @Option(help: "DiT: channels that classifier-free guidance mixes: first3 (the official forward_with_cfg, which guides only eps[:, :3]) or all (every latent channel).")
    var cfgChannels: String = "first3"

    @Option(help: "DiT: attention heads, when the checkpoint's hidden size is not an official S/B/L/XL size and no dit_config.json sits beside it.")
    var ditHeads: Int?

    @Option(help: "DiT: entry of a training checkpoint to use (e.g. ema or model; default: the file itself, else ema, else model).")
    var ditKey: String?

    @Option(help: "KL-VAE: GroupNorm groups when the VAE has no config.json (default 32, the SD VAE).")
    var vaeGroups: Int?

    func validate() throws {
        guard (1...1000).contains(steps) else { throw ValidationError("--steps must be between 1 and 1000, got \(steps)") }
        _ = try method()
        _ = try channels()
        if let ditHeads, ditHeads < 1 { throw ValidationError("--dit-heads must be positive, got \(ditHeads)") }
        if let vaeGroups, vaeGroups < 1 { throw ValidationError("--vae-groups must be positive, got \(vaeGroups)") }
    }

    func method() throws -> DiffusionSampler.Method {
        do { return try DiffusionSampler.Method.parse(sampler, eta: eta) } catch { throw ValidationError("\(error)") }
    }

    func channels() throws -> CFGChannels {
        guard let c = CFGChannels(rawValue: cfgChannels.lowercased()) else {
            throw ValidationError("--cfg-channels must be first3 or all, got '\(cfgChannels)'")
        }
        return c
    }

    /// Loads the DiT and the VAE; `cfg` nil means the official 1.5.
    func makeGenerator(checkpoint: String?, vae: String?, cfg: Float?) throws -> DiTGenerator {
        try validate()
        guard let checkpoint else { throw ValidationError("--model dit needs --checkpoint (e.g. DiT-XL-2-256x256.pt)") }
        guard let vae else { throw ValidationError("--model dit needs --vae (a diffusers AutoencoderKL directory such as sd-vae-ft-ema/)") }
        let model = try DiTGenerator.loadDiT(path: checkpoint, key: ditKey, heads: ditHeads)
        let autoencoder = try KLVAE.load(path: vae, groups: vaeGroups)
        return try DiTGenerator(model: model, vae: autoencoder, vaePath: vae, checkpointPath: checkpoint, steps: steps,
                                method: try method(), cfgScale: cfg ?? 1.5, channels: try channels())
    }
}

/// DiT + KL-VAE behind the `SampleGenerator` contract, as sample.py / sample_ddp.py run them:
/// z ~ N(0, I) per sample (Philox stream = sample index), the respaced reverse process with guidance when
/// cfg > 1 (the model sees [z; z] with labels [y; null]), decode(z / scaling_factor), uint8 as
/// clamp(127.5 x + 128, 0, 255) truncated.
struct DiTGenerator: SampleGenerator {
    let model: DiTModel
    let vae: KLVAE
    let diffusion: GaussianDiffusion
    let sampler: DiffusionSampler
    let cfgScale: Float
    let channels: CFGChannels

    var family: String { "dit" }
    var imageSize: Int { model.config.inputSize * vae.config.downsampleFactor }
    var numClasses: Int { model.config.numClasses }

    init(model: DiTModel, vae: KLVAE, vaePath: String = "<vae>", checkpointPath: String = "<dit>", steps: Int,
         method: DiffusionSampler.Method, cfgScale: Float, channels: CFGChannels) throws {
        guard vae.config.latentChannels == model.config.inChannels else {
            throw ValidationError("--vae \(vaePath): the VAE has \(vae.config.latentChannels) latent channels but the DiT " +
                                  "\(checkpointPath) denoises \(model.config.inChannels)-channel latents")
        }
        guard (1...1000).contains(steps) else { throw ValidationError("--steps must be between 1 and 1000, got \(steps)") }
        guard cfgScale.isFinite, cfgScale >= 0 else { throw ValidationError("--cfg must be a finite number >= 0, got \(cfgScale)") }
        self.model = model
        self.vae = vae
        diffusion = try GaussianDiffusion(respacing: String(steps), learnSigma: model.config.learnSigma)
        sampler = DiffusionSampler(diffusion: diffusion, method: method, clipDenoised: false)
        self.cfgScale = cfgScale
        self.channels = channels
    }

    /// Opens a DiT state dict. A training checkpoint (train.py: {model, ema, opt, args}) is read through its
    /// `ema` entry unless `key` chooses.
    static func loadDiT(path: String, key: String?, heads: Int?) throws -> DiTModel {
        do {
            return try DiTModel.load(path: path, keyPath: key, numHeads: heads)
        } catch let e as DiTError {
            guard key == nil, case .notDiT = e else { throw e }
            for k in ["ema", "model"] {
                if let a = try? CheckpointLoader.open(path: path, keyPath: k), a.contains("pos_embed") {
                    note("\(path): using its '\(k)' weights (choose with --dit-key)")
                    return try DiTModel.load(path: path, keyPath: k, numHeads: heads)
                }
            }
            throw e
        }
    }

    func generate(_ requests: [SampleRequest], seed: UInt64, progress: (SampleProgress) -> Void) throws -> [Image8] {
        if requests.isEmpty { return [] }
        let c = model.config
        let labels = requests.map(\.classLabel)
        if let bad = labels.first(where: { $0 < 0 || $0 >= c.numClasses }) {
            throw ValidationError("class \(bad) is outside 0..<\(c.numClasses) for this DiT")
        }
        let shape = [requests.count, c.inChannels, c.inputSize, c.inputSize]
        var noise = PerSampleNoise(seed: seed, sampleIndices: requests.map(\.index))
        let denoiser = cfgScale > 1
            ? DiTDenoisers.guided(model, labels: labels, scale: cfgScale, channels: channels)
            : DiTDenoisers.plain(model, labels: labels)
        let latents = try sampler.sample(shape: shape, noise: &noise, denoiser: denoiser) { st in
            progress(SampleProgress(stage: st.step + 1, stages: st.steps, label: "step \(st.step + 1)/\(st.steps)"))
        }
        // vae.decode(samples / 0.18215), one image at a time to bound the decoder's memory.
        var images: [Image8] = []
        for i in 0..<requests.count {
            let z = latents.slice0(i, i + 1).map { $0 / vae.config.scalingFactor }
            images.append(Image8(signedCHW: try vae.decode(z)))
        }
        return images
    }
}
