import Foundation
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

/// The DiT denoiser (models.py `DiT`): x_t [N, C, S, S], original timesteps t, labels y -> [N, outC, S, S]
/// (epsilon in channels 0..<C, the learned-range variance value in C..<2C when learnSigma).
public struct DiTModel: Sendable {
    public let config: DiTConfig
    public var patchEmbed: Conv2d
    /// [T, D]
    public var posEmbed: Tensor
    public var tMLP1: Linear
    public var tMLP2: Linear
    /// [numClasses + 1, D]; the last row is the null class.
    public var labelTable: Tensor
    public var blocks: [DiTBlock]
    public var finalLayer: DiTFinalLayer

    public init(config: DiTConfig, patchEmbed: Conv2d, posEmbed: Tensor, tMLP1: Linear, tMLP2: Linear, labelTable: Tensor,
                blocks: [DiTBlock], finalLayer: DiTFinalLayer) {
        self.config = config; self.patchEmbed = patchEmbed; self.posEmbed = posEmbed; self.tMLP1 = tMLP1; self.tMLP2 = tMLP2
        self.labelTable = labelTable; self.blocks = blocks; self.finalLayer = finalLayer
    }

    /// Loads an official state dict (key names of models.py with timm sub-modules). Every tensor's shape is
    /// checked against `config`; a mismatch names the file and key.
    public init(archive: TensorArchive, config: DiTConfig) throws {
        let c = config
        let d = c.hiddenSize, p = c.patchSize
        func w(_ key: String, _ shape: [Int]) throws -> Tensor {
            guard let info = archive.info(key) else {
                throw CheckpointError.missingKey(path: archive.path, key: key, available: archive.keys.count)
            }
            guard info.shape == shape else {
                throw DiTError.shapeMismatch(path: archive.path, key: key, expected: shape, actual: info.shape)
            }
            return try archive.floatTensor(key)
        }
        func lin(_ prefix: String, out: Int, in inF: Int) throws -> Linear {
            Linear(weight: try w(prefix + ".weight", [out, inF]), bias: try w(prefix + ".bias", [out]))
        }
        self.config = c
        patchEmbed = Conv2d(weight: try w("x_embedder.proj.weight", [d, c.inChannels, p, p]),
                            bias: try w("x_embedder.proj.bias", [d]), stride: p, padding: 0)
        posEmbed = try w("pos_embed", [1, c.numPatches, d]).reshaped([c.numPatches, d])
        tMLP1 = try lin("t_embedder.mlp.0", out: d, in: DiTConfig.frequencyEmbeddingSize)
        tMLP2 = try lin("t_embedder.mlp.2", out: d, in: d)
        labelTable = try w("y_embedder.embedding_table.weight", [c.numClasses + 1, d])
        blocks = try (0..<c.depth).map { i in
            let b = "blocks.\(i)."
            return DiTBlock(qkv: try lin(b + "attn.qkv", out: 3 * d, in: d), proj: try lin(b + "attn.proj", out: d, in: d),
                            fc1: try lin(b + "mlp.fc1", out: c.mlpHiddenSize, in: d),
                            fc2: try lin(b + "mlp.fc2", out: d, in: c.mlpHiddenSize),
                            adaLN: try lin(b + "adaLN_modulation.1", out: 6 * d, in: d), numHeads: c.numHeads)
        }
        if archive.contains("blocks.\(c.depth).attn.qkv.weight") {
            throw DiTError.badConfig("\(archive.path): the checkpoint has more than \(c.depth) blocks ('blocks.\(c.depth).attn.qkv.weight')")
        }
        finalLayer = DiTFinalLayer(linear: try lin("final_layer.linear", out: p * p * c.outChannels, in: d),
                                   adaLN: try lin("final_layer.adaLN_modulation.1", out: 2 * d, in: d))
    }

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

    /// Random weights in the shapes of `config` (for benchmarks): N(0, 1/fan_in) matrices, small biases, the
    /// official fixed sin-cos positions. Blocks share one set of block weights when `shareBlocks` (saves memory;
    /// the arithmetic is identical).
    public static func random(config c: DiTConfig, seed: UInt64 = 0, shareBlocks: Bool = false) -> DiTModel {
        var rng = PhiloxRandom(seed: seed)
        func lin(_ out: Int, _ inF: Int) -> Linear {
            let s = 1 / Float(inF).squareRoot()
            return Linear(weight: Tensor.randn([out, inF], rng: &rng) * s, bias: Tensor.randn([out], rng: &rng) * 0.02)
        }
        let d = c.hiddenSize
        func block() -> DiTBlock {
            DiTBlock(qkv: lin(3 * d, d), proj: lin(d, d), fc1: lin(c.mlpHiddenSize, d), fc2: lin(d, c.mlpHiddenSize),
                     adaLN: lin(6 * d, d), numHeads: c.numHeads)
        }
        let blocks: [DiTBlock]
        if shareBlocks { let b = block(); blocks = Array(repeating: b, count: c.depth) }
        else { blocks = (0..<c.depth).map { _ in block() } }
        let pe = Conv2d(weight: Tensor.randn([d, c.inChannels, c.patchSize, c.patchSize], rng: &rng) *
                        (1 / Float(c.inChannels * c.patchSize * c.patchSize).squareRoot()),
                        bias: Tensor(zeros: [d]), stride: c.patchSize, padding: 0)
        return DiTModel(config: c, patchEmbed: pe, posEmbed: DiTEmbeddings.sinCos2D(dim: d, gridSize: c.gridSize),
                        tMLP1: lin(d, DiTConfig.frequencyEmbeddingSize), tMLP2: lin(d, d),
                        labelTable: Tensor.randn([c.numClasses + 1, d], rng: &rng), blocks: blocks,
                        finalLayer: DiTFinalLayer(linear: lin(c.patchSize * c.patchSize * c.outChannels, d), adaLN: lin(2 * d, d)))
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
        h.data.withUnsafeMutableBufferPointer { ph in posEmbed.data.withUnsafeBufferPointer { pp in
            for b in 0..<n { for i in 0..<(tokens * d) { ph[b * tokens * d + i] += pp[i] } }
        } }
        // Conditioning c = MLP(timestep features) + label embedding; every adaLN sees SiLU(c).
        let temb = tMLP2(tMLP1(DiTEmbeddings.timestepFeatures(t)).silu())
        let yemb = Embedding(weight: labelTable)(y)
        let siluC = (temb + yemb).silu()
        for blk in blocks { h = blk(h, siluC: siluC) }
        return unpatchify(finalLayer(h, siluC: siluC))
    }

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
