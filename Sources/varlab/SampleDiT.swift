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
/// Defaults are what a varlab-trained checkpoint records (`varlab.sample_*`: the tiny toy DiT samples with 100 DDPM steps, cfg 4,
/// guidance on all channels), else the official FID settings of DiT's sample_ddp.py: 250 DDPM steps, cfg 1.5,
/// guidance on the first three latent channels (as the released code does it).
struct DiTSampleOptions: ParsableArguments {
    @Option(help: "DiT: denoising steps, 1...1000 (respacing of the 1000-step schedule as create_diffusion(str(steps))). Default: the checkpoint's varlab.sample_steps, else 250.")
    var steps: Int?

    @Option(help: "DiT: ddpm (ancestral, as sample.py) or ddim. Default: the checkpoint's varlab.sample_sampler, else ddpm.")
    var sampler: String?

    @Option(help: "DiT: DDIM eta (0 = deterministic DDIM; ignored by ddpm).")
    var eta: Float = 0

    @Option(help: "DiT: channels that classifier-free guidance mixes: first3 (the official forward_with_cfg, which guides only eps[:, :3]) or all (every latent channel). Default: the checkpoint's varlab.sample_cfg_channels, else first3.")
    var cfgChannels: String?

    @Option(help: "DiT: attention heads, when the checkpoint's hidden size is not an official S/B/L/XL size and no dit_config.json sits beside it.")
    var ditHeads: Int?

    @Option(help: "DiT: entry of a training checkpoint to use (e.g. ema or model; default: the file itself, else ema, else model).")
    var ditKey: String?

    @Option(help: "KL-VAE: GroupNorm groups when the VAE has no config.json (default 32, the SD VAE).")
    var vaeGroups: Int?

    func validate() throws {
        if let steps, !(1...1000).contains(steps) { throw ValidationError("--steps must be between 1 and 1000, got \(steps)") }
        _ = try method(default: "ddpm")
        _ = try channels()
        if let ditHeads, ditHeads < 1 { throw ValidationError("--dit-heads must be positive, got \(ditHeads)") }
        if let vaeGroups, vaeGroups < 1 { throw ValidationError("--vae-groups must be positive, got \(vaeGroups)") }
    }

    func method(default name: String) throws -> DiffusionSampler.Method {
        do { return try DiffusionSampler.Method.parse(sampler ?? name, eta: eta) } catch { throw ValidationError("\(error)") }
    }

    func channels(default name: String = "first3") throws -> CFGChannels {
        let given = cfgChannels ?? name
        guard let c = CFGChannels(rawValue: given.lowercased()) else {
            throw ValidationError("--cfg-channels must be first3 or all, got '\(given)'")
        }
        return c
    }

    /// Loads the DiT and its latent decoder. Steps, sampler and cfg not given fall back to the checkpoint's
    /// recorded defaults (`varlab.sample_*`, the tiny model), else the official 250 DDPM steps with cfg 1.5.
    func makeGenerator(checkpoint: String?, vae: String?, cfg: Float?) throws -> DiTGenerator {
        try validate()
        guard let checkpoint else { throw ValidationError("--model dit needs --checkpoint (e.g. DiT-XL-2-256x256.pt)") }
        guard let vae else { throw ValidationError("--model dit needs --vae (a diffusers AutoencoderKL directory such as sd-vae-ft-ema/, or the tiny VQ-VAE)") }
        let info = DiTCheckpointInfo(path: checkpoint)
        let model = try DiTGenerator.loadDiT(path: checkpoint, key: ditKey, heads: ditHeads ?? info.heads)
        let codec = try info.codec(vae: vae, groups: vaeGroups, checkpoint: checkpoint)
        let defaults = info.sampleDefaults
        return try DiTGenerator(model: model, codec: codec, vaePath: vae, checkpointPath: checkpoint,
                                steps: steps ?? defaults.steps ?? 250,
                                method: try method(default: defaults.sampler ?? "ddpm"), cfgScale: cfg ?? defaults.cfg ?? 1.5,
                                channels: try channels(default: defaults.cfgChannels ?? "first3"))
    }
}

/// What a varlab-trained DiT checkpoint says about itself in its safetensors metadata (nothing for official files):
/// the head count, the latent space (`varlab.vae` = "var-vqvae" with `varlab.latent_scale`), default sampler settings.
struct DiTCheckpointInfo {
    var metadata: [String: String] = [:]

    init(path: String) {
        if (try? CheckpointLoader.detectFormat(path: path)) == .safetensors, let f = try? SafetensorsFile(path: path) {
            metadata = f.metadata
        }
    }

    var heads: Int? { metadata["varlab.heads"].flatMap { Int($0) } }
    var latentScale: Float? { metadata["varlab.latent_scale"].flatMap { Float($0) } }
    var sampleDefaults: (steps: Int?, sampler: String?, cfg: Float?, cfgChannels: String?) {
        (metadata["varlab.sample_steps"].flatMap { Int($0) }, metadata["varlab.sample_sampler"],
         metadata["varlab.sample_cfg"].flatMap { Float($0) }, metadata["varlab.sample_cfg_channels"])
    }

