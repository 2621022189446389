import Foundation
import ModelIO

/// Hyper-parameters of a DiT (Peebles & Xie 2023, facebookresearch/DiT `models.py`).
/// Everything except `numHeads` can be read off the checkpoint's shapes; the head count comes from the official
/// table (S/B/L/XL), a config file or a flag.
public struct DiTConfig: Equatable, Sendable, CustomStringConvertible {
    /// Latent side length (image side / 8 for the SD VAE).
    public var inputSize: Int
    public var patchSize: Int
    public var inChannels: Int
    public var hiddenSize: Int
    public var depth: Int
    public var numHeads: Int
    public var mlpHiddenSize: Int
    public var numClasses: Int
    /// Output has 2 * inChannels channels (epsilon, then the variance interpolation value) when true.
    public var learnSigma: Bool
    /// Official `class_dropout_prob`: during training, labels become the null class (row `numClasses`) with this
    /// probability.
    public var classDropout: Float = 0.1

    public init(
        inputSize: Int, patchSize: Int, inChannels: Int = 4, hiddenSize: Int, depth: Int, numHeads: Int,
        mlpRatio: Double = 4, numClasses: Int = 1000, learnSigma: Bool = true
    ) {
        self.inputSize = inputSize
        self.patchSize = patchSize
        self.inChannels = inChannels
        self.hiddenSize = hiddenSize
        self.depth = depth
        self.numHeads = numHeads
        self.mlpHiddenSize = Int(Double(hiddenSize) * mlpRatio)
        self.numClasses = numClasses
        self.learnSigma = learnSigma
    }

    /// mlp_ratio as the constructor takes it (mlpHiddenSize = Int(hiddenSize * mlpRatio)).
    public var mlpRatio: Double {
        get { Double(mlpHiddenSize) / Double(hiddenSize) }
        set { mlpHiddenSize = Int(Double(hiddenSize) * newValue) }
    }

    public func validate() throws {
        guard inputSize >= 1, patchSize >= 1, inputSize % patchSize == 0 else {
            throw DiTError.badConfig("DiT: latent size \(inputSize) is not a multiple of the patch size \(patchSize)")
        }
        guard hiddenSize >= 4, hiddenSize % 4 == 0 else {
            throw DiTError.badConfig("DiT: hidden size \(hiddenSize) must be a positive multiple of 4 (2-D sin-cos positions)")
        }
        guard numHeads >= 1, hiddenSize % numHeads == 0 else {
            throw DiTError.badConfig("DiT: \(numHeads) heads do not divide the hidden size \(hiddenSize)")
        }
        guard depth >= 1, inChannels >= 1, numClasses >= 1, mlpHiddenSize >= 1, classDropout >= 0, classDropout < 1 else {
            throw DiTError.badConfig("DiT: invalid config \(self)")
        }
    }

    public var outChannels: Int { learnSigma ? 2 * inChannels : inChannels }
    public var gridSize: Int { inputSize / patchSize }
    public var numPatches: Int { gridSize * gridSize }
    public var headDim: Int { hiddenSize / numHeads }
    /// Row of the label table used for the unconditional (CFG) branch.
    public var nullClass: Int { numClasses }
    /// Sin-cos frequencies of the timestep embedding (official `frequency_embedding_size`).
    public static let frequencyEmbeddingSize = 256

    /// The official model family: (hidden, depth, heads) of S/B/L/XL.
    public static let families: [(name: String, hidden: Int, depth: Int, heads: Int)] = [
        ("S", 384, 12, 6), ("B", 768, 12, 12), ("L", 1024, 24, 16), ("XL", 1152, 28, 16),
    ]

