import ArgumentParser
import Generation

/// DiT-specific flags of `varlab sample --model dit` (and the benches): they fill a `DiTSettings`.
struct DiTSampleOptions: ParsableArguments {
    @Option(
        help:
            "DiT: denoising steps, 1...1000 (respacing of the 1000-step schedule as create_diffusion(str(steps))). Default: the checkpoint's varlab.sample_steps, else 250."
    )
    var steps: Int?

    @Option(help: "DiT: ddpm (ancestral, as sample.py) or ddim. Default: the checkpoint's varlab.sample_sampler, else ddpm.")
    var sampler: String?

    @Option(help: "DiT: DDIM eta (0 = deterministic DDIM; ignored by ddpm).")
    var eta: Float = 0

    @Option(
        help:
            "DiT: channels that classifier-free guidance mixes: first3 (the official forward_with_cfg, which guides only eps[:, :3]) or all (every latent channel). Default: the checkpoint's varlab.sample_cfg_channels, else first3."
    )
    var cfgChannels: String?

    @Option(
        help:
            "DiT: attention heads, when the checkpoint's hidden size is not an official S/B/L/XL size and no dit_config.json sits beside it."
    )
    var ditHeads: Int?

    @Option(help: "DiT: entry of a training checkpoint to use (e.g. ema or model; default: the file itself, else ema, else model).")
    var ditKey: String?

    @Option(help: "KL-VAE: GroupNorm groups when the VAE has no config.json (default 32, the SD VAE).")
    var vaeGroups: Int?

    var settings: DiTSettings {
        var s = DiTSettings()
        s.steps = steps; s.sampler = sampler; s.eta = eta; s.cfgChannels = cfgChannels
        s.heads = ditHeads; s.key = ditKey; s.vaeGroups = vaeGroups
        return s
    }

    func validate() throws {
        do { try settings.validate() } catch let e as GenerationError { throw ValidationError(e.description) }
    }
}
