import Autoencoders
import DiT
import Foundation
import Generation
import ImageIO
import ModelIO
import Samplers
import Tensor
import VAR

/// Parses a comma-separated list of positive integers for the field `field`.
func editIntList(_ text: String, field: String) throws -> [Int] {
    let parts = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    let v = parts.compactMap { Int($0) }
    guard !parts.isEmpty, v.count == parts.count, v.allSatisfy({ $0 > 0 }) else {
        throw EditFieldError(field: field, message: "expected comma-separated positive integers, got '\(text)'")
    }
    return v
}

/// VAR zero-shot editing (official demo_zero_shot_edit.ipynb): ground-truth tokens wherever the per-scale keep
/// mask keeps, sampled tokens elsewhere; the null class unless --class is given.
final class VAREditBackend: EditBackend {
    let model: VARModel
    let vae: VQVAE
    var imageSize: Int { vae.imageSize }
    var numClasses: Int { model.config.numClasses }
    /// VAR's data pipeline: LANCZOS resize + torchvision CenterCrop.
    let pipeline = CenterCropGeometry.Pipeline.var
    /// The checkpoint's recommended sampling settings (`varlab.sample_*`), used for flags left unset.
    let defaults: VARSampleDefaults?

    init(model: VARModel, vae: VQVAE, defaults: VARSampleDefaults? = nil) { self.model = model; self.vae = vae; self.defaults = defaults }

    static func load(_ o: EditOptions) throws -> VAREditBackend {
        guard let ck = o.checkpoint else {
            throw EditFieldError(field: "checkpoint", message: "missing: the VAR checkpoint (e.g. var_d16.pth)")
        }
        guard let vp = o.vae else {
            throw EditFieldError(field: "vae", message: "missing: the VQ-VAE checkpoint (e.g. vae_ch160v4096z32.pth)")
        }
        let pns = try o.patchNums.map { try editIntList($0, field: "patch-nums") }
        let model: VARModel
        do { model = try VARModel(archive: try CheckpointLoader.open(path: ck, keyPath: o.key), patchNums: pns) } catch {
            throw EditFieldError(field: "checkpoint", message: "\(error)")
        }
        let va: TensorArchive, cfg: VQVAEConfig
        do { va = try CheckpointLoader.open(path: vp, keyPath: nil); cfg = try VQVAEConfig.infer(from: va) } catch {
            throw EditFieldError(field: "vae", message: "not a VAR VQ-VAE: \(error)")
        }
        do { try model.checkCompatible(vocabSize: cfg.vocabSize, cvae: cfg.zChannels, varPath: ck, vaePath: vp) } catch {
            throw EditFieldError(field: "vae", message: "\(error)")
        }
        let vae: VQVAE
        do { vae = try VQVAE(archive: va, patchNums: model.config.patchNums) } catch {
            throw EditFieldError(field: "vae", message: "\(error)")
        }
        return VAREditBackend(model: model, vae: vae, defaults: VARSampleDefaults(path: ck))
    }

    func edit(_ request: EditRequest, progress: (String) -> Void) throws -> EditResult {
        let o = request.options
        let p = vae.patchNums.last!
        let mask: TokenEditMask
        if let b = request.region.tokenBox {
            mask = try TokenEditMask.box(gridSize: p, y0: b.y0, x0: b.x0, y1: b.y1, x1: b.x1, inpainting: b.inpainting)
        } else {
            mask = try TokenEditMask(size: p, keep: try request.region.pixels.cellsRegenerated(p).map { !$0 })
        }
        if mask.keptCount == p * p {
            throw EditFieldError(field: "mask", message: "every token is kept at the \(p)x\(p) token grid: nothing to regenerate")
        }
        let label = request.classLabel ?? numClasses
        let options = TokenSamplingOptions(
            topK: o.topK ?? defaults?.topK ?? 900, topP: o.topP ?? defaults?.topP ?? 0.96,
            moreSmooth: o.moreSmooth)
        let sampler: NextScaleSampler<VARModel>
        do { sampler = try NextScaleSampler(model: model, vae: vae, cfg: o.cfg ?? defaults?.cfg ?? 1.5, options: options) } catch {
            let text = "\(error)"
            throw EditFieldError(field: text.contains("top-p") ? "top-p" : text.contains("top-k") ? "top-k" : "cfg", message: text)
        }
        let sn = vae.patchNums.count
        let r = try withoutActuallyEscaping(progress) { report in
            try VARZeroShotEditor(sampler: sampler).edit(images: request.image.signedCHW(), mask: mask, labels: [label], seed: o.seed) {
                si, n in
                if si < n { report("\(n == self.vae.patchNums.count ? "scale" : "token") \(si + 1)/\(n)") } else { report("decode") }
            }
        }
        let img = Image8(signedCHW: try unwrapImages(r.sample.images))
        // What was regenerated at the last scale, as pixels (token cells of S/P pixels).
        let s = imageSize, cell = s / p
        var regen = [Bool](repeating: false, count: s * s)
        for y in 0..<s { for x in 0..<s { regen[y * s + x] = mask.values[(y / cell) * p + min(x / cell, p - 1)] < 0.5 } }
        let kept = (0..<sn).map { si in mask.keep(at: vae.patchNums[si]).filter { $0 }.count }
        return EditResult(
            image: img, regenerated: try PixelMask(width: s, height: s, regenerate: regen),
            details:
                "var: \(label == numClasses ? "null class" : "class \(label)"), kept tokens per scale \(kept.map(String.init).joined(separator: "/")) of \(vae.patchNums.map { String($0 * $0) }.joined(separator: "/"))"
        )
    }

