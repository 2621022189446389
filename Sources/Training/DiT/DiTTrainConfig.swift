import DiT
import Foundation

/// Hyper-parameters of a trainable DiT (facebookresearch/DiT `models.py` `DiT(...)` arguments). The model is the
/// official one with `learn_sigma = False`: the output is epsilon only (C channels) and the loss is the plain
/// epsilon MSE ("simple" loss); sampling then uses the fixed-large variance, as `create_diffusion` does.
public struct DiTTrainConfig: Codable, Equatable, Sendable {
    /// Latent side (8 for the tiny VQ-VAE's 8x8 f-hat) and channels (its z channels).
    public var inputSize = 8
    public var inChannels = 16
    public var patchSize = 2
    public var hiddenSize = 128
    public var depth = 6
    public var numHeads = 4
    public var mlpRatio = 4.0
    public var numClasses = 10
    /// Official `class_dropout_prob`: labels replaced by the null class (row `numClasses`) with this probability.
    public var classDropout: Float = 0.1
    /// Linear beta schedule length (official 1000).
    public var diffusionSteps = 1000
    /// Min-SNR-γ loss weighting (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting Strategy"):
    /// each sample's epsilon MSE is weighted by min(SNR_t, γ) / SNR_t, SNR_t = ᾱ_t / (1 - ᾱ_t), so the many
    /// nearly-clean timesteps stop dominating the gradient. 0 = the official uniform ("simple") loss.
    public var minSNRGamma: Float = 0
    public init() {}

    public var gridSize: Int { inputSize / patchSize }
    public var numPatches: Int { gridSize * gridSize }
    public var mlpHiddenSize: Int { Int(Double(hiddenSize) * mlpRatio) }

    public func validate() throws {
        guard inputSize >= 1, patchSize >= 1, inputSize % patchSize == 0 else {
            throw TrainingError.config("DiT: latent size \(inputSize) is not a multiple of the patch size \(patchSize)")
        }
        guard hiddenSize >= 4, hiddenSize % 4 == 0 else {
            throw TrainingError.config("DiT: hidden size \(hiddenSize) must be a positive multiple of 4 (2-D sin-cos positions)")
        }
        guard numHeads >= 1, hiddenSize % numHeads == 0 else {
            throw TrainingError.config("DiT: \(numHeads) heads do not divide the hidden size \(hiddenSize)")
        }
        guard depth >= 1, inChannels >= 1, numClasses >= 1, mlpRatio > 0, diffusionSteps >= 2,
              classDropout >= 0, classDropout < 1 else {
            throw TrainingError.config("DiT: invalid config \(self)")
        }
        guard minSNRGamma >= 0, minSNRGamma.isFinite else {
            throw TrainingError.config("DiT: the Min-SNR gamma must be a finite number >= 0 (0 = uniform loss), got \(minSNRGamma)")
        }
    }

    /// The inference configuration the checkpoint loads with (learn_sigma false).
    public var inference: DiTConfig {
        var c = DiTConfig(inputSize: inputSize, patchSize: patchSize, inChannels: inChannels, hiddenSize: hiddenSize,
                          depth: depth, numHeads: numHeads, mlpRatio: mlpRatio, numClasses: numClasses, learnSigma: false)
        c.mlpHiddenSize = mlpHiddenSize
        return c
    }
}
