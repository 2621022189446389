import Autoencoders
import Foundation
import Tensor
import VAR

/// What the sampling loop produced at one scale, handed to an optional hook before it is used.
/// `embedding` [B, Cvae, pn, pn] is the code map fed to f_hat (the drawn codes, or the Gumbel mixture with
/// more-smooth); a hook that changes `tokens` should update `embedding` too (see `MultiScaleQuantizer.embed`).
public struct ScaleSample {
    public let scale: Int
    public let patchNum: Int
    /// B x pn^2 token ids (batch-major, row-major grid).
    public var tokens: [Int]
    public var embedding: Tensor
}

/// Called after each scale is sampled; may replace tokens / the embedding (zero-shot editing puts ground-truth
/// tokens back where the mask says keep).
public typealias ScaleHook = (inout ScaleSample) throws -> Void

/// VAR's next-scale sampling loop (official `autoregressive_infer_cfg`), with per-sample randomness:
/// sample i draws from PhiloxRandom(seed, stream: sampleIndex[i]) scale by scale, token by token, so an image
/// depends only on (seed, sample index, class, settings) - not on batch size, thread count or shard.
public struct NextScaleSampler {
    public let model: VARModel
    public let vae: VQVAE
    public var cfg: Double
    public var options: TokenSamplingOptions

    public init(model: VARModel, vae: VQVAE, cfg: Double = 1.5, options: TokenSamplingOptions = TokenSamplingOptions()) throws {
        guard model.config.patchNums == vae.patchNums else {
            throw VARError.mismatch("VAR scale schedule \(model.config.patchNums) differs from the VQ-VAE's \(vae.patchNums)")
        }
        guard cfg >= 0 && cfg.isFinite else { throw SamplingError.badOption("--cfg must be >= 0, got \(cfg)") }
        try options.validate()
        self.model = model; self.vae = vae; self.cfg = cfg; self.options = options
    }

    public struct Result {
        /// Per scale, B x pn^2 token ids.
        public var tokens: [[Int]]
        /// Final f_hat [B, Cvae, h, w].
        public var fhat: Tensor
        /// Decoded images in [-1, 1] (decoder output clamped), [B, 3, H, W]; nil when decoding was skipped.
        public var images: Tensor?
        /// Guided logits per scale [B, pn^2, V], only when requested.
        public var guidedLogits: [Tensor]
    }

    /// Generates one image per label. `sampleIndices` (default 0..<B) select each sample's random stream.
    public func sample(labels: [Int], sampleIndices: [Int]? = nil, seed: UInt64, decode: Bool = true,
                       recordLogits: Bool = false, hook: ScaleHook? = nil,
                       progress: ((_ scale: Int, _ scales: Int) -> Void)? = nil) throws -> Result {
        let b = labels.count
        let idx = sampleIndices ?? Array(0..<b)
        guard idx.count == b else { throw VARError.badInput("\(idx.count) sample indices for \(b) labels") }
        // label == numClasses is the null class (zero-shot in/out-painting uses it, as the official notebook).
        for l in labels where l < 0 || l > model.config.numClasses {
            throw VARError.badInput("--class \(l) is outside 0..\(model.config.numClasses - 1)")
        }
        let q = vae.quantizer
        let pns = model.config.patchNums, sn = pns.count
        let v = model.config.vocabSize
        // cfg = 0 gives guided = 1*cond - 0*uncond = cond exactly, so the unconditional half is skipped.
        let guided = cfg != 0
        let allLabels = guided ? labels + Array(repeating: model.config.numClasses, count: b) : labels
        var state = try model.beginInference(labels: allLabels)
        var x = model.firstInput(state.conditioning)
        var rngs = idx.map { PhiloxRandom(seed: seed, stream: UInt64($0)) }
        var fhat = Tensor(zeros: [b, q.channels, q.fullSize, q.fullSize])
        var allTokens: [[Int]] = []
        var recorded: [Tensor] = []
        for si in 0..<sn {
            let pn = pns[si], l = pn * pn
            progress?(si, sn)
            let raw = model.step(x, state: &state)   // [B or 2B, l, V]
            try raw.requireFinite("VAR transformer logits at scale \(si + 1)/\(sn) (\(pn)x\(pn))")
            let sampling = Profiler.begin(.sampling)   // guidance, temperature, top-k / top-p masks, draws
            let t = TokenSampling.guidanceWeight(cfg: cfg, scale: si, scales: sn)
            let logits = TokenSampling.processLogits(raw, batch: b, positions: 0..<l, guided: guided, t: t, options: options,
                                                     record: recordLogits ? { recorded.append($0) } : nil)
            var tokens = [Int](repeating: 0, count: b * l)
            var embedding: Tensor
            let ratio = Float(sn > 1 ? Double(si) / Double(sn - 1) : 0)
            var soft: [Float] = options.moreSmooth ? [Float](repeating: 0, count: b * l * v) : []
            logits.withUnsafeBufferPointer { pl in
                for s in 0..<b {
                    for p in 0..<l {
                        let row = pl.baseAddress! + (s * l + p) * v
                        tokens[s * l + p] = TokenSampling.draw(row, count: v, rng: &rngs[s])
                    }
                    if options.moreSmooth {
                        for p in 0..<l {
                            let w = TokenSampling.gumbelSoftmax(pl.baseAddress! + (s * l + p) * v, count: v, ratio: ratio, rng: &rngs[s])
                            for j in 0..<v { soft[(s * l + p) * v + j] = w[j] }
                        }
                    }
                }
            }
            Profiler.end(sampling)
            if options.moreSmooth {
                // mixture @ codebook -> [B, l, C] -> [B, C, pn, pn]; one product per sample (batch-size invariant)
                let m = Tensor(shape: [b, l, v], data: soft).matmul(q.embedding)
                embedding = m.reshaped([b, l, q.channels]).permuted([0, 2, 1]).reshaped([b, q.channels, pn, pn])
            } else {
                embedding = q.embed(tokens, batch: b, pn: pn)
            }
            var step = ScaleSample(scale: si, patchNum: pn, tokens: tokens, embedding: embedding)
            try hook?(&step)
            allTokens.append(step.tokens)
            // f_hat += phi(bicubic_up(h)) (no upsampling at the full size); next input = area_down(f_hat).
            var h = step.embedding
            if pn != q.fullSize { h = h.interpolated(height: q.fullSize, width: q.fullSize, mode: .bicubic) }
            fhat += q.phi(h, scale: si)
            if si != sn - 1 {
                let feats = q.downsampledTokens(fhat, pn: pns[si + 1])
                let next = model.scaleInput(feats, scale: si + 1)
                x = guided ? Tensor.cat0([next, next]) : next
            }
        }
        progress?(sn, sn)
        try fhat.requireFinite("VQ-VAE f_hat (the quant_resi convolutions' output)")
        let images = decode ? vae.decode(fhat: fhat) : nil
        try images?.requireFinite("VQ-VAE decoder output")
        return Result(tokens: allTokens, fhat: fhat, images: images, guidedLogits: recorded)
    }
}
