import DiT
import Foundation
import Layers
import Tensor

/// A trainable DiT with the official parameter names and math (facebookresearch/DiT `models.py`), so its checkpoint
/// loads unchanged in the inference `DiTModel`:
///   x_embedder.proj (patch conv, stride p) + pos_embed (fixed 2-D sin-cos buffer, saved, never trained)
///   t_embedder.mlp.{0,2}: Linear(256, D) -> SiLU -> Linear(D, D) on the cos-sin timestep features
///   y_embedder.embedding_table: [classes + 1, D], the last row is the null class (CFG)
///   c = t_emb + y_emb; blocks see SiLU(c) (their adaLN_modulation = Sequential(SiLU, Linear))
///   blocks.i (adaLN-Zero), final_layer, unpatchify.
/// Initialisation = `initialize_weights`: xavier-uniform Linear weights with zero biases, xavier-uniform patch conv
/// (as a [D, C p p] matrix) with zero bias, N(0, 0.02) label table and timestep MLP weights, zero adaLN_modulation
/// in every block and zero final layer (adaLN and linear), so the untrained model outputs 0.
public final class TrainableDiT {
    public static let modelName = "dit"
    public let config: DiTTrainConfig
    public let patchEmbed: ConvLayer
    /// Fixed [1, T, D] sin-cos table (a buffer: saved as `pos_embed`, not in `parameters`).
    public let posEmbed: Parameter
    public let tMLP1: LinearLayer, tMLP2: LinearLayer
    public let labelTable: EmbeddingLayer
    public let blocks: [TrainableDiTBlock]
    public let finalLayer: TrainableDiTFinalLayer
    let tSiLU = SiLULayer(), cSiLU = SiLULayer()
    private var batch = 0

    public init(config c: DiTTrainConfig, seed: UInt64) throws {
        try c.validate()
        config = c
        let d = c.hiddenSize, p = c.patchSize
        patchEmbed = ConvLayer("x_embedder.proj", cin: c.inChannels, cout: d, kernel: p, stride: p, padding: 0, seed: seed, stream: 0)
        posEmbed = Parameter("pos_embed", DiTEmbeddings.sinCos2D(dim: d, gridSize: c.gridSize).reshaped([1, c.numPatches, d]),
                             decay: false)
        tMLP1 = LinearLayer("t_embedder.mlp.0", inFeatures: DiTConfig.frequencyEmbeddingSize, outFeatures: d, seed: seed, stream: 2)
        tMLP2 = LinearLayer("t_embedder.mlp.2", inFeatures: d, outFeatures: d, seed: seed, stream: 4)
        labelTable = EmbeddingLayer("y_embedder.embedding_table", count: c.numClasses + 1, dim: d, std: 0.02, seed: seed, stream: 6)
        blocks = (0..<c.depth).map { i in
            TrainableDiTBlock("blocks.\(i)", dim: d, heads: c.numHeads, mlpHidden: c.mlpHiddenSize, seed: seed, stream: 100 + 16 * UInt64(i))
        }
        finalLayer = TrainableDiTFinalLayer(dim: d, outFeatures: p * p * c.inChannels, seed: seed, stream: 8)

        // initialize_weights (the streams are disjoint from the constructors' so every tensor is a fresh draw).
        var stream: UInt64 = 1 << 20
        func xavier(_ w: Parameter, fanIn: Int, fanOut: Int) {
            stream += 1
            w.value = Init.uniform(w.value.shape, bound: (6 / Float(fanIn + fanOut)).squareRoot(), seed: seed, stream: stream)
        }
        func zero(_ p: Parameter) { p.value = Tensor(zeros: p.value.shape) }
        func normal(_ p: Parameter, std: Float) {
            stream += 1
            var rng = PhiloxRandom(seed: seed, stream: stream)
            p.value = Tensor(shape: p.value.shape, data: (0..<p.value.count).map { _ in rng.normal() * std })
        }
        for l in blocks.flatMap(\.linears) + [tMLP1, tMLP2, finalLayer.linear, finalLayer.adaLN] {
            xavier(l.weight, fanIn: l.weight.value.shape[1], fanOut: l.weight.value.shape[0])
            zero(l.bias)
        }
        xavier(patchEmbed.weight, fanIn: c.inChannels * p * p, fanOut: d)
        zero(patchEmbed.bias)
        normal(labelTable.weight, std: 0.02)   // the constructor drew it already; keep the official order explicit
        normal(tMLP1.weight, std: 0.02)
        normal(tMLP2.weight, std: 0.02)
        for b in blocks { zero(b.adaLN.weight); zero(b.adaLN.bias) }
        for p in finalLayer.parameters { zero(p) }
    }

