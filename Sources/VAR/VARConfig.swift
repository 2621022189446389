import Foundation
import ModelIO

/// Which model of the VAR family (the paper's model and the two ablations the lab compares it with):
/// - `var`: next-scale prediction over all scales (block-causal mask), AdaLN conditioning;
/// - `ar`: raster-order next-token prediction over the finest scale only (causal mask), same AdaLN blocks; its
///   input after the start token is tok_embed(previous token); the tokens are the frozen tokenizer's codebook applied
///   once to the full-size latent (single-scale VQ);
/// - `plain-ln`: next-scale like `var`, but affine-LayerNorm blocks and head norm, no AdaLN; the class enters only
///   as the start token (class_emb + pos_start), which VAR also uses.
public enum VARVariant: String, Codable, Sendable, CaseIterable {
    case next = "var"
    case ar = "ar"
    case plainLN = "plain-ln"
}

/// The one configuration of a VAR-family transformer (official `models.var.VAR` constructor arguments), inferred
/// from an official state dict or read from a varlab file's `varlab.config`. The defaults are the built-in toy model.
public struct VARConfig: Sendable, Equatable {
    public var variant: VARVariant = .next
    public var depth = 6
    public var width = 128
    public var heads = 4
    public var mlpRatio: Double = 4
    public var vocabSize = 512
    /// Latent channels of the VQ-VAE (input width of word_embed).
    public var cvae = 16
    public var numClasses = 10
    /// The VQ-VAE's scale schedule (the raster model predicts only its last map).
    public var patchNums = [1, 2, 3, 4, 5, 6, 8]
    /// Probability of replacing the label by the null class during training (official cond_drop_rate, 0.1).
    public var condDropRate: Float = 0.1
    public var normEps: Float = 1e-6
    /// Official `shared_aln` (VAR-d36): one ada_lin for all blocks plus a per-block `ada_gss`.
    public var sharedAdaLN = false
    /// Official `attn_l2_norm` (the released models): cosine attention with a per-head learned temperature.
    public var attnL2Norm = false

    public init() {}

    public init(
        depth: Int, width: Int, heads: Int, mlpHidden: Int, sharedAdaLN: Bool, attnL2Norm: Bool = true,
        vocabSize: Int, cvae: Int, numClasses: Int, patchNums: [Int], variant: VARVariant = .next
    ) {
        self.variant = variant; self.depth = depth; self.width = width; self.heads = heads
        mlpRatio = Double(mlpHidden) / Double(width)
        self.sharedAdaLN = sharedAdaLN; self.attnL2Norm = attnL2Norm; self.vocabSize = vocabSize; self.cvae = cvae
        self.numClasses = numClasses; self.patchNums = patchNums
    }

    public var mlpHidden: Int { Int((Double(width) * mlpRatio).rounded()) }
    public var headDim: Int { width / heads }
    /// Token maps the model predicts: every scale (var / plain-ln) or the finest only (ar).
    public var scales: [Int] { variant == .ar ? [patchNums.last!] : patchNums }
    public var totalTokens: Int { scales.reduce(0) { $0 + $1 * $1 } }
    /// Start tokens: pn_0^2 for next-scale models, 1 for the raster model.
    public var firstL: Int { variant == .ar ? 1 : patchNums[0] * patchNums[0] }
    /// AdaLN conditioning in the blocks and before the head.
    public var adaLN: Bool { variant != .plainLN }
    /// Level (index into `scales`) of every sequence position.
    public var levels: [Int] { scales.enumerated().flatMap { Array(repeating: $0.offset, count: $0.element * $0.element) } }
    /// [begin, end) of each predicted map in the token sequence.
    public var beginEnds: [(Int, Int)] {
        var out: [(Int, Int)] = []
        var cur = 0
        for pn in scales { out.append((cur, cur + pn * pn)); cur += pn * pn }
        return out
    }

