import Autoencoders
import Foundation
import Tensor
import VAR

/// What the sampling loop produced at one step, handed to an optional hook before it is used.
/// `tokens` are the step's draws (B x n for its n positions); `embedding` [B, Cvae, pn, pn] is the scale's code map
/// so far, this step's positions included (the drawn codes, or the Gumbel mixture with more-smooth). A hook that
/// changes `tokens` should update `embedding` at those positions too (see `MultiScaleQuantizer.embed`).
public struct ScaleSample {
    public let scale: Int
    public let patchNum: Int
    /// The positions of the pn x pn map this step drew (the whole map for next-scale models).
    public let positions: Range<Int>
    /// B x positions.count token ids (batch-major, row-major grid order).
    public var tokens: [Int]
    public var embedding: Tensor
}

/// Called after each step is sampled; may replace tokens / the embedding (zero-shot editing puts ground-truth
/// tokens back where the mask says keep).
public typealias ScaleHook = (inout ScaleSample) throws -> Void

/// The token sampler of the VAR family (official `autoregressive_infer_cfg`), for any `TokenModel`: next-scale
/// models fill a scale per step, the raster baseline a token per step, with the same options (top-k, top-p,
/// temperature, more-smooth, guidance against the null class, editing hooks). Per-sample randomness: sample i draws
/// from PhiloxRandom(seed, stream: sampleIndex[i]) step by step, token by token, so an image depends only on
/// (seed, sample index, class, settings) - not on batch size, thread count or shard. A scale's codes enter f_hat
/// when its map is complete: f_hat += φ(bicubic_up(map)).
public struct NextScaleSampler<Model: TokenModel> {
    public let model: Model
    public let vae: VQVAE
    public var cfg: Double
    public var options: TokenSamplingOptions
    /// Opt-in FastVAR cached token pruning of the last scales (`--fast`); nil = exact.
    public var pruning: TokenPruning?

    public init(
        model: Model, vae: VQVAE, cfg: Double = 1.5, options: TokenSamplingOptions = TokenSamplingOptions(), pruning: TokenPruning? = nil
    ) throws {
        guard model.patchNums == vae.patchNums else {
            throw VARError.mismatch("VAR scale schedule \(model.patchNums) differs from the VQ-VAE's \(vae.patchNums)")
        }
        guard cfg >= 0 && cfg.isFinite else { throw SamplingError.badOption("--cfg must be >= 0, got \(cfg)") }
        try options.validate()
        if let pruning { try pruning.validate(scales: model.patchNums.count) }
        self.model = model; self.vae = vae; self.cfg = cfg; self.options = options; self.pruning = pruning
    }

    public struct Result {
        /// Per scale the model completes, B x pn^2 token ids.
        public var tokens: [[Int]]
        /// Final f_hat [B, Cvae, h, w].
        public var fhat: Tensor
        /// Decoded images in [-1, 1] (decoder output clamped), [B, 3, H, W]; nil when decoding was skipped.
        public var images: Tensor?
        /// Guided logits per step [B, n, V], only when requested.
        public var guidedLogits: [Tensor]
    }

