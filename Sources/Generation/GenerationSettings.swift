import Foundation
import ModelIO
import Samplers
import Tensor
import Training
import VAR

/// Everything that chooses a generator and its sampling settings: the request the CLI, the benches and the lab
/// build. Unset (nil) settings take the checkpoint's recommended values (`varlab.sample_*` metadata of a
/// varlab-trained file), else the official FID settings (VAR: cfg 1.5, top-k 900, top-p 0.96; DiT: `DiTSettings`).
/// No checkpoint and no autoencoder: the built-in toy model of the family (`BuiltinModels`).
public struct GenerationSettings: Sendable {
    /// A name in `ModelFamilies` ("var", "dit").
    public var family: String = VARFamily.name
    public var checkpoint: String?
    public var vae: String?
    /// VAR: nested state dict inside the checkpoint, e.g. trainer.var_wo_ddp.
    public var key: String?
    /// VAR: scale schedule (default: from the checkpoint's sequence length).
    public var patchNums: [Int]?
    /// Classifier-free guidance (VAR ramps it over the scales: t = cfg·si/(S-1)).
    public var cfg: Double?
    /// VAR: top-k, top-p, temperature, more-smooth (unset: the checkpoint's recorded values, else the official ones).
    public var tokens = TokenSamplingOverrides()
    /// VAR: opt-in FastVAR cached token pruning of the last scales (nil = exact).
    public var pruning: TokenPruning?
    /// The transformer's Linear products: float32, or opt-in bfloat16 where the CPU has it (`MatmulPrecision.resolve`).
    public var precision: MatmulPrecision = .float32
    public var dit = DiTSettings()
    /// Classifier rejection sampling: candidates drawn per image (1 = off) and the toy classifier that picks
    /// among them (nil: the built-in one).
    public var candidates = 1
    public var scorer: String?

    public init(family: String = VARFamily.name) { self.family = family }

    public func validate() throws {
        _ = try ModelFamilies.named(family)
        if let cfg, !(cfg >= 0 && cfg.isFinite) { throw GenerationError("--cfg must be >= 0, got \(cfg)") }
        do { try tokens.validate() } catch { throw GenerationError("\(error)") }
        if let v = patchNums, !(v.count >= 2 && v.allSatisfy({ $0 >= 1 }) && zip(v, v.dropFirst()).allSatisfy({ $0 < $1 })) {
            throw GenerationError("--patch-nums must be at least two strictly increasing positive integers, got \(v)")
        }
        try dit.validate()
        if pruning != nil && family != VARFamily.name { throw GenerationError("--fast applies to VAR, not to '\(family)'") }
        if tokens.guidanceSchedule != nil && family != VARFamily.name {
            throw GenerationError("--cfg-schedule applies to VAR, not to '\(family)'")
        }
        do { try pruning?.validate() } catch { throw GenerationError("\(error)") }
        guard (1...64).contains(candidates) else { throw GenerationError("--candidates must be in 1...64, got \(candidates)") }
        if scorer != nil && candidates == 1 { throw GenerationError("--scorer needs --candidates 2 or more") }
    }

    /// (checkpoint, autoencoder, built-in?) this run reads.
    public func files() throws -> (checkpoint: String, vae: String, builtin: Bool) {
        try BuiltinModels.resolve(family: try ModelFamilies.named(family), checkpoint: checkpoint, vae: vae)
    }

    /// Loads the generator. `log` receives one line per choice made on the user's behalf (built-in model, a
    /// training checkpoint's EMA entry, an ablation variant).
    public func makeGenerator(log: (String) -> Void = { _ in }) throws -> SampleGenerator {
        try validate()
        let files = try self.files()
        if files.builtin { log("no --checkpoint / --vae: using the built-in toy \(family) model \(files.checkpoint) with \(files.vae)") }
        let generator = try ModelFamilies.named(family).makeGenerator(self, checkpoint: files.checkpoint, vae: files.vae, log: log)
        guard candidates > 1 else { return generator }
        let path = try scorer ?? BuiltinModels.path(BuiltinModels.classifier, instead: "--scorer")
        log("rejection sampling: \(candidates) candidates per image, scored by \(path)")
        return try RejectionSampler(base: generator, scorer: try ToyEvaluation(path: path), candidates: candidates)
    }
}