    /// Additive attention mask [L, L]: block-causal over scales (a token sees every token of its own and earlier
    /// scales, the official attn_bias_for_masking) or causal (ar).
    public func attentionMask() -> [Float] {
        let L = totalTokens, lvl = levels
        var m = [Float](repeating: 0, count: L * L)
        for i in 0..<L {
            for j in 0..<L where (variant == .ar ? j > i : lvl[j] > lvl[i]) { m[i * L + j] = -.infinity }
        }
        return m
    }

    /// Sizes beyond any VAR (the largest released model is d36, width 2304, 2,240 tokens); a file claiming more is refused
    /// before anything is computed from it.
    static let limits = (depth: 512, width: 1 << 16, vocab: 1 << 22, classes: 1 << 22, cvae: 1 << 12, patch: 1 << 10, scales: 64)

    public func validate() throws {
        let l = VARConfig.limits
        guard (1...l.depth).contains(depth), (1...l.width).contains(width), (1...l.vocab).contains(vocabSize),
            (1...l.classes).contains(numClasses),
            (1...l.cvae).contains(cvae), mlpRatio.isFinite, mlpRatio > 0, mlpRatio <= 64, condDropRate.isFinite, normEps.isFinite,
            normEps > 0
        else {
            throw VARError.badInput(
                "VAR config out of range (depth \(depth) <= \(l.depth), width \(width) <= \(l.width), vocab \(vocabSize), classes \(numClasses), Cvae \(cvae), mlp ratio \(mlpRatio) in (0, 64], eps \(normEps))"
            )
        }
        guard patchNums.count <= l.scales, patchNums.allSatisfy({ (1...l.patch).contains($0) }) else {
            throw VARError.patchNums("patch numbers \(patchNums.prefix(8)) out of range (at most \(l.scales) scales of 1...\(l.patch))")
        }
        guard depth >= 1, width >= 1, heads >= 1, width % heads == 0, mlpRatio > 0, mlpHidden >= 1, vocabSize >= 2,
            cvae >= 1, numClasses >= 1, condDropRate >= 0, condDropRate < 1
        else {
            throw VARError.badInput(
                "invalid VAR config (depth \(depth), width \(width), heads \(heads), mlp ratio \(mlpRatio): width must be divisible by heads)"
            )
        }
        guard patchNums.count >= 2, patchNums.allSatisfy({ $0 >= 1 }), zip(patchNums, patchNums.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw VARError.patchNums("impossible patch numbers \(patchNums) (need >= 2 strictly increasing sizes)")
        }
        if variant != .next && (sharedAdaLN || attnL2Norm) {
            throw VARError.badInput(
                "the '\(variant.rawValue)' variant has per-block ada_lin and plain attention (no shared AdaLN / attn_l2_norm)")
        }
    }

    /// Training runs the backward of plain attention and per-block ada_lin only (varlab's trainer; the released
    /// models use attn_l2_norm and load for inference).
    public func validateForTraining() throws {
        try validate()
        guard !sharedAdaLN, !attnL2Norm else {
            throw VARError.badInput(
                "training supports attn_l2_norm = False and per-block ada_lin only (this config has shared AdaLN \(sharedAdaLN), attn_l2_norm \(attnL2Norm))"
            )
        }
    }

    /// The two official scale schedules, keyed by sequence length (len of pos_1LC).
    public static let officialPatchNums: [Int: [Int]] = [
        680: [1, 2, 3, 4, 5, 6, 8, 10, 13, 16],  // 256 px
        2240: [1, 2, 3, 4, 6, 9, 13, 18, 24, 32],  // 512 px
    ]

    /// Official VAR-d{depth}: width 64*depth, heads = depth (head dim 64), MLP 4x, 1000 classes, VQ-VAE vocab 4096 /
    /// Cvae 32, 256 px schedule; shared AdaLN only for d36 (as released).
    public static func official(depth: Int) -> VARConfig {
        VARConfig(
            depth: depth, width: 64 * depth, heads: depth, mlpHidden: 4 * 64 * depth, sharedAdaLN: depth == 36,
            vocabSize: 4096, cvae: 32, numClasses: 1000, patchNums: officialPatchNums[680]!)
    }
}