    /// An official configuration such as "XL/2" at `imageSize` pixels (latent = image / 8).
    public static func named(_ name: String, imageSize: Int = 256, numClasses: Int = 1000) throws -> DiTConfig {
        let parts = name.uppercased().replacingOccurrences(of: "DIT-", with: "").split(separator: "/")
        guard parts.count == 2, let fam = families.first(where: { $0.name == parts[0] }), let p = Int(parts[1]),
            [2, 4, 8].contains(p)
        else {
            throw DiTError.badConfig("unknown DiT config '\(name)'; expected S|B|L|XL followed by /2, /4 or /8 (e.g. XL/2)")
        }
        guard imageSize % 8 == 0, (imageSize / 8) % p == 0 else {
            throw DiTError.badConfig("image size \(imageSize) is not a multiple of 8 * patch \(p)")
        }
        return DiTConfig(
            inputSize: imageSize / 8, patchSize: p, hiddenSize: fam.hidden, depth: fam.depth,
            numHeads: fam.heads, numClasses: numClasses)
    }

    /// Official head count for a hidden size, if it is one of S/B/L/XL.
    public static func officialHeads(hiddenSize: Int) -> Int? {
        families.first(where: { $0.hidden == hiddenSize })?.heads
    }

    /// "XL/2" etc. when the shapes are an official family, else a description of the sizes.
    public var familyName: String {
        if let f = DiTConfig.families.first(where: { $0.hidden == hiddenSize && $0.depth == depth && $0.heads == numHeads }) {
            return "\(f.name)/\(patchSize)"
        }
        return "custom(D=\(hiddenSize), depth=\(depth), heads=\(numHeads), p=\(patchSize))"
    }

    public var description: String {
        "DiT-\(familyName) latent \(inputSize)x\(inputSize)x\(inChannels), \(numPatches) tokens, hidden \(hiddenSize), "
            + "depth \(depth), heads \(numHeads), mlp \(mlpHiddenSize), classes \(numClasses), learn_sigma \(learnSigma)"
    }
}

public enum DiTError: Error, CustomStringConvertible, Equatable {
    case badConfig(String)
    case notDiT(path: String, reason: String)
    case shapeMismatch(path: String, key: String, expected: [Int], actual: [Int])
    case badInput(String)

    public var description: String {
        switch self {
        case let .badConfig(s): return s
        case let .notDiT(path, reason): return "\(path): not a DiT checkpoint: \(reason)"
        case let .shapeMismatch(path, key, expected, actual):
            return "\(path): key '\(key)' has shape \(actual), but the DiT config implies \(expected)"
        case let .badInput(s): return s
        }
    }
}

extension DiTConfig: Codable {
    enum CodingKeys: String, CodingKey {
        case inputSize, inChannels, patchSize, hiddenSize, depth, numHeads, mlpRatio, numClasses, classDropout, learnSigma
    }

