import Foundation
import ModelIO
import Samplers

/// A model family varlab can sample from: how its checkpoints are recognised, its built-in toy model, and how a
/// generator is built from a checkpoint, its autoencoder and the settings. Adding a family = one type conforming
/// to this protocol + one line in `ModelFamilies.all` (its editor, if any, registers in Editing's `EditFamilies`).
public protocol ModelFamily {
    /// The `--model` name.
    static var name: String { get }
    /// What it is, for help texts and `varlab inspect`.
    static var summary: String { get }
    /// File name of the built-in transformer in assets/models (the built-in tokenizer is shared).
    static var builtinCheckpoint: String { get }
    /// True when the archive holds this family's transformer (its characteristic keys).
    static func recognises(_ archive: TensorArchive) -> Bool
    static func makeGenerator(
        _ settings: GenerationSettings, checkpoint: String, vae: String,
        log: (String) -> Void
    ) throws -> SampleGenerator
}

/// VAR (next-scale prediction) and its varlab ablation variants on the multi-scale VQ-VAE.
public enum VARFamily: ModelFamily {
    public static let name = "var"
    public static let summary = "VAR next-scale prediction (FoundationVision/VAR) on a multi-scale VQ-VAE"
    public static let builtinCheckpoint = BuiltinModels.varTransformer
    public static func recognises(_ archive: TensorArchive) -> Bool { archive.contains("pos_1LC") || archive.contains("lvl_embed.weight") }
    public static func makeGenerator(
        _ s: GenerationSettings, checkpoint: String, vae: String,
        log: (String) -> Void
    ) throws -> SampleGenerator {
        let d = VARSampleDefaults(path: checkpoint)
        let options = s.tokens.resolved(recorded: d.tokens)
        let guidance = s.cfg ?? d.cfg ?? 1.5
        return try TokenModelGenerator.load(
            checkpoint: checkpoint, vae: vae, key: s.key, patchNums: s.patchNums, cfg: guidance, options: options,
            pruning: s.pruning, precision: s.precision, log: log)
    }
}

/// DiT (facebookresearch/DiT) over a KL-VAE's latents, or over the VQ-VAE's f-hat for the built-in toy model.
public enum DiTFamily: ModelFamily {
    public static let name = "dit"
    public static let summary = "DiT diffusion transformer (facebookresearch/DiT) over VAE latents"
    public static let builtinCheckpoint = BuiltinModels.dit
    public static func recognises(_ archive: TensorArchive) -> Bool {
        archive.contains("x_embedder.proj.weight") && archive.contains("t_embedder.mlp.0.weight")
    }
    public static func makeGenerator(
        _ s: GenerationSettings, checkpoint: String, vae: String,
        log: (String) -> Void
    ) throws -> SampleGenerator {
        try s.dit.makeGenerator(checkpoint: checkpoint, vae: vae, cfg: s.cfg.map { Float($0) }, precision: s.precision, log: log)
    }
}

/// The registry `sample`, `edit`, the benches and the lab ask.
public enum ModelFamilies {
    public static let all: [ModelFamily.Type] = [VARFamily.self, DiTFamily.self]

    public static var names: [String] { all.map { $0.name } }

    /// The family called `name`, or an error listing the known ones.
    public static func named(_ name: String) throws -> ModelFamily.Type {
        guard let f = all.first(where: { $0.name == name.lowercased() }) else {
            throw GenerationError("--model must be \(names.joined(separator: " or ")), got '\(name)'")
        }
        return f
    }

    /// The family whose transformer this checkpoint holds, or nil (unreadable, or no family recognises it).
    /// Training checkpoints ({model, ema, ...}) are looked into through their ema / model entry.
    public static func detect(checkpoint path: String) -> ModelFamily.Type? {
        for key in [nil, "ema", "model"] {
            if let a = try? CheckpointLoader.open(path: path, keyPath: key), let f = all.first(where: { $0.recognises(a) }) { return f }
        }
        return nil
    }
}
