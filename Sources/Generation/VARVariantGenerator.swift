import Autoencoders
import Foundation
import ImageIO
import ModelIO
import Samplers
import Tensor
import Training

/// Sampling for the two ablation variants trained by `varlab train var --variant ar|plain-ln` (detected from the
/// checkpoint's `varlab.variant` metadata by `varlab sample --model var`). They run on the training code's forward
/// (no KV cache: every step recomputes the prefix, exact because the masks are (block-)causal), with the same token
/// sampling as VAR (top-k / top-p masks, per-sample Philox stream = sample index, CFG against the null class):
/// - plain-ln: next-scale like VAR, guidance ramp t = cfg·si/(SN-1) over scales as VAR;
/// - ar: 64 tokens in raster order, constant guidance t = cfg (VQGAN / LlamaGen convention), decoded from the
///   finest-only tokens (f_hat = φ_last(embed(ids))).
public struct VARVariantGenerator: SampleGenerator {
    public let model: TrainableVAR
    public let vae: VQVAE
    public let cfg: Double
    public let options: TokenSamplingOptions
    public var family: String { VARFamily.name }
    public var imageSize: Int { vae.imageSize }
    public var numClasses: Int { model.config.numClasses }

    /// nil when the checkpoint is not a varlab ablation variant (then the regular VAR path loads it).
    /// `log` receives one line saying which variant was found.
    public static func loadIfVariant(checkpoint: String, vae vaePath: String, cfg: Double, options: TokenSamplingOptions,
                                     log: (String) -> Void = { _ in }) throws -> VARVariantGenerator? {
        guard (try? CheckpointLoader.detectFormat(path: checkpoint)) == .safetensors,
              let meta = try? SafetensorsFile(path: checkpoint).metadata,
              let v = meta[.variant], v != VARTrainConfig.Variant.next.rawValue else { return nil }
        let ck = try TrainCheckpoint.read(path: checkpoint, model: TrainableVAR.modelName)
        let config = try JSONDecoder().decode(VARTrainConfig.self, from: Data(ck.configJSON.utf8))
        let model = try TrainableVAR(config: config, seed: 0)
        try ck.loadParameters(model.parameters)
        let vae = try VQVAE(archive: try CheckpointLoader.open(path: vaePath), patchNums: config.patchNums)
        guard vae.quantizer.vocabSize == config.vocabSize, vae.quantizer.channels == config.cvae else {
            throw GenerationError("--vae \(vaePath) (vocab \(vae.quantizer.vocabSize), Cvae \(vae.quantizer.channels)) does not match \(checkpoint) (vocab \(config.vocabSize), Cvae \(config.cvae))")
        }
        try options.validate()
        log("\(checkpoint): varlab '\(v)' ablation variant (sampled by the training code's forward, no KV cache)")
        return VARVariantGenerator(model: model, vae: vae, cfg: cfg, options: options)
    }

    public func generate(_ requests: [SampleRequest], seed: UInt64, progress: (SampleProgress) -> Void) throws -> [Image8] {
        let b = requests.count, c = model.config, v = c.vocabSize, q = vae.quantizer
        let guided = cfg != 0
        let labels = requests.map(\.classLabel)
        let all = guided ? labels + Array(repeating: c.numClasses, count: b) : labels
        var rngs = requests.map { PhiloxRandom(seed: seed, stream: UInt64($0.index)) }

        /// Guided, masked logits rows of positions [from, to) -> drawn tokens [B, to - from].
        func draw(_ raw: Tensor, from: Int, to: Int, t: Double) -> [Int] {
            let n = to - from
            let rows = TokenSampling.processLogits(raw, batch: b, positions: from..<to, guided: guided, t: t, options: options)
            var out = [Int](repeating: 0, count: b * n)
            rows.withUnsafeBufferPointer { pl in
                for s in 0..<b { for p in 0..<n { out[s * n + p] = TokenSampling.draw(pl.baseAddress! + (s * n + p) * v, count: v, rng: &rngs[s]) } }
            }
            return out
        }

        let fhat: Tensor
        if c.variant == .ar {
            let L = c.totalTokens
            var ids = [Int](repeating: 0, count: b * L)
            for t in 0..<L {
                progress(SampleProgress(stage: t, stages: L, label: "token \(t + 1)/\(L)"))
                let prev = (0..<b).flatMap { s in ids[(s * L)..<(s * L + t)] }
                let raw = try model.forward(labels: all, input: .tokens(guided ? prev + prev : prev), length: t + 1)
                try raw.requireFinite("VAR (ar variant) logits at token \(t + 1)/\(L)")
                let tok = draw(raw, from: t, to: t + 1, t: cfg)
                for s in 0..<b { ids[s * L + t] = tok[s] }
            }
            fhat = VARTokenSet.finestFhat(ids, batch: b, quantizer: q)
        } else {
            let pns = c.patchNums, sn = pns.count
            var f = Tensor(zeros: [b, q.channels, q.fullSize, q.fullSize])
            var feats: [Tensor] = []   // teacher-forcing inputs of scales 1..si, [B, pn^2, Cvae] each
            var begin = 0
            for si in 0..<sn {
                progress(SampleProgress(stage: si, stages: sn, label: "scale \(si + 1)/\(sn)"))
                let l = pns[si] * pns[si]
                let input = feats.isEmpty ? Tensor(zeros: [b, 1, c.cvae]) : Tensor.cat(feats, dim: 1)
                let raw = try model.forward(labels: all, input: .features(guided ? Tensor.cat0([input, input]) : input), length: begin + l)
                try raw.requireFinite("VAR (\(c.variant.rawValue) variant) logits at scale \(si + 1)/\(sn)")
                let tok = draw(raw, from: begin, to: begin + l, t: TokenSampling.guidanceWeight(cfg: cfg, scale: si, scales: sn))
                f += q.contribution(tok, batch: b, scale: si)
                if si != sn - 1 { feats.append(q.downsampledTokens(f, pn: pns[si + 1])) }
                begin += l
            }
            fhat = f
        }
        progress(SampleProgress(stage: 1, stages: 1, label: "decode"))
        try fhat.requireFinite("VQ-VAE f_hat (the quant_resi convolutions' output)")
        let img = vae.decode(fhat: fhat)
        try img.requireFinite("VQ-VAE decoder output")
        return (0..<b).map { Image8(signedCHW: img.slice0($0, $0 + 1)) }
    }
}
