import Autoencoders
import Foundation
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
    /// VAR's data pipeline resizes with LANCZOS before the centre crop.
    let preprocessFilter = ResampleFilter.lanczos

    init(model: VARModel, vae: VQVAE) { self.model = model; self.vae = vae }

    static func load(_ o: Edit) throws -> VAREditBackend {
        guard let ck = o.checkpoint else { throw EditFieldError(field: "checkpoint", message: "missing: the VAR checkpoint (e.g. var_d16.pth)") }
        guard let vp = o.vae else { throw EditFieldError(field: "vae", message: "missing: the VQ-VAE checkpoint (e.g. vae_ch160v4096z32.pth)") }
        let pns = try o.patchNums.map { try editIntList($0, field: "patch-nums") }
        let model: VARModel
        do { model = try VARModel(archive: try CheckpointLoader.open(path: ck, keyPath: nil), patchNums: pns) } catch {
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
        do { vae = try VQVAE(archive: va, patchNums: model.config.patchNums) } catch { throw EditFieldError(field: "vae", message: "\(error)") }
        return VAREditBackend(model: model, vae: vae)
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
        if mask.keptCount == p * p { throw EditFieldError(field: "mask", message: "every token is kept at the \(p)x\(p) token grid: nothing to regenerate") }
        let label = request.classLabel ?? numClasses
        let options = TokenSamplingOptions(topK: o.topK, topP: o.topP)
        let sampler: NextScaleSampler
        do { sampler = try NextScaleSampler(model: model, vae: vae, cfg: o.cfg ?? 1.5, options: options) } catch {
            let text = "\(error)"
            throw EditFieldError(field: text.contains("top-p") ? "top-p" : text.contains("top-k") ? "top-k" : "cfg", message: text)
        }
        let sn = vae.patchNums.count
        let r = try withoutActuallyEscaping(progress) { report in
            try VARZeroShotEditor(sampler: sampler).edit(images: request.image.signedCHW(), mask: mask, labels: [label], seed: o.seed) { si, n in
                if si < n { report("scale \(si + 1)/\(n)") } else { report("decode") }
            }
        }
        let img = Image8(signedCHW: try unwrapImages(r.sample.images))
        // What was regenerated at the last scale, as pixels (token cells of S/P pixels).
        let s = imageSize, cell = s / p
        var regen = [Bool](repeating: false, count: s * s)
        for y in 0..<s { for x in 0..<s { regen[y * s + x] = mask.values[(y / cell) * p + min(x / cell, p - 1)] < 0.5 } }
        let kept = (0..<sn).map { si in mask.keep(at: vae.patchNums[si]).filter { $0 }.count }
        return EditResult(image: img, regenerated: try PixelMask(width: s, height: s, regenerate: regen),
                          details: "var: \(label == numClasses ? "null class" : "class \(label)"), kept tokens per scale \(kept.map(String.init).joined(separator: "/")) of \(vae.patchNums.map { String($0 * $0) }.joined(separator: "/"))")
    }

    private func unwrapImages(_ t: Tensor?) throws -> Tensor {
        guard let t else { throw EditError.invalid("the sampler returned no image") }
        return t
    }
}

/// DiT RePaint / SDEdit (filled in once the KL-VAE lands).
final class DiTEditBackend: EditBackend {
    let imageSize = 0, numClasses = 0
    let preprocessFilter = ResampleFilter.bicubic
    static func load(_ o: Edit) throws -> DiTEditBackend { throw EditFieldError(field: "model", message: "DiT editing is not available in this build yet") }
    func edit(_ request: EditRequest, progress: (String) -> Void) throws -> EditResult { throw EditError.invalid("unavailable") }
}
