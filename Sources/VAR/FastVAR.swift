import Foundation
import Tensor

/// Opt-in, training-free acceleration of the last scales: FastVAR's cached token pruning (Guo et al. 2025,
/// "FastVAR: Linear Visual Autoregressive Modeling via Cached Token Pruning", csguoh/FastVAR). At each of the last
/// `dropRatios.count` scales, every block from `firstPrunedBlock` on runs its attention and its FFN only on the
/// pivotal tokens (those farthest from the scale's mean token, ‖x_t - mean(x)‖², a high-frequency proxy); the
/// pruned slots are restored from the same sub-layer's output at the scale just before the first pruned one
/// (cached, area-resized to the current size). Pruned tokens add nothing to the KV cache. The logits of every
/// position are still computed, so the sampler is unchanged. Never the default.
public struct TokenPruning: Sendable, Equatable {
    /// Fraction of tokens dropped at each of the last scales, coarsest first (the FastVAR defaults: 40% and 50%).
    public var dropRatios: [Double] = [0.4, 0.5]
    /// Blocks before this index run on every token (FastVAR prunes from the fourth block on).
    public var firstPrunedBlock = 3
    public init() {}
    public init(dropRatios: [Double], firstPrunedBlock: Int = 3) {
        self.dropRatios = dropRatios; self.firstPrunedBlock = firstPrunedBlock
    }

    /// The settings alone: at least one ratio, each in [0, 1).
    public func validate() throws {
        guard !dropRatios.isEmpty, dropRatios.allSatisfy({ $0 >= 0 && $0 < 1 }) else {
            throw VARError.badInput("--fast-ratios must be fractions in [0, 1), one per pruned scale, coarsest first; got \(dropRatios)")
        }
        guard firstPrunedBlock >= 0 else { throw VARError.badInput("the first pruned block must be >= 0, got \(firstPrunedBlock)") }
    }

    /// For a model of `scales` scales: at least one scale before the pruned ones (it is what they restore from).
    public func validate(scales: Int) throws {
        try validate()
        guard dropRatios.count < scales else {
            throw VARError.badInput(
                "--fast-ratios gives \(dropRatios.count) drop ratios, but a model of \(scales) scales can prune at most \(scales - 1)")
        }
    }
}

/// What one block does at one step under pruning.
enum PruningStep {
    /// The scale before the first pruned one: run on every token and keep each sub-layer's (gated) output.
    case record
    /// A pruned scale: run on `keep` pivotal tokens of the pn x pn map, restore the rest from the recorded outputs.
    case prune(keep: Int, pn: Int)
}

/// A block's recorded sub-layer outputs [B, n, C] at the recording scale (pn x pn).
struct PrunedBlockCache: Sendable {
    var attention = Tensor(zeros: [0]), ffn = Tensor(zeros: [0])
    var pn = 0
}

public enum PivotalTokens {
    /// Per sample, the `keep` tokens of x [B, n, C] farthest from the sample's mean token (squared L2), ties to the
    /// lower index, returned in sequence order. Per sample, so a sample's choice never depends on the batch.
    public static func select(_ x: Tensor, keep: Int) -> [[Int]] {
        let (b, n, c) = (x.shape[0], x.shape[1], x.shape[2])
        return (0..<b).map { s in
            x.data.withUnsafeBufferPointer { p in
                let base = p.baseAddress! + s * n * c
                var mean = [Float](repeating: 0, count: c)
                for t in 0..<n { for j in 0..<c { mean[j] += base[t * c + j] } }
                for j in 0..<c { mean[j] /= Float(n) }
                let score: [Float] = (0..<n).map { t in
                    var d: Float = 0
                    for j in 0..<c { let v = base[t * c + j] - mean[j]; d += v * v }
                    return d
                }
                let order = (0..<n).sorted { score[$0] > score[$1] || (score[$0] == score[$1] && $0 < $1) }
                return Array(order.prefix(keep)).sorted()
            }
        }
    }

    /// Rows `rows[s]` of each sample of x [B, n, C] -> [B, keep, C].
    static func gather(_ x: Tensor, _ rows: [[Int]]) -> Tensor {
        let (b, n, c) = (x.shape[0], x.shape[1], x.shape[2]), keep = rows[0].count
        var out = [Float](repeating: 0, count: b * keep * c)
        for s in 0..<b {
            for (k, t) in rows[s].enumerated() { for j in 0..<c { out[(s * keep + k) * c + j] = x.data[(s * n + t) * c + j] } }
        }
        return Tensor(shape: [b, keep, c], data: out)
    }

    /// The recorded output [B, pc², C] area-resized to pn x pn, with the computed rows [B, keep, C] written at
    /// their positions: [B, pn², C].
    static func restore(_ computed: Tensor, rows: [[Int]], cached: Tensor, cachedPN pc: Int, pn: Int) -> Tensor {
        let (b, c) = (cached.shape[0], cached.shape[2]), keep = rows[0].count
        var full = cached.reshaped([b, pc, pc, c]).permuted([0, 3, 1, 2]).adaptiveAveragePooled(height: pn, width: pn)
            .permuted([0, 2, 3, 1]).reshaped([b, pn * pn, c])
        for s in 0..<b {
            for (k, t) in rows[s].enumerated() {
                for j in 0..<c {
                    full.data[(s * pn * pn + t) * c + j] = computed.data[(s * keep + k) * c + j]
                }
            }
        }
        return full
    }
}

extension VARBlock {
    /// Inference under pruning (see `TokenPruning`): the same block as `callAsFunction`, with each sub-layer's gated
    /// output computed on the pivotal tokens only and restored from `record`ed outputs.
    func pruned(_ x: Tensor, ada: Tensor?, cache: inout KVCache?, step: PruningStep, record: inout PrunedBlockCache) -> Tensor {
        var h = x
        /// y * ada[gamma chunk] per sample (plain blocks: y).
        func gated(_ y: Tensor, _ gi: Int) -> Tensor {
            guard let ada else { return y }
            var out = Tensor(zeros: y.shape)
            addScaled(&out, y, ada, gamma: gi, b: y.shape[0], l: y.shape[1], w: y.shape[2])
            return out
        }
        func sublayer(_ input: Tensor, _ run: (Tensor) -> Tensor, _ recorded: Tensor) -> Tensor {
            switch step {
            case .record:
                return run(input)
            case .prune(let keep, let pn):
                let rows = PivotalTokens.select(input, keep: keep)
                return PivotalTokens.restore(
                    run(PivotalTokens.gather(input, rows)), rows: rows, cached: recorded, cachedPN: record.pn, pn: pn)
            }
        }
        let a = sublayer(
            h,
            { xs in
                let n = ada.map { modulate(self.ln1(xs), $0, scale: 2, shift: 4) } ?? self.ln1(xs)
                return gated(self.attn(n, mask: nil, cache: &cache), 0)
            }, record.attention)
        h.addInPlace(a)
        let f = sublayer(
            h,
            { xs in
                let n = ada.map { modulate(self.ln2(xs), $0, scale: 3, shift: 5) } ?? self.ln2(xs)
                return gated(self.fc2(self.fc1(n).geluTanh()), 1)
            }, record.ffn)
        h.addInPlace(f)
        if case .record = step {
            record = PrunedBlockCache(attention: a, ffn: f, pn: Int(Double(x.shape[1]).squareRoot().rounded()))
        }
        return h
    }
}
