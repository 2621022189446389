import Foundation
import ModelIO

/// Shape of a VAR transformer, inferred from its weights (official `models.var.VAR`).
public struct VARConfig: Sendable, Equatable {
    public var depth: Int
    public var width: Int
    public var heads: Int
    public var mlpHidden: Int
    public var sharedAdaLN: Bool
    public var attnL2Norm: Bool
    public var vocabSize: Int
    /// Latent channels of the VQ-VAE (input width of word_embed).
    public var cvae: Int
    public var numClasses: Int
    public var patchNums: [Int]
    public var normEps: Float = 1e-6

    public var headDim: Int { width / heads }
    public var totalTokens: Int { patchNums.reduce(0) { $0 + $1 * $1 } }
    public var firstL: Int { patchNums[0] * patchNums[0] }
    /// [begin, end) of each scale in the token sequence.
    public var beginEnds: [(Int, Int)] {
        var out: [(Int, Int)] = []
        var cur = 0
        for pn in patchNums { out.append((cur, cur + pn * pn)); cur += pn * pn }
        return out
    }

    /// The two official scale schedules, keyed by sequence length (len of pos_1LC).
    public static let officialPatchNums: [Int: [Int]] = [
        680: [1, 2, 3, 4, 5, 6, 8, 10, 13, 16],      // 256 px
        2240: [1, 2, 3, 4, 6, 9, 13, 18, 24, 32],    // 512 px
    ]

    public init(depth: Int, width: Int, heads: Int, mlpHidden: Int, sharedAdaLN: Bool, attnL2Norm: Bool = true,
                vocabSize: Int, cvae: Int, numClasses: Int, patchNums: [Int]) {
        self.depth = depth; self.width = width; self.heads = heads; self.mlpHidden = mlpHidden
        self.sharedAdaLN = sharedAdaLN; self.attnL2Norm = attnL2Norm; self.vocabSize = vocabSize; self.cvae = cvae
        self.numClasses = numClasses; self.patchNums = patchNums
    }

    /// Official VAR-d{depth}: width 64*depth, heads = depth (head dim 64), MLP 4x, 1000 classes, VQ-VAE vocab 4096 /
    /// Cvae 32, 256 px schedule; shared AdaLN only for d36 (as released).
    public static func official(depth: Int) -> VARConfig {
        VARConfig(depth: depth, width: 64 * depth, heads: depth, mlpHidden: 4 * 64 * depth, sharedAdaLN: depth == 36,
                  vocabSize: 4096, cvae: 32, numClasses: 1000, patchNums: officialPatchNums[680]!)
    }

    /// Reads the configuration from a VAR state dict. `patchNums` overrides the schedule (needed when the sequence
    /// length is not one of the official ones); it must cover exactly len(pos_1LC) tokens.
    public static func infer(from a: TensorArchive, patchNums override: [Int]? = nil) throws -> VARConfig {
        func shape(_ k: String, rank: Int) throws -> [Int] {
            let s = try a.requireInfo(k).shape
            guard s.count == rank else {
                throw CheckpointError.wrongShape(path: a.path, key: k, expected: [Int](repeating: -1, count: rank), actual: s)
            }
            return s
        }
        guard a.contains("pos_1LC") && a.contains("blocks.0.attn.mat_qkv.weight") else {
            throw VARError.notVAR(path: a.path, reason: "no 'pos_1LC' / 'blocks.0.attn.mat_qkv.weight' keys (a DiT or VAE file? a nested checkpoint needs --key)")
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
        // varlab-trained files (attn_l2_norm = False, no scale_mul_1H11) record heads / schedule in their metadata.
        let meta = (a as? SafetensorsFile)?.metadata ?? [:]
        if let h = meta.int(.heads) { heads = h }
        if let s = a.info("blocks.0.attn.scale_mul_1H11")?.shape, s.count == 4 { heads = s[1] }
        guard heads > 0 && width % heads == 0 else {
            throw VARError.notVAR(path: a.path, reason: "cannot split width \(width) into heads of 64")
        }
        let shared = a.contains("shared_ada_lin.1.weight")
        let pn: [Int]
        if let override {
            pn = override
        } else if let text = meta[.patchNums] {
            pn = text.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        } else if let p = officialPatchNums[seq] {
            pn = p
        } else {
            throw VARError.patchNums("\(a.path): sequence length \(seq) (len of pos_1LC) is not an official schedule (680 or 2240); give --patch-nums")
        }
        let total = pn.reduce(0) { $0 + $1 * $1 }
        guard pn.count >= 2, pn.allSatisfy({ $0 > 0 }), zip(pn, pn.dropFirst()).allSatisfy({ $0 < $1 }), total == seq else {
            throw VARError.patchNums("--patch-nums \(pn.map(String.init).joined(separator: ",")) is impossible for \(a.path): it covers \(total) tokens but len(pos_1LC) = \(seq) (need >= 2 strictly increasing sizes whose squares sum to \(seq))")
        }
        if let lvl = a.info("lvl_embed.weight")?.shape, lvl.count == 2, lvl[0] != pn.count {
            throw VARError.patchNums("--patch-nums has \(pn.count) scales but \(a.path) key 'lvl_embed.weight' has \(lvl[0]) levels")
        }
        return VARConfig(depth: depth, width: width, heads: heads, mlpHidden: fc1[0], sharedAdaLN: shared,
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