    /// The latent decoder: the VAR VQ-VAE (f-hat / latent_scale) when `vae` is one, else the SD KL-VAE.
    func codec(vae: String, groups: Int?, checkpoint: String) throws -> LatentCodec {
        if VQLatentCodec.isVQVAE(path: vae) {
            guard let scale = latentScale else {
                throw ValidationError("--vae \(vae) is a VAR VQ-VAE, but the DiT \(checkpoint) has no varlab.latent_scale " +
                                      "(it was not trained on VQ-VAE latents; use its KL-VAE)")
            }
            guard scale.isFinite, scale > 0 else {
                throw ValidationError("\(checkpoint): metadata varlab.latent_scale = \(metadata["varlab.latent_scale"] ?? "") must be a positive number")
            }
            let pns = metadata["varlab.vae_patch_nums"].map { $0.split(separator: ",").compactMap { Int($0) } }
            return VQLatentCodec(vae: try VQLatentCodec.loadVQVAE(path: vae, patchNums: pns), scale: scale)
        }
        if metadata["varlab.vae"] == "var-vqvae" {
            throw ValidationError("the DiT \(checkpoint) was trained on VAR VQ-VAE latents; --vae \(vae) is not a VQ-VAE")
        }
        return KLLatentCodec(vae: try KLVAE.load(path: vae, groups: groups))
    }
}

/// DiT + its latent decoder behind the `SampleGenerator` contract, as sample.py / sample_ddp.py run them:
/// z ~ N(0, I) per sample (Philox stream = sample index), the respaced reverse process with guidance when
/// cfg > 1 (the model sees [z; z] with labels [y; null]), decode (KL-VAE: z / scaling_factor; tiny VQ-VAE:
/// z / latent_scale), uint8 as clamp(127.5 x + 128, 0, 255) truncated.
struct DiTGenerator: SampleGenerator {
    let model: DiTModel
    let codec: LatentCodec
    let diffusion: GaussianDiffusion
    let sampler: DiffusionSampler
    let cfgScale: Float
    let channels: CFGChannels

    var family: String { "dit" }
    var imageSize: Int { model.config.inputSize * codec.downsampleFactor }
    var numClasses: Int { model.config.numClasses }

    init(model: DiTModel, codec: LatentCodec, vaePath: String = "<vae>", checkpointPath: String = "<dit>", steps: Int,
         method: DiffusionSampler.Method, cfgScale: Float, channels: CFGChannels) throws {
        guard codec.latentChannels == model.config.inChannels else {
            throw ValidationError("--vae \(vaePath): the VAE has \(codec.latentChannels) latent channels but the DiT " +
                                  "\(checkpointPath) denoises \(model.config.inChannels)-channel latents")
        }
        guard (1...1000).contains(steps) else { throw ValidationError("--steps must be between 1 and 1000, got \(steps)") }
        guard cfgScale.isFinite, cfgScale >= 0 else { throw ValidationError("--cfg must be a finite number >= 0, got \(cfgScale)") }
        self.model = model
        self.codec = codec
        diffusion = try GaussianDiffusion(respacing: String(steps), learnSigma: model.config.learnSigma)
        sampler = DiffusionSampler(diffusion: diffusion, method: method, clipDenoised: false)
        self.cfgScale = cfgScale
        self.channels = channels
    }

    /// Opens a DiT state dict. A training checkpoint (train.py: {model, ema, opt, args}) is read through its
    /// `ema` entry unless `key` chooses.
    static func loadDiT(path: String, key: String?, heads: Int?) throws -> DiTModel {
        if let key { return try DiTModel.load(path: path, keyPath: key, numHeads: heads) }
        do {
            return try DiTModel.load(path: path, numHeads: heads)
        } catch {
            for k in ["ema", "model"] {
                if let a = try? CheckpointLoader.open(path: path, keyPath: k), a.contains("pos_embed") {
                    note("\(path): using its '\(k)' weights (choose with --dit-key)")
                    return try DiTModel.load(path: path, keyPath: k, numHeads: heads)
                }
            }
            throw error
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
            // Step st.step is done: the next one (or the decode) begins.
            progress(SampleProgress(stage: st.step + 1, stages: st.steps,
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

/// glibc serves allocations above 32 MB with fresh mmaps, so every large convolution buffer of the SD-VAE decoder
/// (im2col at 256x256 is ~600 MB) is page-faulted and zeroed anew; that was ~25% of a decode. Serving them from
/// the heap and keeping freed memory (no trimming) lets the next layer reuse the pages. Peak RSS is unchanged
/// (measured 1.16 vs 1.20 GB for bench dit --config S/8).
enum MallocPolicy {
    static func reuseLargeBlocks() {
        // mallopt is in <malloc.h>, which the Glibc module does not export; look it up (absent off glibc).
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        guard let h = dlopen(nil, RTLD_NOW), let f = dlsym(h, "mallopt") else { return }
        let mallopt = unsafeBitCast(f, to: Mallopt.self)
        let M_TRIM_THRESHOLD: Int32 = -1, M_MMAP_MAX: Int32 = -4   // glibc's values
        _ = mallopt(M_MMAP_MAX, 0)
        _ = mallopt(M_TRIM_THRESHOLD, Int32.max)
    }
}