    /// Trainable parameters (the optimizer's list), in the official state-dict order.
    public var parameters: [Parameter] {
        patchEmbed.parameters + tMLP1.parameters + tMLP2.parameters + labelTable.parameters
            + blocks.flatMap(\.parameters) + finalLayer.parameters
    }

    /// Everything the inference model loads: the parameters plus the fixed `pos_embed`.
    public var stateDict: [Parameter] { [posEmbed] + parameters }

    /// x [B, C, S, S] (scaled latents x_t), t original timesteps, y labels (numClasses = null) -> epsilon [B, C, S, S].
    public func forward(_ x: Tensor, t: [Float], y: [Int]) -> Tensor {
        let c = config, n = x.shape[0], d = c.hiddenSize, tokens = c.numPatches
        batch = n
        var h = patchEmbed.forward(x).reshaped([n, d, tokens]).permuted([0, 2, 1])
        posEmbed.value.data.withUnsafeBufferPointer { pp in h.data.withUnsafeMutableBufferPointer { ph in
            for b in 0..<n { for i in 0..<(tokens * d) { ph[b * tokens * d + i] += pp[i] } }
        } }
        var cond = tMLP2.forward(tSiLU.forward(tMLP1.forward(DiTEmbeddings.timestepFeatures(t))))
        cond.addInPlace(labelTable.forward(y))
        let siluC = cSiLU.forward(cond)
        for blk in blocks { h = blk.forward(h, siluC: siluC) }
        return unpatchify(finalLayer.forward(h, siluC: siluC))
    }

    /// Backward of `forward` for dL/d(output); accumulates every parameter gradient.
    public func backward(_ dOut: Tensor) {
        let c = config, n = batch, d = c.hiddenSize
        var (dh, dSiluC) = finalLayer.backward(patchify(dOut))
        for blk in blocks.reversed() {
            let r = blk.backward(dh)
            dh = r.dx
            dSiluC.addInPlace(r.dSiluC)
        }
        let dCond = cSiLU.backward(dSiluC)
        labelTable.backward(dCond)
        _ = tMLP1.backward(tSiLU.backward(tMLP2.backward(dCond)))
        _ = patchEmbed.backward(dh.permuted([0, 2, 1]).reshaped([n, d, c.gridSize, c.gridSize]))
    }

    /// (N, T, p*p*C) -> (N, C, S, S), the official `unpatchify` (einsum nhwpqc -> nchpwq).
    func unpatchify(_ x: Tensor) -> Tensor {
        let n = x.shape[0], p = config.patchSize, g = config.gridSize, co = config.inChannels
        return x.reshaped([n, g, g, p, p, co]).permuted([0, 5, 1, 3, 2, 4]).reshaped([n, co, g * p, g * p])
    }

    /// The adjoint of `unpatchify` (a permutation, so its inverse).
    func patchify(_ x: Tensor) -> Tensor {
        let n = x.shape[0], p = config.patchSize, g = config.gridSize, co = config.inChannels
        return x.reshaped([n, co, g, p, g, p]).permuted([0, 2, 4, 3, 5, 1]).reshaped([n, g * g, p * p * co])
    }
}