    private func unwrapImages(_ t: Tensor?) throws -> Tensor {
        guard let t else { throw EditError.invalid("the sampler returned no image") }
        return t
    }
}

/// DiT editing in the denoiser's latent space (SD KL-VAE, or the tiny VQ-VAE's scaled f-hat): RePaint-style
/// in-painting (optionally with the RePaint jump schedule) or SDEdit with --strength, optionally restricted to a mask.
final class DiTEditBackend: EditBackend {
    let model: DiTModel
    let codec: LatentCodec
    var imageSize: Int { model.config.inputSize * codec.downsampleFactor }
    var numClasses: Int { model.config.numClasses }
    /// ADM's center_crop_arr, which DiT uses.
    let pipeline = CenterCropGeometry.Pipeline.adm

    /// Guidance channels: the official first3, or what the checkpoint records (all, for the tiny f-hat DiT).
    let channels: CFGChannels

    /// Guidance scale for an unset --cfg: the checkpoint's `varlab.sample_cfg`, else 4.
    let defaultCFG: Float
    /// RePaint resampling for an unset --resample: the checkpoint's `varlab.edit_resample`, else off.
    let defaultResample: Bool

    init(model: DiTModel, codec: LatentCodec, channels: CFGChannels = .first3, defaultCFG: Float = 4, defaultResample: Bool = false) {
        self.model = model; self.codec = codec; self.channels = channels; self.defaultCFG = defaultCFG
        self.defaultResample = defaultResample
    }

    static func load(_ o: EditOptions) throws -> DiTEditBackend {
        guard let ck = o.checkpoint else {
            throw EditFieldError(field: "checkpoint", message: "missing: the DiT checkpoint (e.g. DiT-XL-2-256x256.pt)")
        }
        guard let vp = o.vae else {
            throw EditFieldError(field: "vae", message: "missing: the KL-VAE (a diffusers AutoencoderKL folder or file) or the tiny VQ-VAE")
        }
        let info = DiTCheckpointInfo(path: ck)
        let model: DiTModel
        do { model = try DiTModel.load(path: ck, numHeads: info.heads) } catch {
            throw EditFieldError(field: "checkpoint", message: "\(error)")
        }
        let codec: LatentCodec
        if let g = o.vaeGroups, g < 1 { throw EditFieldError(field: "vae-groups", message: "must be positive, got \(g)") }
        do { codec = try info.codec(vae: vp, groups: o.vaeGroups, checkpoint: ck) } catch {
            throw EditFieldError(field: "vae", message: "\(error)")
        }
        guard codec.latentChannels == model.config.inChannels else {
            throw EditFieldError(
                field: "vae", message: "the VAE has \(codec.latentChannels) latent channels, the DiT expects \(model.config.inChannels)")
        }
        if let kl = codec as? KLLatentCodec, kl.vae.encoder == nil {
            throw EditFieldError(field: "vae", message: "this KL-VAE has no encoder weights (editing must encode the input)")
        }
        let channels: CFGChannels
        if let asked = o.cfgChannels {
            guard let c = CFGChannels(rawValue: asked) else {
                throw EditFieldError(
                    field: "cfg-channels",
                    message: "must be \(CFGChannels.allCases.map(\.rawValue).joined(separator: " or ")), got '\(asked)'")
            }
            channels = c
        } else {
            channels = info.sampleDefaults.cfgChannels.flatMap { CFGChannels(rawValue: $0) } ?? .first3
        }
        return DiTEditBackend(
            model: model, codec: codec, channels: channels, defaultCFG: info.sampleDefaults.cfg ?? 4,
            defaultResample: info.editResample ?? false)
    }

