import Foundation
import Autoencoders
import ModelIO
import Tensor

/// The VAR next-scale transformer (official `models.var.VAR`, inference). Answers one question: given the
/// class and the (f_hat-derived) inputs of the scales so far, what are the logits of the next scale's tokens.
public struct VARModel: Sendable {
    public let config: VARConfig
    let blocks: [VARBlock]
    let wordEmbed: Linear
    /// [numClasses + 1, C]; the last row is the null class used by classifier-free guidance.
    let classEmb: Tensor
    /// [firstL, C]
    let posStart: Tensor
    /// lvl_embed(lvl_1L) + pos_1LC: [L, C]
    let lvlPos: Tensor
    let sharedAdaLin: Linear?
    let headAdaLin: Linear
    let head: Linear

    /// Loads a VAR state dict (official key names). `patchNums` overrides the schedule inferred from len(pos_1LC).
    public init(archive a: TensorArchive, patchNums: [Int]? = nil) throws {
        let c = try VARConfig.infer(from: a, patchNums: patchNums)
        config = c
        let r = WeightReader(a)
        let w = c.width, L = c.totalTokens
        blocks = try (0..<c.depth).map { try VARBlock(r["blocks"][String($0)], c) }
        wordEmbed = try r.linear("word_embed", inFeatures: c.cvae, outFeatures: w)
        classEmb = try r.tensor("class_emb.weight", shape: [c.numClasses + 1, w])
        posStart = try r.tensor("pos_start", shape: [1, c.firstL, w]).reshaped([c.firstL, w])
        let pos = try r.tensor("pos_1LC", shape: [1, L, w]).reshaped([L, w])
        let lvl = try r.tensor("lvl_embed.weight", shape: [c.patchNums.count, w])
        // lvl_1L: the scale index of every token (recomputed from the schedule; it is a buffer in the file).
        var lp = [Float](repeating: 0, count: L * w)
        for (si, (b, e)) in c.beginEnds.enumerated() {
            for t in b..<e { for j in 0..<w { lp[t * w + j] = lvl.data[si * w + j] + pos.data[t * w + j] } }
        }
        lvlPos = Tensor(shape: [L, w], data: lp)
        sharedAdaLin = c.sharedAdaLN ? try r["shared_ada_lin"].linear("1", inFeatures: w, outFeatures: 6 * w) : nil
        headAdaLin = try r["head_nm"]["ada_lin"].linear("1", inFeatures: w, outFeatures: 2 * w)
        head = try r.linear("head", inFeatures: w, outFeatures: c.vocabSize)
    }

    /// Checks that this transformer and a VQ-VAE agree on vocabulary and latent width; the error names both files.
    public func checkCompatible(vocabSize: Int, cvae: Int, varPath: String, vaePath: String) throws {
        if vocabSize != config.vocabSize || cvae != config.cvae {
            throw VARError.mismatch("VAR \(varPath) (vocab \(config.vocabSize), Cvae \(config.cvae)) does not match VQ-VAE \(vaePath) (vocab \(vocabSize), Cvae \(cvae))")
        }
    }

    /// Block-causal additive mask [L, L]: a token of scale i sees every token of scales <= i.
    public func blockCausalMask() -> Tensor {
        let L = config.totalTokens
        var lvl = [Int](repeating: 0, count: L)
        for (si, (b, e)) in config.beginEnds.enumerated() { for t in b..<e { lvl[t] = si } }
        var m = [Float](repeating: 0, count: L * L)
        for i in 0..<L { for j in 0..<L where lvl[j] > lvl[i] { m[i * L + j] = -.infinity } }
        return Tensor(shape: [L, L], data: m)
    }

    /// Per-call conditioning: the class embedding and every block's modulation vectors.
    public struct Conditioning: Sendable {
        public let cond: Tensor          // [B, C]
        let ada: [Tensor]                // per block [B, 6C]
        let headAda: Tensor              // [B, 2C]
        public var batch: Int { cond.shape[0] }
    }

