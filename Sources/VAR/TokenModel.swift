import Autoencoders
import Foundation
import Tensor

/// One step of token generation: the VQ scale it fills and the positions of that scale's row-major pn x pn map.
public struct TokenStep: Sendable, Equatable {
    public let scale: Int
    public let positions: Range<Int>
    public init(scale: Int, positions: Range<Int>) { self.scale = scale; self.positions = positions }
}

/// What the token sampler (`NextScaleSampler`) drives: a class-conditional model of a multi-scale VQ-VAE's token
/// maps, predicted step by step with a KV cache. VAR predicts a whole scale per step; the raster baseline one token
/// of the finest map per step. Sampling options, guidance, more-smooth and editing hooks live in the sampler, so
/// every model gets all of them.
public protocol TokenModel {
    associatedtype State
    var numClasses: Int { get }
    var vocabSize: Int { get }
    /// The VQ-VAE scale schedule the model was built for.
    var patchNums: [Int] { get }
    /// The generation order.
    var steps: [TokenStep] { get }
    /// Starts a batch; `labels` may hold the null class `numClasses` (the unconditional half of guidance).
    /// `pruning` (opt-in FastVAR) is refused by models that cannot prune.
    func beginInference(labels: [Int], pruning: TokenPruning?) throws -> State
    /// The input of step 0 (one row per label).
    func firstInput(_ state: State) -> Tensor
    /// The input of step `index` > 0 for B samples, from the tokens drawn at the previous step (B x n) or the f_hat
    /// of the scales completed so far [B, Cvae, h, w].
    func input(step index: Int, previousTokens: [Int], fhat: Tensor, quantizer: MultiScaleQuantizer, state: State) -> Tensor
    /// Logits [rows, n, V] of the step whose input is `x`.
    func step(_ x: Tensor, state: inout State) -> Tensor
    /// The tokens an image's latent has in this model's terms, per scale (editing keeps them where the mask says).
    func groundTruthTokens(latent f: Tensor, quantizer: MultiScaleQuantizer) throws -> [[Int]]
}

extension VARModel: TokenModel {
    public var numClasses: Int { config.numClasses }
    public var vocabSize: Int { config.vocabSize }
    public var patchNums: [Int] { config.patchNums }

    public var steps: [TokenStep] {
        let pns = config.patchNums
        if config.variant == .ar {
            let last = pns.count - 1
            return (0..<(pns[last] * pns[last])).map { TokenStep(scale: last, positions: $0..<($0 + 1)) }
        }
        return pns.indices.map { TokenStep(scale: $0, positions: 0..<(pns[$0] * pns[$0])) }
    }

    public func input(step index: Int, previousTokens: [Int], fhat: Tensor, quantizer q: MultiScaleQuantizer, state: State) -> Tensor {
        let s = steps[index]
        if config.variant == .ar {
            // The input at sequence position p (which predicts map position p) embeds the token drawn at p - 1.
            return tokenInput(previousTokens, from: s.positions.lowerBound, count: s.positions.count, state: state)
        }
        return scaleInput(q.downsampledTokens(fhat, pn: config.patchNums[s.scale]), scale: s.scale, state: state)
    }

    public func groundTruthTokens(latent f: Tensor, quantizer q: MultiScaleQuantizer) throws -> [[Int]] {
        var maps = try q.tokens(latent: f)
        if config.variant == .ar {
            maps[maps.count - 1] = q.finestOnlyTokens(latent: f)
        }
        return maps
    }
}