    public init(from decoder: Decoder) throws {
        let k = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            inputSize: try k.decode(Int.self, forKey: .inputSize), patchSize: try k.decode(Int.self, forKey: .patchSize),
            inChannels: try k.decode(Int.self, forKey: .inChannels), hiddenSize: try k.decode(Int.self, forKey: .hiddenSize),
            depth: try k.decode(Int.self, forKey: .depth), numHeads: try k.decode(Int.self, forKey: .numHeads),
            mlpRatio: try k.decodeIfPresent(Double.self, forKey: .mlpRatio) ?? 4, numClasses: try k.decode(Int.self, forKey: .numClasses),
            learnSigma: try k.decodeIfPresent(Bool.self, forKey: .learnSigma) ?? false)
        classDropout = try k.decodeIfPresent(Float.self, forKey: .classDropout) ?? 0.1
    }

    /// learn_sigma is written only when set: varlab trains epsilon-only models, whose `varlab.config` reads as it
    /// always has (so older checkpoints resume).
    public func encode(to encoder: Encoder) throws {
        var k = encoder.container(keyedBy: CodingKeys.self)
        try k.encode(inputSize, forKey: .inputSize)
        try k.encode(inChannels, forKey: .inChannels)
        try k.encode(patchSize, forKey: .patchSize)
        try k.encode(hiddenSize, forKey: .hiddenSize)
        try k.encode(depth, forKey: .depth)
        try k.encode(numHeads, forKey: .numHeads)
        try k.encode(mlpRatio, forKey: .mlpRatio)
        try k.encode(numClasses, forKey: .numClasses)
        try k.encode(classDropout, forKey: .classDropout)
        if learnSigma { try k.encode(true, forKey: .learnSigma) }
    }

    /// The official state dict's names and shapes (random-weight models for benchmarks).
    public var stateDictShapes: [(String, [Int])] {
        let d = hiddenSize, p = patchSize, f = DiTConfig.frequencyEmbeddingSize
        var s: [(String, [Int])] = [
            ("x_embedder.proj.weight", [d, inChannels, p, p]), ("x_embedder.proj.bias", [d]),
            ("pos_embed", [1, numPatches, d]),
            ("t_embedder.mlp.0.weight", [d, f]), ("t_embedder.mlp.0.bias", [d]),
            ("t_embedder.mlp.2.weight", [d, d]), ("t_embedder.mlp.2.bias", [d]),
            ("y_embedder.embedding_table.weight", [numClasses + 1, d]),
        ]
        for i in 0..<depth {
            let b = "blocks.\(i)."
            s += [
                (b + "attn.qkv.weight", [3 * d, d]), (b + "attn.qkv.bias", [3 * d]), (b + "attn.proj.weight", [d, d]),
                (b + "attn.proj.bias", [d]), (b + "mlp.fc1.weight", [mlpHiddenSize, d]), (b + "mlp.fc1.bias", [mlpHiddenSize]),
                (b + "mlp.fc2.weight", [d, mlpHiddenSize]), (b + "mlp.fc2.bias", [d]),
                (b + "adaLN_modulation.1.weight", [6 * d, d]), (b + "adaLN_modulation.1.bias", [6 * d]),
            ]
        }
        s += [
            ("final_layer.linear.weight", [p * p * outChannels, d]), ("final_layer.linear.bias", [p * p * outChannels]),
            ("final_layer.adaLN_modulation.1.weight", [2 * d, d]), ("final_layer.adaLN_modulation.1.bias", [2 * d]),
        ]
        return s
    }
}