    func edit(_ request: EditRequest, progress: (String) -> Void) throws -> EditResult {
        let o = request.options
        let c = model.config
        guard o.steps >= 1 && o.steps <= 1000 else { throw EditFieldError(field: "steps", message: "must be in 1...1000, got \(o.steps)") }
        let method: DiffusionSampler.Method
        do { method = try DiffusionSampler.Method.parse(o.sampler, eta: o.eta) } catch {
            throw EditFieldError(field: "\(error)".contains("--eta") ? "eta" : "sampler", message: "\(error)")
        }
        let diffusion: GaussianDiffusion
        do { diffusion = try GaussianDiffusion(respacing: String(o.steps), learnSigma: c.learnSigma) } catch {
            throw EditFieldError(field: "steps", message: "\(error)")
        }
        // Known latent, scaled as the denoiser was trained (KL-VAE: posterior MEAN x 0.18215; VQ-VAE: f-hat x scale).
        let known = try codec.encode(request.image.signedCHW())
        guard known.shape == [1, c.inChannels, c.inputSize, c.inputSize] else {
            throw EditFieldError(
                field: "vae", message: "latent \(known.shape) does not fit the DiT input \([1, c.inChannels, c.inputSize, c.inputSize])")
        }
        // The mask at latent resolution (a latent cell is regenerated when at least half of its pixels are).
        let regen = try request.region.pixels.cellsRegenerated(c.inputSize)
        let keep = regen.map { !$0 }
        let mode: DiffusionEditor.Mode = o.strength.map { .sdedit(strength: $0) } ?? .inpaint
        // Resampling is an in-painting schedule: a checkpoint's recommendation does not apply to SDEdit.
        let resample = o.resample ?? (mode == .inpaint && defaultResample)
        let editor = DiffusionEditor(
            sampler: DiffusionSampler(diffusion: diffusion, method: method), mode: mode,
            resample: resample ? (jumpLength: o.jumpLength, jumpNSample: o.jumpNSample) : nil)
        let label = request.classLabel ?? c.nullClass
        let cfg = o.cfg.map(Float.init) ?? defaultCFG
        guard cfg >= 0 && cfg.isFinite else { throw EditFieldError(field: "cfg", message: "must be >= 0") }
        // Guidance needs a real class; the null class (plain in-painting) runs the model unguided.
        let denoiser =
            label != c.nullClass && cfg != 1
            ? DiTDenoisers.guided(model, labels: [label], scale: cfg, channels: channels) : DiTDenoisers.plain(model, labels: [label])
        var noise = PerSampleNoise(seed: o.seed, sampleIndices: [0])
        // The editing noise (known-region noising, jumps) has its own streams so the sampler's draws are unchanged.
        var editNoise = PerSampleNoise(seed: o.seed ^ 0x5EED_0000_ED17_0000, sampleIndices: [0])
        let x0 = try withoutActuallyEscaping(progress) { report in
            try editor.run(known: known, keep: keep, noise: &noise, editNoise: &editNoise, denoiser: denoiser) { k, total in
                if k == total || k % max(1, total / 10) == 0 { report("step \(k)/\(total)") }
            }
        }
        let img = try codec.decode(x0)
        let s = imageSize, cell = s / c.inputSize
        var px = [Bool](repeating: false, count: s * s)
        for y in 0..<s { for x in 0..<s { px[y * s + x] = regen[(y / cell) * c.inputSize + x / cell] } }
        let what: String
        switch mode {
        case .inpaint:
            // Resampling that cannot happen (a jump longer than the schedule, one repeat) is said, not claimed.
            let jumps = RePaintSchedule.denoisingSteps(editor.schedule()) > o.steps
            var note = ""
            if resample && jumps {
                note = " with resampling (jump \(o.jumpLength) x \(o.jumpNSample))"
            } else if resample {
                note =
                    o.jumpNSample < 2
                    ? " (no resampling: --jump-n-sample 1 repeats nothing)"
                    : " (no resampling: a jump of \(o.jumpLength) does not fit in \(o.steps) steps)"
            }
            what = "RePaint in-painting" + note
        case let .sdedit(st): what = "SDEdit strength \(st)" + (keep.contains(true) ? " (masked)" : "")
        }
        return EditResult(
            image: Image8(signedCHW: img), regenerated: try PixelMask(width: s, height: s, regenerate: px),
            details:
                "dit: \(what), \(label == c.nullClass ? "null class" : "class \(label)"), \(regen.filter { $0 }.count)/\(regen.count) latent cells regenerated, \(RePaintSchedule.denoisingSteps(editor.schedule())) model steps"
        )
    }
}
