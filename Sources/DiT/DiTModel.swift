import Foundation
import Layers
import ModelIO
import Tensor

/// Which output channels classifier-free guidance mixes.
public enum CFGChannels: String, Sendable, CaseIterable {
    /// The official `forward_with_cfg`: `eps, rest = out[:, :3], out[:, 3:]` - only the first THREE channels are
    /// guided (with 4-channel latents the fourth epsilon channel and the variance channels stay conditional).
    case first3
    /// Opt-in: guide all `inChannels` epsilon channels (the variance channels stay conditional).
    case all
}

/// The DiT denoiser (models.py `DiT`), defined once for inference and training: x_t [N, C, S, S], original
/// timesteps t, labels y -> [N, outC, S, S] (epsilon in channels 0..<C, the learned-range variance value in C..<2C
/// when learnSigma).
///   x_embedder.proj (patch conv, stride p) + pos_embed (fixed 2-D sin-cos buffer, saved, never trained)
///   t_embedder.mlp.{0,2}: Linear(256, D) -> SiLU -> Linear(D, D) on the cos-sin timestep features
///   y_embedder.embedding_table: [classes + 1, D], the last row is the null class (CFG)
///   c = t_emb + y_emb; blocks see SiLU(c); blocks.i (adaLN-Zero), final_layer, unpatchify.
/// Inference (`forward`, `forwardWithCFG`) reads the parameters and never writes; `trainingForward` / `backward`
/// keep activations, so a model being trained must not be sampled concurrently.
public final class DiTModel: @unchecked Sendable {
    public let config: DiTConfig
    public let patchEmbed: ConvLayer
    /// Fixed [1, T, D] sin-cos table (a buffer: saved as `pos_embed`, not in `parameters`).
    public let posEmbed: Parameter
    public let tMLP1: LinearLayer, tMLP2: LinearLayer
    /// [numClasses + 1, D]; the last row is the null class.
    public let labelTable: EmbeddingLayer
    public let blocks: [DiTBlock]
    public let finalLayer: DiTFinalLayer
    let tSiLU = SiLULayer(), cSiLU = SiLULayer()
    private var batch = 0

    /// Inference precision of every Linear product (opt-in bfloat16; the patch embedding conv stays float32).
    public func setMatmulPrecision(_ precision: MatmulPrecision) {
        for layer in [tMLP1, tMLP2, finalLayer.linear, finalLayer.adaLN] + blocks.flatMap(\.linears) {
            layer.setPrecision(precision)
        }
    }

    /// `varlab.model` of the files varlab writes for this family.
    public static let checkpointName = "dit"