extension VARConfig: Codable {
    enum CodingKeys: String, CodingKey {
        case variant, depth, width, heads, mlpRatio, vocabSize, cvae, numClasses, patchNums, condDropRate, normEps
        case sharedAdaLN, attnL2Norm
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = VARConfig()
        variant = try c.decodeIfPresent(VARVariant.self, forKey: .variant) ?? d.variant
        depth = try c.decode(Int.self, forKey: .depth)
        width = try c.decode(Int.self, forKey: .width)
        heads = try c.decode(Int.self, forKey: .heads)
        mlpRatio = try c.decodeIfPresent(Double.self, forKey: .mlpRatio) ?? d.mlpRatio
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        cvae = try c.decode(Int.self, forKey: .cvae)
        numClasses = try c.decode(Int.self, forKey: .numClasses)
        patchNums = try c.decode([Int].self, forKey: .patchNums)
        condDropRate = try c.decodeIfPresent(Float.self, forKey: .condDropRate) ?? d.condDropRate
        normEps = try c.decodeIfPresent(Float.self, forKey: .normEps) ?? d.normEps
        sharedAdaLN = try c.decodeIfPresent(Bool.self, forKey: .sharedAdaLN) ?? false
        attnL2Norm = try c.decodeIfPresent(Bool.self, forKey: .attnL2Norm) ?? false
    }

    /// The two official-only flags are written only when set, so a varlab-trained model's `varlab.config` reads as
    /// it always has (and old checkpoints still resume).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(variant, forKey: .variant)
        try c.encode(depth, forKey: .depth)
        try c.encode(width, forKey: .width)
        try c.encode(heads, forKey: .heads)
        try c.encode(mlpRatio, forKey: .mlpRatio)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encode(cvae, forKey: .cvae)
        try c.encode(numClasses, forKey: .numClasses)
        try c.encode(patchNums, forKey: .patchNums)
        try c.encode(condDropRate, forKey: .condDropRate)
        try c.encode(normEps, forKey: .normEps)
        if sharedAdaLN { try c.encode(true, forKey: .sharedAdaLN) }
        if attnL2Norm { try c.encode(true, forKey: .attnL2Norm) }
    }
}

extension VARConfig {
    /// The configuration of a VAR-family checkpoint: a varlab file's `varlab.config` (its variant, sizes and
    /// schedule), else inferred from an official state dict's shapes. `patchNums` overrides the schedule (needed when
    /// the sequence length is not one of the official ones); it must cover exactly len(pos_1LC) tokens.
    public static func infer(from a: TensorArchive, patchNums override: [Int]? = nil) throws -> VARConfig {
        let meta = (a as? SafetensorsFile)?.metadata ?? [:]
        guard a.contains("pos_1LC") && a.contains("blocks.0.attn.mat_qkv.weight") else {
            throw VARError.notVAR(
                path: a.path,
                reason: "no 'pos_1LC' / 'blocks.0.attn.mat_qkv.weight' keys (a DiT or VAE file? a nested checkpoint needs --key)")
        }
        var c: VARConfig
        if meta[.model] == VARModel.checkpointName, let text = meta[.config] {
            do { c = try JSONDecoder().decode(VARConfig.self, from: Data(text.utf8)) } catch {
                throw VARError.notVAR(path: a.path, reason: "metadata '\(MetadataKey.config.rawValue)' is not a VAR config: \(error)")
            }
            if let override { c.patchNums = override }
        } else {
            c = try inferOfficial(from: a, meta: meta, patchNums: override)
        }
        guard c.patchNums.count <= limits.scales, c.patchNums.allSatisfy({ (1...limits.patch).contains($0) }) else {
            throw VARError.patchNums(
                "\(a.path): patch numbers \(c.patchNums.prefix(8)) out of range (at most \(limits.scales) scales of 1...\(limits.patch))")
        }
        let seq = try a.requireInfo("pos_1LC").shape
        guard c.patchNums.count >= 2, c.patchNums.allSatisfy({ $0 > 0 }), zip(c.patchNums, c.patchNums.dropFirst()).allSatisfy({ $0 < $1 }),
            seq.count == 3, c.totalTokens == seq[1]
        else {
            throw VARError.patchNums(
                "--patch-nums \(c.patchNums.map(String.init).joined(separator: ",")) is impossible for \(a.path): it covers \(c.totalTokens) tokens but len(pos_1LC) = \(seq.count == 3 ? seq[1] : -1) (need >= 2 strictly increasing sizes whose squares sum to \(seq.count == 3 ? seq[1] : -1))"
            )
        }
        if let lvl = a.info("lvl_embed.weight")?.shape, lvl.count == 2, lvl[0] != c.scales.count {
            throw VARError.patchNums("--patch-nums has \(c.scales.count) scales but \(a.path) key 'lvl_embed.weight' has \(lvl[0]) levels")
        }
        do { try c.validate() } catch { throw VARError.notVAR(path: a.path, reason: "\(error)") }
        return c
    }