extension DiTConfig {
    /// Reads the configuration off the shapes of an official state dict:
    /// pos_embed [1, T, D], x_embedder.proj.weight [D, C, p, p], blocks.N.*, y_embedder table [classes+1, D],
    /// mlp.fc1 [hidden, D], final_layer.linear.weight [p*p*out, D]. The head count is not in the shapes: it is
    /// `numHeads` if given, else the official value for the hidden size (S/B/L/XL).
    public static func infer(from archive: TensorArchive, numHeads: Int? = nil) throws -> DiTConfig {
        let path = archive.path
        for key in ["pos_embed", "x_embedder.proj.weight", "y_embedder.embedding_table.weight", "final_layer.linear.weight"] {
            guard archive.contains(key) else {
                if archive.contains("word_embed.weight") || archive.contains("lvl_1L") || archive.contains("class_emb.weight") {
                    throw DiTError.notDiT(
                        path: path, reason: "it looks like a VAR checkpoint (keys 'word_embed' / 'class_emb'); use --model var")
                }
                let sample = archive.keys.prefix(4).map { "'\($0)'" }.joined(separator: ", ")
                throw DiTError.notDiT(path: path, reason: "missing key '\(key)' (its first keys are \(sample))")
            }
        }
        let pos = try archive.requireInfo("pos_embed").shape
        let patch = try archive.requireInfo("x_embedder.proj.weight").shape
        guard pos.count == 3, pos[0] == 1 else {
            throw DiTError.notDiT(path: path, reason: "pos_embed has shape \(pos), expected [1, tokens, hidden]")
        }
        guard patch.count == 4, patch[2] == patch[3], patch[0] == pos[2] else {
            throw DiTError.notDiT(path: path, reason: "x_embedder.proj.weight has shape \(patch), expected [\(pos[2]), C, p, p]")
        }
        let hidden = pos[2], tokens = pos[1], p = patch[2], cin = patch[1]
        let grid = Int(Double(tokens).squareRoot().rounded())
        guard grid * grid == tokens else {
            throw DiTError.notDiT(path: path, reason: "pos_embed has \(tokens) tokens, not a square grid")
        }
        var depth = 0
        while archive.contains("blocks.\(depth).attn.qkv.weight") { depth += 1 }
        guard depth > 0 else { throw DiTError.notDiT(path: path, reason: "no transformer blocks ('blocks.0.attn.qkv.weight')") }
        let table = try archive.requireInfo("y_embedder.embedding_table.weight").shape
        guard table.count == 2, table[1] == hidden, table[0] >= 2 else {
            throw DiTError.shapeMismatch(path: path, key: "y_embedder.embedding_table.weight", expected: [-1, hidden], actual: table)
        }
        let fc1 = try archive.requireInfo("blocks.0.mlp.fc1.weight").shape
        guard fc1.count == 2, fc1[1] == hidden else {
            throw DiTError.shapeMismatch(path: path, key: "blocks.0.mlp.fc1.weight", expected: [-1, hidden], actual: fc1)
        }
        let fin = try archive.requireInfo("final_layer.linear.weight").shape
        guard fin.count == 2, fin[1] == hidden, fin[0] % (p * p) == 0 else {
            throw DiTError.shapeMismatch(path: path, key: "final_layer.linear.weight", expected: [p * p * 2 * cin, hidden], actual: fin)
        }
        let outC = fin[0] / (p * p)
        guard outC == cin || outC == 2 * cin else {
            throw DiTError.notDiT(
                path: path, reason: "final layer gives \(outC) channels for \(cin) input channels (expected \(cin) or \(2 * cin))")
        }
        guard let heads = numHeads ?? officialHeads(hiddenSize: hidden) else {
            throw DiTError.badConfig(
                "\(path): hidden size \(hidden) is not an official DiT size (384/768/1024/1152), so the "
                    + "number of attention heads cannot be inferred; give it (--dit-heads, or a dit_config.json beside the checkpoint)")
        }
        guard heads > 0, hidden % heads == 0 else {
            throw DiTError.badConfig("\(path): \(heads) heads do not divide the hidden size \(hidden)")
        }
        var c = DiTConfig(
            inputSize: grid * p, patchSize: p, inChannels: cin, hiddenSize: hidden, depth: depth,
            numHeads: heads, numClasses: table[0] - 1, learnSigma: outC == 2 * cin)
        c.mlpHiddenSize = fc1[0]
        return c
    }

    /// Reads `num_heads` (and checks the other sizes) from a JSON config: either the official constructor
    /// arguments `{"num_heads": ...}` or the fixture layout `{"kwargs": {...}}`.
    public static func headsFromJSON(path: String) throws -> Int? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw DiTError.badConfig("\(path): not a JSON object")
        }
        let kw = (obj["kwargs"] as? [String: Any]) ?? obj
        return (kw["num_heads"] as? NSNumber)?.intValue
    }

    /// Checks a config against the sizes given in a JSON config file, naming the field that disagrees.
    public func validate(againstJSON path: String) throws {
        guard let data = FileManager.default.contents(atPath: path),
            let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return }
        let kw = (obj["kwargs"] as? [String: Any]) ?? obj
        let checks: [(String, Int)] = [
            ("input_size", inputSize), ("patch_size", patchSize), ("in_channels", inChannels),
            ("hidden_size", hiddenSize), ("depth", depth), ("num_heads", numHeads),
            ("num_classes", numClasses),
        ]
        for (k, v) in checks {
            if let j = (kw[k] as? NSNumber)?.intValue, j != v {
                throw DiTError.badConfig("\(path): \(k) = \(j), but the checkpoint's shapes give \(v)")
            }
        }
        if let ls = kw["learn_sigma"] as? Bool, ls != learnSigma {
            throw DiTError.badConfig("\(path): learn_sigma = \(ls), but the checkpoint's final layer gives \(learnSigma)")
        }
    }
}