    /// Every tensor from `source`; a new model follows `initialize_weights`: xavier-uniform Linear weights with zero
    /// biases, xavier-uniform patch conv (as a [D, C p p] matrix) with zero bias, N(0, 0.02) label table and
    /// timestep MLP weights, zero adaLN_modulation in every block and zero final layer (adaLN and linear), so the
    /// untrained model outputs 0. Each draw has its own Philox stream of `seed`, numbered in the official order.
    public init(config c: DiTConfig, source src: ParameterSource, seed: UInt64 = 0) throws {
        try c.validate()
        config = c
        let d = c.hiddenSize, p = c.patchSize
        // initialize_weights visits the block linears (qkv, proj, fc1, fc2, adaLN), then t_embedder.mlp.0 / .2,
        // final_layer.linear / adaLN, the patch conv, the label table and the two t_embedder weights again; the
        // k-th draw uses stream 2^20 + k.
        let base: UInt64 = 1 << 20, tail = base + 5 * UInt64(c.depth)
        func xavier(_ shape: [Int], fanIn: Int, fanOut: Int, _ stream: UInt64) -> Tensor {
            Init.uniform(shape, bound: (6 / Float(fanIn + fanOut)).squareRoot(), seed: seed, stream: stream)
        }
        func normal(_ shape: [Int], _ stream: UInt64) -> Tensor {
            var rng = PhiloxRandom(seed: seed, stream: stream)
            return Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.normal() * 0.02 })
        }
        func zeros(_ out: Int, _ inF: Int) -> (weight: Tensor, bias: Tensor) { (Tensor(zeros: [out, inF]), Tensor(zeros: [out])) }
        patchEmbed = try ConvLayer("x_embedder.proj", cin: c.inChannels, cout: d, kernel: p, stride: p, pads: (0, 0, 0, 0), source: src) {
            (xavier([d, c.inChannels, p, p], fanIn: c.inChannels * p * p, fanOut: d, tail + 5), Tensor(zeros: [d]))
        }
        posEmbed = try src.parameter("pos_embed", shape: [1, c.numPatches, d], decay: false) {
            DiTEmbeddings.sinCos2D(dim: d, gridSize: c.gridSize).reshaped([1, c.numPatches, d])
        }
        let f = DiTConfig.frequencyEmbeddingSize
        tMLP1 = try LinearLayer("t_embedder.mlp.0", inFeatures: f, outFeatures: d, source: src) {
            (normal([d, f], tail + 7), Tensor(zeros: [d]))
        }
        tMLP2 = try LinearLayer("t_embedder.mlp.2", inFeatures: d, outFeatures: d, source: src) {
            (normal([d, d], tail + 8), Tensor(zeros: [d]))
        }
        labelTable = try EmbeddingLayer("y_embedder.embedding_table", count: c.numClasses + 1, dim: d, source: src) {
            normal([c.numClasses + 1, d], tail + 6)
        }
        let order = ["attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"]
        blocks = try (0..<c.depth).map { i in
            try DiTBlock("blocks.\(i)", dim: d, heads: c.numHeads, mlpHidden: c.mlpHiddenSize, source: src) { layer, out, inF in
                guard let k = order.firstIndex(of: layer) else { return zeros(out, inF) }  // adaLN_modulation: zero
                return (xavier([out, inF], fanIn: inF, fanOut: out, base + 5 * UInt64(i) + UInt64(k) + 1), Tensor(zeros: [out]))
            }
        }
        finalLayer = try DiTFinalLayer(dim: d, outFeatures: p * p * c.outChannels, source: src) { _, out, inF in zeros(out, inF) }
        if src.has("blocks.\(c.depth).attn.qkv.weight") {
            throw DiTError.badConfig("the checkpoint has more than \(c.depth) blocks ('blocks.\(c.depth).attn.qkv.weight')")
        }
    }

    /// A new model (a pure function of `seed`).
    public convenience init(config: DiTConfig, seed: UInt64) throws {
        try self.init(config: config, source: FreshParameters(), seed: seed)
    }

    /// Loads an official or varlab state dict (key names of models.py with timm sub-modules). Every tensor's shape
    /// is checked against `config`; a mismatch names the file and key.
    public convenience init(archive: TensorArchive, config: DiTConfig) throws {
        do { try self.init(config: config, source: ArchiveParameters(archive)) } catch let e as DiTError {
            throw DiTError.badConfig("\(archive.path): \(e)")
        }
    }

    /// Trainable parameters (the optimizer's list), in the official state-dict order.
    public var parameters: [Parameter] {
        patchEmbed.parameters + tMLP1.parameters + tMLP2.parameters + labelTable.parameters
            + blocks.flatMap(\.parameters) + finalLayer.parameters
    }

    /// Everything a checkpoint holds: the parameters plus the fixed `pos_embed`.
    public var stateDict: [Parameter] { [posEmbed] + parameters }

    /// Opens a checkpoint file and infers the config from its shapes (heads: `numHeads`, else a
    /// `dit_config.json` / `config.json` beside the file, else the official S/B/L/XL table).
    public static func load(path: String, keyPath: String? = nil, numHeads: Int? = nil) throws -> DiTModel {
        let archive = try CheckpointLoader.open(path: path, keyPath: keyPath)
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent()
        let sidecars = ["dit_config.json", "config.json"].map { dir.appendingPathComponent($0).path }
            .filter { FileManager.default.fileExists(atPath: $0) }
        var heads = numHeads
        if heads == nil {
            for s in sidecars { if let h = try DiTConfig.headsFromJSON(path: s) { heads = h; break } }
        }
        let config = try DiTConfig.infer(from: archive, numHeads: heads)
        for s in sidecars where (try? DiTConfig.headsFromJSON(path: s)) ?? nil != nil { try config.validate(againstJSON: s) }
        return try DiTModel(archive: archive, config: config)
    }

    /// Random weights in the shapes of `config` (for benchmarks, `RandomArchive`). Blocks share one set of block
    /// weights when `shareBlocks` (saves memory; the arithmetic is identical).
    public static func random(config c: DiTConfig, shareBlocks: Bool = false) throws -> DiTModel {
        try DiTModel(archive: RandomArchive(shapes: c.stateDictShapes, shareBlocks: shareBlocks), config: c)
    }

    /// Checks x / t / y against the config (user input must not crash).
    public func validate(x: Tensor, t: [Float], y: [Int]) throws {
        let c = config
        guard x.rank == 4, x.shape[1] == c.inChannels, x.shape[2] == c.inputSize, x.shape[3] == c.inputSize else {
            throw DiTError.badInput("DiT expects latents [N, \(c.inChannels), \(c.inputSize), \(c.inputSize)], got \(x.shape)")
        }
        guard t.count == x.shape[0], y.count == x.shape[0] else {
            throw DiTError.badInput("DiT: \(x.shape[0]) latents but \(t.count) timesteps and \(y.count) labels")
        }
        if let bad = y.first(where: { $0 < 0 || $0 > c.numClasses }) {
            throw DiTError.badInput("class label \(bad) outside 0...\(c.numClasses - 1) (\(c.numClasses) = null class)")
        }
    }

    /// models.py `DiT.forward` in eval mode (no label dropout). `t` holds ORIGINAL timesteps (0..999) as floats.
    public func forward(_ x: Tensor, t: [Float], y: [Int]) throws -> Tensor {
        try validate(x: x, t: t, y: y)
        let c = config, n = x.shape[0], d = c.hiddenSize, tokens = c.numPatches
        // Patch embedding: conv p x p stride p -> [N, D, h, w] -> tokens [N, T, D], plus positions.
        var h = patchEmbed(x).reshaped([n, d, tokens]).permuted([0, 2, 1])
        addPositions(&h)
        // Conditioning c = MLP(timestep features) + label embedding; every adaLN sees SiLU(c).
        let temb = tMLP2(tMLP1(DiTEmbeddings.timestepFeatures(t)).silu())
        let siluC = (temb + labelTable(y)).silu()
        for blk in blocks { h = blk(h, siluC: siluC) }
        return unpatchify(finalLayer(h, siluC: siluC))
    }

    /// h [N, T, D] += pos_embed.
    func addPositions(_ h: inout Tensor) {
        let n = h.shape[0], td = config.numPatches * config.hiddenSize
        h.data.withUnsafeMutableBufferPointer { ph in
            posEmbed.value.data.withUnsafeBufferPointer { pp in
                for b in 0..<n { for i in 0..<td { ph[b * td + i] += pp[i] } }
            }
        }
    }

    // MARK: training

    /// Training forward: x [B, C, S, S] (scaled latents x_t), t original timesteps, y labels (numClasses = null) ->
    /// epsilon [B, C, S, S]; keeps what `backward` needs.
    public func trainingForward(_ x: Tensor, t: [Float], y: [Int]) -> Tensor {
        let c = config, n = x.shape[0], d = c.hiddenSize, tokens = c.numPatches
        batch = n
        var h = patchEmbed.forward(x).reshaped([n, d, tokens]).permuted([0, 2, 1])
        addPositions(&h)
        var cond = tMLP2.forward(tSiLU.forward(tMLP1.forward(DiTEmbeddings.timestepFeatures(t))))
        cond.addInPlace(labelTable.forward(y))
        let siluC = cSiLU.forward(cond)
        for blk in blocks { h = blk.forward(h, siluC: siluC) }
        return unpatchify(finalLayer.forward(h, siluC: siluC))
    }

    /// Backward of `trainingForward` for dL/d(output); accumulates every parameter gradient.
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

    /// The adjoint of `unpatchify` (a permutation, so its inverse).
    func patchify(_ x: Tensor) -> Tensor {
        let n = x.shape[0], p = config.patchSize, g = config.gridSize, co = config.outChannels
        return x.reshaped([n, co, g, p, g, p]).permuted([0, 2, 4, 3, 5, 1]).reshaped([n, g * g, p * p * co])
    }

    // MARK: inference with guidance

    /// (N, T, p*p*C) -> (N, C, S, S): reshape (N, h, w, p, q, C), then `nhwpqc -> nchpwq`.
    public func unpatchify(_ x: Tensor) -> Tensor {
        let n = x.shape[0], p = config.patchSize, g = config.gridSize, co = config.outChannels
        return x.reshaped([n, g, g, p, p, co]).permuted([0, 5, 1, 3, 2, 4]).reshaped([n, co, g * p, g * p])
    }

    /// models.py `forward_with_cfg`, exactly: only the FIRST HALF of `x` is used (duplicated); rows [0, n/2) of `y`
    /// are the conditional labels and rows [n/2, n) the null labels; the guided epsilon
    /// `uncond + s (cond - uncond)` replaces channels [0, 3) (official, `.first3`) or [0, C) (`.all`) of BOTH
    /// halves; the remaining channels are each half's raw output.
    public func forwardWithCFG(_ x: Tensor, t: [Float], y: [Int], scale: Float, channels: CFGChannels = .first3) throws -> Tensor {
        guard x.rank == 4, x.shape[0] % 2 == 0, x.shape[0] > 0 else {
            throw DiTError.badInput("forward_with_cfg needs an even, non-empty batch, got \(x.shape)")
        }
        let n = x.shape[0], half = x.slice0(0, n / 2)
        var out = try forward(Tensor.cat0([half, half]), t: t, y: y)
        DiTModel.guide(&out, scale: scale, guided: channels == .first3 ? min(3, config.outChannels) : config.inChannels)
        return out
    }

    /// In place on [2m, C', S, S] = [cond rows; uncond rows]: channels [0, guided) of both halves become
    /// uncond + scale * (cond - uncond) (float32, the official operation order).
    public static func guide(_ out: inout Tensor, scale: Float, guided: Int) {
        let n = out.shape[0], m = n / 2, ch = out.shape[1], plane = out.shape[2] * out.shape[3]
        out.data.withUnsafeMutableBufferPointer { p in
            for r in 0..<m {
                for c in 0..<guided {
                    let co = (r * ch + c) * plane, un = ((r + m) * ch + c) * plane
                    for i in 0..<plane {
                        let cond = p[co + i], uncond = p[un + i]
                        let g = uncond + scale * (cond - uncond)
                        p[co + i] = g
                        p[un + i] = g
                    }
                }
            }
        }
    }
}