    /// Official state dicts: sizes from the shapes, heads from scale_mul_1H11 (or `varlab.heads`), schedule from
    /// len(pos_1LC).
    static func inferOfficial(from a: TensorArchive, meta: [String: String], patchNums override: [Int]?) throws -> VARConfig {
        func shape(_ k: String, rank: Int) throws -> [Int] {
            let s = try a.requireInfo(k).shape
            guard s.count == rank else {
                throw CheckpointError.wrongShape(path: a.path, key: k, expected: [Int](repeating: -1, count: rank), actual: s)
            }
            return s
        }
        let pos = try shape("pos_1LC", rank: 3)
        let width = pos[2], seq = pos[1]
        var depth = 0
        while a.contains("blocks.\(depth).attn.mat_qkv.weight") { depth += 1 }
        let qkv = try shape("blocks.0.attn.mat_qkv.weight", rank: 2)
        guard qkv == [3 * width, width] else {
            throw CheckpointError.wrongShape(path: a.path, key: "blocks.0.attn.mat_qkv.weight", expected: [3 * width, width], actual: qkv)
        }
        let fc1 = try shape("blocks.0.ffn.fc1.weight", rank: 2)
        let head = try shape("head.weight", rank: 2)
        let word = try shape("word_embed.weight", rank: 2)
        let cls = try shape("class_emb.weight", rank: 2)
        // Head dim 64 in the released models; the per-head temperature (one entry per head) says it directly.
        var heads = width / 64
        if let h = meta.int(.heads) { heads = h }
        if let s = a.info("blocks.0.attn.scale_mul_1H11")?.shape, s.count == 4 { heads = s[1] }
        guard heads > 0 && width % heads == 0 else {
            throw VARError.notVAR(path: a.path, reason: "cannot split width \(width) into heads of 64")
        }
        let pn: [Int]
        if let override {
            pn = override
        } else if let text = meta[.patchNums] {
            pn = text.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        } else if let p = officialPatchNums[seq] {
            pn = p
        } else {
            throw VARError.patchNums(
                "\(a.path): sequence length \(seq) (len of pos_1LC) is not an official schedule (680 or 2240); give --patch-nums")
        }
        return VARConfig(
            depth: depth, width: width, heads: heads, mlpHidden: fc1[0], sharedAdaLN: a.contains("shared_ada_lin.1.weight"),
            attnL2Norm: a.contains("blocks.0.attn.scale_mul_1H11"),
            vocabSize: head[0], cvae: word[1], numClasses: cls[0] - 1, patchNums: pn)
    }
}

public enum VARError: Error, CustomStringConvertible {
    case notVAR(path: String, reason: String)
    case patchNums(String)
    case mismatch(String)
    case badInput(String)
    public var description: String {
        switch self {
        case let .notVAR(path, reason): return "\(path): not a VAR transformer checkpoint: \(reason)"
        case let .patchNums(s), let .mismatch(s), let .badInput(s): return s
        }
    }
}
