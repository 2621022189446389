import DiT
import Foundation

/// The training objective of a DiT run (not part of the model): official train.py with learn_sigma = False, so the
/// output is epsilon only and the loss the plain epsilon MSE ("simple" loss); sampling then uses the fixed-large
/// variance, as `create_diffusion` does.
public struct DiTObjective: Codable, Equatable, Sendable {
    /// Linear beta schedule length (official 1000).
    public var diffusionSteps = 1000
    /// Min-SNR-γ loss weighting (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting Strategy"):
    /// each sample's epsilon MSE is weighted by min(SNR_t, γ) / SNR_t, SNR_t = ᾱ_t / (1 - ᾱ_t), so the many
    /// nearly-clean timesteps stop dominating the gradient. 0 = the official uniform ("simple") loss.
    public var minSNRGamma: Float = 0
    public init() {}

    public func validate() throws {
        guard diffusionSteps >= 2 else { throw TrainingError.config("DiT: the diffusion needs >= 2 steps, got \(diffusionSteps)") }
        guard minSNRGamma >= 0, minSNRGamma.isFinite else {
            throw TrainingError.config("DiT: the Min-SNR gamma must be a finite number >= 0 (0 = uniform loss), got \(minSNRGamma)")
        }
    }
}

/// What a DiT training run records as `varlab.config` and compares on resume: the model's config and the objective,
/// one flat JSON object (the layout earlier versions wrote, so their checkpoints resume).
public struct DiTRunConfig: Codable, Equatable, Sendable {
    public var model: DiTConfig
    public var objective: DiTObjective
    public init(model: DiTConfig, objective: DiTObjective) { self.model = model; self.objective = objective }
    public init(from decoder: Decoder) throws {
        model = try DiTConfig(from: decoder)
        objective = try DiTObjective(from: decoder)
    }
    public func encode(to encoder: Encoder) throws {
        try model.encode(to: encoder)
        try objective.encode(to: encoder)
    }
}
