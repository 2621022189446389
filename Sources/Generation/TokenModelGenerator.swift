import Autoencoders
import Foundation
import ImageIO
import ModelIO
import Samplers
import Tensor
import VAR

/// Any `TokenModel` + its VQ-VAE behind the `SampleGenerator` contract, through the one token sampler: VAR and its
/// ablation variants (`--variant ar|plain-ln` checkpoints) today.
/// uint8 conversion: the decoder output is clamped to [-1, 1] (as the official fhat_to_img) and mapped with
/// `PixelConversion.fromSigned` = clamp(127.5 x + 128, 0, 255) truncated, i.e. round half up. (The official demo
/// truncates (x+1)/2*255 instead; rounding is unbiased and matches the ADM/DiT sample_ddp convention.)
public struct TokenModelGenerator<Model: TokenModel>: SampleGenerator {
    public let sampler: NextScaleSampler<Model>
    public let family: String
    public var imageSize: Int { sampler.vae.imageSize }
    public var numClasses: Int { sampler.model.numClasses }

    public init(sampler: NextScaleSampler<Model>, family: String) { self.sampler = sampler; self.family = family }

    /// What one sampler step produces.
    var unit: String { sampler.model.steps.count == sampler.vae.patchNums.count ? "scale" : "token" }

    public func generate(_ requests: [SampleRequest], seed: UInt64, progress: (SampleProgress) -> Void) throws -> [Image8] {
        let r = try withoutActuallyEscaping(progress) { report in
            try sampler.sample(
                labels: requests.map(\.classLabel), sampleIndices: requests.map(\.index), seed: seed,
                progress: { k, n in
                    report(SampleProgress(stage: k, stages: n, label: k < n ? "\(unit) \(k + 1)/\(n)" : "decode"))
                })
        }
        let img = r.images!
        return (0..<requests.count).map { Image8(signedCHW: img.slice0($0, $0 + 1)) }
    }
}

extension TokenModelGenerator where Model == VARModel {
    /// Loads and cross-checks the two files. `patchNums` overrides the schedule inferred from the VAR weights.
    public static func load(
        checkpoint: String, vae vaePath: String, key: String?, patchNums: [Int]?, cfg: Double,
        options: TokenSamplingOptions, pruning: TokenPruning? = nil, precision: MatmulPrecision = .float32,
        log: (String) -> Void = { _ in }
    ) throws -> TokenModelGenerator<VARModel> {
        let archive = try CheckpointLoader.open(path: checkpoint, keyPath: key)
        let model = try VARModel(archive: archive, patchNums: patchNums)
        model.setMatmulPrecision(precision)
        if model.config.variant != .next { log("\(checkpoint): varlab '\(model.config.variant.rawValue)' ablation variant") }
        let vaeArchive = try CheckpointLoader.open(path: vaePath)
        let vaeConfig: VQVAEConfig
        do { vaeConfig = try VQVAEConfig.infer(from: vaeArchive) } catch {
            throw VARError.mismatch("--vae \(vaePath) is not a VAR VQ-VAE: \(error)")
        }
        try model.checkCompatible(vocabSize: vaeConfig.vocabSize, cvae: vaeConfig.zChannels, varPath: checkpoint, vaePath: vaePath)
        let vae = try VQVAE(archive: vaeArchive, patchNums: model.config.patchNums)
        return TokenModelGenerator(
            sampler: try NextScaleSampler(model: model, vae: vae, cfg: cfg, options: options, pruning: pruning), family: VARFamily.name)
    }
}

/// Sampling settings a varlab-trained VAR checkpoint recommends in its safetensors metadata (`varlab.sample_cfg`,
/// `_top_k`, `_top_p`, `_more_smooth`); all nil for official checkpoints.
public struct VARSampleDefaults {
    public var cfg: Double?
    public var tokens = TokenSamplingOverrides()
    public var topK: Int? { tokens.topK }
    public var topP: Double? { tokens.topP }

    public init(path: String) {
        guard (try? CheckpointLoader.detectFormat(path: path)) == .safetensors, let m = try? SafetensorsFile(path: path).metadata else {
            return
        }
        cfg = m.double(.sampleCFG)
        tokens = TokenSamplingOverrides(topK: m.int(.sampleTopK), topP: m.double(.sampleTopP), moreSmooth: m.bool(.sampleMoreSmooth))
    }
}
