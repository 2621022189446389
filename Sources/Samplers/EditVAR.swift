// VAR zero-shot editing (FoundationVision/VAR demo_zero_shot_edit.ipynb): the editing hook of the next-scale
// sampler. After the sampler has drawn tokens for EVERY position of scale si (kept ones included, so the RNG is
// consumed exactly as in plain sampling), the tokens at positions the per-scale keep mask keeps are replaced by
// the input image's ground-truth tokens. The merged map is what the sampler embeds into f_hat, so the kept
// content reaches later scales through the next-scale input and the KV history. Nothing happens in pixel space.
import Autoencoders
import Foundation
import Tensor
import VAR

/// Substitutes ground-truth tokens scale by scale. One 2-D mask for the whole batch (as the notebook).
public final class VARTokenEditor {
    public let mask: TokenEditMask
    public let patchNums: [Int]
    /// Ground-truth tokens per image, per scale (row-major pn*pn), from the multi-scale VQ encoding of the input.
    public let groundTruth: [[[Int]]]
    /// Per scale: the keep map (true = ground truth).
    public let keep: [[Bool]]
    /// Recorded per scale, per image: the sampler's proposal before substitution, and the merged tokens.
    public private(set) var sampled: [[[Int]]]
    public private(set) var merged: [[[Int]]]

    public init(mask: TokenEditMask, patchNums: [Int], groundTruth: [[[Int]]]) throws {
        guard let last = patchNums.last, last == mask.size else {
            throw EditError.invalid(
                "edit mask is \(mask.size)x\(mask.size) but the last scale is \(patchNums.last ?? 0)x\(patchNums.last ?? 0)")
        }
        for (b, g) in groundTruth.enumerated() {
            guard g.count == patchNums.count, zip(g, patchNums).allSatisfy({ $0.count == $1 * $1 }) else {
                throw EditError.invalid("ground-truth tokens of image \(b) do not match patch_nums \(patchNums)")
            }
        }
        self.mask = mask; self.patchNums = patchNums; self.groundTruth = groundTruth
        keep = patchNums.map { mask.keep(at: $0) }
        sampled = Array(repeating: [], count: patchNums.count)
        merged = Array(repeating: [], count: patchNums.count)
    }

    public var batch: Int { groundTruth.count }

    /// The hook: `tokens[b]` holds image b's tokens at `positions` of scale `si` (the whole map by default); on
    /// return the kept ones hold the ground truth. `sampled` / `merged` record the whole map once it is complete.
    public func substitute(scale si: Int, positions: Range<Int>? = nil, tokens: inout [[Int]]) throws {
        guard si >= 0, si < patchNums.count else { throw EditError.invalid("scale \(si) out of range") }
        let full = patchNums[si] * patchNums[si]
        let range = positions ?? 0..<full
        guard range.lowerBound >= 0, range.upperBound <= full, tokens.count == batch, tokens.allSatisfy({ $0.count == range.count }) else {
            throw EditError.invalid("scale \(si): expected \(batch) token runs of \(range.count) tokens at positions \(range) of \(full)")
        }
        if range.lowerBound == 0 {
            sampled[si] = Array(repeating: Array(repeating: 0, count: full), count: batch)
            merged[si] = sampled[si]
        }
        for b in 0..<batch {
            for (j, p) in range.enumerated() {
                sampled[si][b][p] = tokens[b][j]
                if keep[si][p] { tokens[b][j] = groundTruth[b][si][p] }
                merged[si][b][p] = tokens[b][j]
            }
        }
    }

    /// Same, on a flat batch-major array (B * positions.count).
    public func substitute(scale si: Int, positions: Range<Int>? = nil, flat: inout [Int]) throws {
        let n = positions?.count ?? patchNums[si] * patchNums[si]
        guard flat.count == batch * n else { throw EditError.invalid("scale \(si): expected \(batch * n) tokens, got \(flat.count)") }
        var t = (0..<batch).map { Array(flat[($0 * n)..<(($0 + 1) * n)]) }
        try substitute(scale: si, positions: positions, tokens: &t)
        flat = t.flatMap { $0 }
    }
}

/// VAR zero-shot editing = the next-scale sampler with `VARTokenEditor` as its per-scale hook.
/// `labels`: the requested class per image for class-conditional editing, or `numClasses` (the null class) for
/// plain in/out-painting, as the notebook does (label 1000 for the released models).
public struct VARZeroShotEditor<Model: TokenModel> {
    public let sampler: NextScaleSampler<Model>

    public init(sampler: NextScaleSampler<Model>) { self.sampler = sampler }

    public struct Result {
        public var sample: NextScaleSampler<Model>.Result
        public var editor: VARTokenEditor
    }

    /// `images`: [B, 3, H, W] in [-1, 1] at the VQ-VAE resolution. `mask`: the final-scale keep mask.
    public func edit(
        images: Tensor, mask: TokenEditMask, labels: [Int], seed: UInt64, sampleIndices: [Int]? = nil,
        decode: Bool = true, recordLogits: Bool = false,
        progress: ((_ scale: Int, _ scales: Int) -> Void)? = nil
    ) throws -> Result {
        let vae = sampler.vae
        let pns = vae.patchNums
        let b = images.shape.first ?? 0
        guard b == labels.count else { throw EditError.invalid("\(b) images but \(labels.count) labels") }
        // Ground truth: the image's tokens in the model's terms (the multi-scale VQ encoding; the raster model's
        // finest map is the single-step one), flat B x pn^2 per scale.
        let flat = try sampler.model.groundTruthTokens(latent: vae.encodeLatent(images), quantizer: vae.quantizer)
        let gt: [[[Int]]] = (0..<b).map { i in
            pns.indices.map { si in
                let n = pns[si] * pns[si]; return Array(flat[si][(i * n)..<((i + 1) * n)])
            }
        }
        let editor = try VARTokenEditor(mask: mask, patchNums: pns, groundTruth: gt)
        let q = vae.quantizer
        let hook: ScaleHook = { step in
            let si = step.scale, full = step.patchNum * step.patchNum, n = step.positions.count
            try editor.substitute(scale: si, positions: step.positions, flat: &step.tokens)
            // Kept positions get the hard ground-truth embedding (the codebook row of the gt token); the generated
            // ones keep what the sampler produced (a Gumbel mixture with more-smooth).
            let keep = editor.keep[si]
            guard step.positions.contains(where: { keep[$0] }) else { return }
            let c = step.embedding.shape[1]
            for i in 0..<b {
                for (j, p) in step.positions.enumerated() where keep[p] {
                    let id = step.tokens[i * n + j]
                    for ch in 0..<c { step.embedding.data[(i * c + ch) * full + p] = q.embedding.data[id * c + ch] }
                }
            }
        }
        let r = try sampler.sample(
            labels: labels, sampleIndices: sampleIndices, seed: seed, decode: decode,
            recordLogits: recordLogits, hook: hook, progress: progress)
        return Result(sample: r, editor: editor)
    }
}