    public func conditioning(labels: [Int]) throws -> Conditioning {
        for l in labels where l < 0 || l > config.numClasses {
            throw VARError.badInput("class id \(l) outside 0..\(config.numClasses - 1) (\(config.numClasses) = null class)")
        }
        let cond = Embedding(weight: classEmb)(labels)
        let sc = cond.silu()
        let shared = sharedAdaLin.map { $0(sc) }
        return Conditioning(cond: cond, ada: blocks.map { $0.modulation(siluCond: sc, shared: shared) }, headAda: headAdaLin(sc))
    }

    /// Input of the first scale: class embedding + pos_start + lvl_pos[:firstL], [B, firstL, C].
    public func firstInput(_ c: Conditioning) -> Tensor {
        let (b, w, fl) = (c.batch, config.width, config.firstL)
        var out = [Float](repeating: 0, count: b * fl * w)
        for bi in 0..<b { for t in 0..<fl { for j in 0..<w {
            out[(bi * fl + t) * w + j] = (c.cond.data[bi * w + j] + posStart.data[t * w + j]) + lvlPos.data[t * w + j]
        } } }
        return Tensor(shape: [b, fl, w], data: out)
    }

    /// Input of scale si >= 1 from the VQ features of that scale [B, pn^2, Cvae]: word_embed(f) + lvl_pos.
    public func scaleInput(_ features: Tensor, scale si: Int) -> Tensor {
        let (b, e) = config.beginEnds[si]
        return addPositions(wordEmbed(features), from: b, to: e)
    }

    func addPositions(_ x: Tensor, from b: Int, to e: Int) -> Tensor {
        let w = config.width, n = e - b
        var out = x
        out.data.withUnsafeMutableBufferPointer { po in
            for r in 0..<(x.count / (n * w)) { for t in 0..<n { for j in 0..<w {
                po[(r * n + t) * w + j] += lvlPos.data[(b + t) * w + j]
            } } }
        }
        return out
    }

    /// AdaLN before the head, then the head: logits [B, l, V].
    func logits(_ x: Tensor, _ c: Conditioning) -> Tensor {
        head(modulate(LayerNorm(eps: config.normEps)(x), c.headAda, scale: 0, shift: 1))
    }

    /// Teacher-forced forward (official `VAR.forward` with cond_drop_rate 0): logits [B, L, V] for all scales at once,
    /// with the block-causal mask. `varInput` is [B, L - firstL, Cvae] (`idxBl_to_var_input`).
    public func forward(labels: [Int], varInput: Tensor) throws -> Tensor {
        let c = try conditioning(labels: labels)
        let (b, w, L, fl) = (labels.count, config.width, config.totalTokens, config.firstL)
        guard varInput.shape == [b, L - fl, config.cvae] else {
            throw VARError.badInput("teacher-forcing input has shape \(varInput.shape), expected \([b, L - fl, config.cvae])")
        }
        let sos = firstInput(c)
        let rest = addPositions(wordEmbed(varInput), from: fl, to: L)
        var x = Tensor.cat([sos, rest], dim: 1)
        let mask = blockCausalMask()
        var noCache: KVCache? = nil
        for (i, blk) in blocks.enumerated() { x = blk(x, ada: c.ada[i], config: config, mask: mask, cache: &noCache) }
        _ = w
        return logits(x, c)
    }

    /// KV-cached incremental inference state (one cache per block).
    public struct State: Sendable {
        public let conditioning: Conditioning
        var caches: [KVCache?]
        public internal(set) var scale = 0
    }

    public func beginInference(labels: [Int]) throws -> State {
        let c = try conditioning(labels: labels)
        return State(conditioning: c, caches: Array(repeating: KVCache(), count: blocks.count))
    }

    /// Runs one scale: `x` is that scale's input [B, pn^2, C] (`firstInput` or `scaleInput`); returns its logits
    /// [B, pn^2, V]. Each step attends to all previous scales (cached) and itself - no mask needed.
    public func step(_ x: Tensor, state: inout State) -> Tensor {
        var h = x
        for (i, blk) in blocks.enumerated() {
            h = blk(h, ada: state.conditioning.ada[i], config: config, mask: nil, cache: &state.caches[i])
        }
        state.scale += 1
        return logits(h, state.conditioning)
    }
}