    /// Generates one image per label. `sampleIndices` (default 0..<B) select each sample's random stream.
    /// `progress` receives (step, steps) before each step and (steps, steps) before decoding.
    public func sample(
        labels: [Int], sampleIndices: [Int]? = nil, seed: UInt64, decode: Bool = true,
        recordLogits: Bool = false, hook: ScaleHook? = nil,
        progress: ((_ step: Int, _ steps: Int) -> Void)? = nil
    ) throws -> Result {
        let b = labels.count
        let idx = sampleIndices ?? Array(0..<b)
        guard idx.count == b else { throw VARError.badInput("\(idx.count) sample indices for \(b) labels") }
        // label == numClasses is the null class (zero-shot in/out-painting uses it, as the official notebook).
        for l in labels where l < 0 || l > model.numClasses {
            throw VARError.badInput("--class \(l) is outside 0..\(model.numClasses - 1)")
        }
        let q = vae.quantizer
        let pns = model.patchNums, sn = pns.count
        let v = model.vocabSize
        let steps = model.steps
        // cfg = 0 gives guided = 1*cond - 0*uncond = cond exactly, so the unconditional half is skipped.
        let guided = cfg != 0
        let allLabels = guided ? labels + Array(repeating: model.numClasses, count: b) : labels
        var state = try model.beginInference(labels: allLabels, pruning: pruning)
        var x = model.firstInput(state)
        var rngs = idx.map { PhiloxRandom(seed: seed, stream: UInt64($0)) }
        var fhat = Tensor(zeros: [b, q.channels, q.fullSize, q.fullSize])
        var allTokens: [[Int]] = []
        var recorded: [Tensor] = []
        // The map being filled: its tokens and code embedding (a whole scale per step for next-scale models).
        var mapTokens: [Int] = [], mapEmbedding = Tensor(zeros: [0])
        for (k, st) in steps.enumerated() {
            let si = st.scale, pn = pns[si], full = pn * pn, n = st.positions.count
            progress?(k, steps.count)
            if st.positions.lowerBound == 0 { mapTokens = [Int](repeating: 0, count: b * full) }
            let raw = model.step(x, state: &state)  // [B or 2B, n, V]
            try raw.requireFinite(
                "VAR transformer logits at scale \(si + 1)/\(sn) (\(pn)x\(pn))"
                    + (n == full ? "" : ", position \(st.positions.lowerBound + 1)/\(full)"))
            let sampling = Profiler.begin(.sampling)  // guidance, temperature, top-k / top-p masks, draws
            let t = TokenSampling.guidanceWeight(cfg: cfg, scale: si, scales: sn, schedule: options.guidanceSchedule)
            let logits = TokenSampling.processLogits(
                raw, batch: b, positions: 0..<n, guided: guided, t: t, options: options,
                record: recordLogits ? { recorded.append($0) } : nil)
            var tokens = [Int](repeating: 0, count: b * n)
            let ratio = Float(sn > 1 ? Double(si) / Double(sn - 1) : 0)
            var soft: [Float] = options.moreSmooth ? [Float](repeating: 0, count: b * n * v) : []
            logits.withUnsafeBufferPointer { pl in
                for s in 0..<b {
                    for p in 0..<n {
                        let row = pl.baseAddress! + (s * n + p) * v
                        tokens[s * n + p] = TokenSampling.draw(row, count: v, rng: &rngs[s])
                    }
                    if options.moreSmooth {
                        for p in 0..<n {
                            let w = TokenSampling.gumbelSoftmax(pl.baseAddress! + (s * n + p) * v, count: v, ratio: ratio, rng: &rngs[s])
                            for j in 0..<v { soft[(s * n + p) * v + j] = w[j] }
                        }
                    }
                }
            }
            Profiler.end(sampling)
            // Codes of this step's positions [B, C, n]: the drawn ones, or mixture @ codebook (one product per sample,
            // batch-size invariant).
            let stepEmbedding: Tensor
            if options.moreSmooth {
                let m = Tensor(shape: [b, n, v], data: soft).matmul(q.embedding)
                stepEmbedding = m.reshaped([b, n, q.channels]).permuted([0, 2, 1])
            } else {
                stepEmbedding = n == full ? q.embed(tokens, batch: b, pn: pn).reshaped([b, q.channels, n]) : embedRows(tokens, q, b, n)
            }
            mapEmbedding =
                n == full ? stepEmbedding.reshaped([b, q.channels, pn, pn]) : placed(stepEmbedding, into: mapEmbedding, st, q, b, pn)
            var sampled = ScaleSample(scale: si, patchNum: pn, positions: st.positions, tokens: tokens, embedding: mapEmbedding)
            try hook?(&sampled)
            mapEmbedding = sampled.embedding
            for s in 0..<b { for p in 0..<n { mapTokens[s * full + st.positions.lowerBound + p] = sampled.tokens[s * n + p] } }
            if st.positions.upperBound == full {
                // The scale is complete: f_hat += phi(bicubic_up(h)) (no upsampling at the full size).
                allTokens.append(mapTokens)
                var h = mapEmbedding
                if pn != q.fullSize { h = h.interpolated(height: q.fullSize, width: q.fullSize, mode: .bicubic) }
                fhat += q.phi(h, scale: si)
            }
            if k + 1 < steps.count {
                let next = model.input(step: k + 1, previousTokens: sampled.tokens, fhat: fhat, quantizer: q, state: state)
                x = guided ? Tensor.cat0([next, next]) : next
            }
        }
        progress?(steps.count, steps.count)
        try fhat.requireFinite("VQ-VAE f_hat (the quant_resi convolutions' output)")
        let images = decode ? vae.decode(fhat: fhat) : nil
        try images?.requireFinite("VQ-VAE decoder output")
        return Result(tokens: allTokens, fhat: fhat, images: images, guidedLogits: recorded)
    }

    /// Codebook rows of B x n ids as [B, C, n].
    private func embedRows(_ ids: [Int], _ q: MultiScaleQuantizer, _ b: Int, _ n: Int) -> Tensor {
        Embedding(weight: q.embedding)(ids).reshaped([b, n, q.channels]).permuted([0, 2, 1])
    }

    /// The map embedding [B, C, pn, pn] with this step's columns [B, C, n] written at its positions (a new map at
    /// position 0).
    private func placed(_ e: Tensor, into map: Tensor, _ st: TokenStep, _ q: MultiScaleQuantizer, _ b: Int, _ pn: Int) -> Tensor {
        let c = q.channels, full = pn * pn, n = st.positions.count
        var out = st.positions.lowerBound == 0 ? Tensor(zeros: [b, c, pn, pn]) : map
        for s in 0..<b {
            for ch in 0..<c {
                for p in 0..<n {
                    out.data[(s * c + ch) * full + st.positions.lowerBound + p] = e.data[(s * c + ch) * n + p]
                }
            }
        }
        return out
    }
}
