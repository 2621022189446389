import Foundation

/// The tiny models trained on the toy data that ship in `assets/models/` and serve as defaults when no checkpoint
/// is given (README "Built-in models"; each file's metadata records the command that trained it).
/// Lookup order: `$VARLAB_ASSETS`, `<prefix>/share/varlab/assets` beside an installed binary (`<prefix>/bin/varlab`,
/// `make install`), the `assets/` folder of the source tree this binary was built from, `./assets`.
public enum BuiltinModels {
    public static let vqvae = "toy-vqvae.safetensors"
    public static let varTransformer = "toy-var.safetensors"
    public static let dit = "toy-dit.safetensors"
    public static let classifier = "toy-classifier.safetensors"

    public static var searchDirectories: [String] {
        var dirs: [String] = []
        if let env = ProcessInfo.processInfo.environment["VARLAB_ASSETS"], !env.isEmpty { dirs.append(env) }
        // The binary's own location (symlinks resolved), so a copied or installed binary keeps its models.
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        dirs.append(exe.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("share/varlab/assets").path)
        // #filePath = <repo>/Sources/Generation/BuiltinModels.swift, so a binary built from a clone finds the clone's assets.
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        dirs.append(repo.appendingPathComponent("assets").path)
        dirs.append(FileManager.default.currentDirectoryPath + "/assets")
        return dirs
    }

    /// The folder the built-in models are read from, or nil when none of the search folders has them.
    public static var modelsDirectory: String? {
        for d in searchDirectories {
            let m = (d as NSString).appendingPathComponent("models")
            if FileManager.default.fileExists(atPath: (m as NSString).appendingPathComponent(varTransformer)) { return m }
        }
        return nil
    }

    /// Path of a built-in model file, or an error saying where it was looked for and how to do without it.
    public static func path(_ file: String, instead flag: String) throws -> String {
        for d in searchDirectories {
            let p = (d as NSString).appendingPathComponent("models/" + file)
            if FileManager.default.fileExists(atPath: p) { return p }
        }
        throw GenerationError(
            "the built-in model models/\(file) was not found (looked in \(searchDirectories.joined(separator: ", ")); set VARLAB_ASSETS to the assets/ folder or pass \(flag)"
        )
    }

    /// (checkpoint, autoencoder) for a family: the user's files when given, else the built-in pair. Giving only one
    /// of the two is an error, since a built-in transformer only fits the built-in autoencoder.
    public static func resolve(
        family: ModelFamily.Type, checkpoint: String?, vae: String?
    ) throws -> (checkpoint: String, vae: String, builtin: Bool) {
        switch (checkpoint, vae) {
        case let (c?, v?): return (c, v, false)
        case (nil, nil):
            return (try path(family.builtinCheckpoint, instead: "--checkpoint"), try path(vqvae, instead: "--vae"), true)
        case (_?, nil):
            throw GenerationError("--checkpoint was given without --vae: give both (or neither, for the built-in toy \(family.name) model)")
        case (nil, _?):
            throw GenerationError("--vae was given without --checkpoint: give both (or neither, for the built-in toy \(family.name) model)")
        }
    }
}
