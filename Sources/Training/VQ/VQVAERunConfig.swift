import Autoencoders
import Foundation

/// What `varlab train vqvae` records as `varlab.config` and compares on resume: the model (`VQVAEConfig`), the scale
/// schedule and image size it is trained for, and the recipe - one flat JSON object (the layout earlier versions
/// wrote, so their checkpoints resume). The defaults are the built-in tokenizer's sizes.
public struct VQVAERunConfig: Codable, Equatable, Sendable {
    public var model = VQVAEConfig(
        ch: 32, chMult: [1, 2, 2], numResBlocks: 1, zChannels: 16, vocabSize: 512, attnAtLowest: false,
        midAttn: false, phiLayout: .partiallyShared(4))
    public var patchNums = [1, 2, 3, 4, 6, 8, 10, 13, 16]
    public var imageSize = 64
    /// Codebook from a real batch's residuals at step 0 instead of uniform(±1/V) (issue 14).
    public var dataInitCodebook = false
    /// Every N steps, codes unused in those N steps restart as residual vectors of the batch (0 = never). Resuming
    /// is bit-identical when the checkpoint interval is a multiple of N (the window is not checkpointed).
    public var deadCodeRestartEvery = 0
    /// Encoder / decoder conv init: false = PyTorch's default (uniform, variance 1/(3 fan_in), as the official
    /// code), true = He (variance 2/fan_in) with every ResNet block's last conv at zero, so each block starts as
    /// the identity. The default init shrinks the signal threefold in variance per plain conv; the small decoder
    /// then learned colour only after hundreds of steps (issue 14).
    public var heInit = false
    /// Decoder fine-tuning: only post_quant_conv and the decoder train, from a trained tokenizer's weights, so
    /// every image keeps its tokens (absent in older checkpoints: false).
    public var decoderOnly = false
    public init() {}

    private enum CodingKeys: String, CodingKey {
        case patchNums, imageSize, dataInitCodebook, deadCodeRestartEvery, heInit, decoderOnly
    }

    /// Checkpoints written before the recipe fields existed used 32 groups, the uniform init, no restarts.
    public init(from decoder: Decoder) throws {
        model = try VQVAEConfig(from: decoder)
        let k = try decoder.container(keyedBy: CodingKeys.self)
        patchNums = try k.decode([Int].self, forKey: .patchNums)
        imageSize = try k.decode(Int.self, forKey: .imageSize)
        dataInitCodebook = try k.decodeIfPresent(Bool.self, forKey: .dataInitCodebook) ?? false
        deadCodeRestartEvery = try k.decodeIfPresent(Int.self, forKey: .deadCodeRestartEvery) ?? 0
        heInit = try k.decodeIfPresent(Bool.self, forKey: .heInit) ?? false
        decoderOnly = try k.decodeIfPresent(Bool.self, forKey: .decoderOnly) ?? false
    }

    public func encode(to encoder: Encoder) throws {
        try model.encode(to: encoder)
        var k = encoder.container(keyedBy: CodingKeys.self)
        try k.encode(patchNums, forKey: .patchNums)
        try k.encode(imageSize, forKey: .imageSize)
        try k.encode(dataInitCodebook, forKey: .dataInitCodebook)
        try k.encode(deadCodeRestartEvery, forKey: .deadCodeRestartEvery)
        try k.encode(heInit, forKey: .heInit)
        // Written only when set, so a joint run's config JSON stays what earlier versions wrote (they resume).
        if decoderOnly { try k.encode(decoderOnly, forKey: .decoderOnly) }
    }

    public func validate() throws {
        do { try model.validateForTraining() } catch { throw TrainingError.config("\(error)") }
        guard deadCodeRestartEvery >= 0 else { throw TrainingError.config("the dead-code restart interval must be >= 0") }
        guard imageSize % model.downsampling == 0, patchNums.last == imageSize / model.downsampling else {
            throw TrainingError.config(
                "the last patch number \(patchNums.last ?? 0) must equal the latent size \(imageSize / model.downsampling)")
        }
    }
}
