import Foundation

/// Hyper-parameters of a trainable VAR transformer (official `models.var.VAR` with attn_l2_norm = False, per-block
/// ada_lin, AdaLNBeforeHead) and of the two ablation variants trained by the same code:
/// - `var`: next-scale prediction over all scales (block-causal mask), AdaLN conditioning;
/// - `ar`: raster-order next-token prediction over the finest scale only (causal mask), same AdaLN blocks;
///   tokens = the frozen tokenizer's codebook applied once to the full-size latent (single-scale VQ);
/// - `plain-ln`: next-scale like `var`, but plain LayerNorm (affine) blocks and head, no AdaLN; the class enters only
///   as the start token (class_emb + pos_start), which VAR also uses.
public struct VARTrainConfig: Codable, Equatable, Sendable {
    public enum Variant: String, Codable, Sendable, CaseIterable {
        case next = "var"
        case ar = "ar"
        case plainLN = "plain-ln"
    }

    public var variant: Variant = .next
    public var depth = 6
    public var width = 128
    public var heads = 4
    public var mlpRatio: Double = 4
    public var vocabSize = 512
    /// Latent channels of the VQ-VAE (input width of word_embed).
    public var cvae = 16
    public var numClasses = 10
    public var patchNums = [1, 2, 3, 4, 5, 6, 8]
    /// Probability of replacing the label by the null class (index numClasses) during training (official 0.1).
    public var condDropRate: Float = 0.1
    public var normEps: Float = 1e-6
    public init() {}

    public var mlpHidden: Int { Int((Double(width) * mlpRatio).rounded()) }
    public var headDim: Int { width / heads }
    /// Token maps the model predicts: every scale (var / plain-ln) or the finest only (ar).
    public var scales: [Int] { variant == .ar ? [patchNums.last!] : patchNums }
    public var totalTokens: Int { scales.reduce(0) { $0 + $1 * $1 } }
    /// Start tokens: pn_0^2 for next-scale models, 1 for the raster model.
    public var firstL: Int { variant == .ar ? 1 : patchNums[0] * patchNums[0] }
    public var adaLN: Bool { variant != .plainLN }
    /// Level (scale index) of every sequence position (all 0 for ar).
    public var levels: [Int] { scales.enumerated().flatMap { Array(repeating: $0.offset, count: $0.element * $0.element) } }

    public func validate() throws {
        guard depth >= 1, width >= 1, heads >= 1, width % heads == 0, mlpRatio > 0, vocabSize >= 2, cvae >= 1,
              numClasses >= 1, condDropRate >= 0, condDropRate < 1 else {
            throw TrainingError.config("invalid VAR config (depth \(depth), width \(width), heads \(heads): width must be divisible by heads)")
        }
        guard patchNums.count >= 2, patchNums.allSatisfy({ $0 >= 1 }), zip(patchNums, patchNums.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw TrainingError.config("impossible patch numbers \(patchNums) (need >= 2 strictly increasing sizes)")
        }
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
}
