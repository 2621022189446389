import Foundation
import ModelIO
import Tensor

/// Shape of the VAR VQ-VAE (taming-style encoder/decoder + multi-scale residual quantiser), inferred from weights.
/// Official defaults: ch_mult (1,1,2,2,4), 2 ResNet blocks per level, attention at the lowest resolution and mid,
/// GroupNorm(32, eps 1e-6). Released model: ch 160, z 32, vocab 4096, share_quant_resi 4.
public struct VQVAEConfig: Sendable, Equatable {
    public var ch: Int
    public var chMult: [Int]
    public var numResBlocks: Int
    public var zChannels: Int
    public var inChannels: Int
    public var vocabSize: Int
    public var attnAtLowest: Bool
    public var midAttn: Bool
    public var quantResi: Float = 0.5
    public var phiLayout: PhiLayout
    public var eps: Float = 1e-6
    /// GroupNorm groups (official: 32). Not visible in the weights; varlab's own small tokenizers store it in the
    /// metadata (`varlab.norm_groups`), because 32 groups over 32 channels is instance normalisation, which
    /// normalises each image's per-channel mean and scale away, i.e. its colour.
    public var normGroups = 32

    /// How the Phi refinement convolutions are stored (official share_quant_resi: 0 -> nonShared, 1 -> shared, K -> partial).
    public enum PhiLayout: Sendable, Equatable {
        case shared  // quant_resi.qresi
        case partiallyShared(Int)  // quant_resi.qresi_ls.0..K-1
        case nonShared(Int)  // quant_resi.0..K-1
    }

    public init(
        ch: Int, chMult: [Int], numResBlocks: Int, zChannels: Int, inChannels: Int = 3, vocabSize: Int,
        attnAtLowest: Bool = true, midAttn: Bool = true, phiLayout: PhiLayout = .partiallyShared(4)
    ) {
        self.ch = ch; self.chMult = chMult; self.numResBlocks = numResBlocks; self.zChannels = zChannels
        self.inChannels = inChannels; self.vocabSize = vocabSize; self.attnAtLowest = attnAtLowest; self.midAttn = midAttn
        self.phiLayout = phiLayout
    }

    /// The released `vae_ch160v4096z32.pth`.
    public static let official = VQVAEConfig(ch: 160, chMult: [1, 1, 2, 2, 4], numResBlocks: 2, zChannels: 32, vocabSize: 4096)

    public var downsampling: Int { 1 << (chMult.count - 1) }

    /// GroupNorm groups of a checkpoint: metadata `varlab.norm_groups` when present (varlab's own tokenizers),
    /// else the official 32.
    public static func normGroups(of a: TensorArchive) throws -> Int {
        guard let text = (a as? SafetensorsFile)?.metadata[.normGroups] else { return 32 }
        guard let g = Int(text), (1...4096).contains(g) else {
            throw AutoencoderError.badInput(
                "\(a.path): metadata 'varlab.norm_groups' must be an integer in 1...4096, got '\(text.prefix(40))'")
        }
        return g
    }

    /// Reads the configuration from the tensor names and shapes of a VQVAE state dict.
    public static func infer(from a: TensorArchive) throws -> VQVAEConfig {
        func shape(_ k: String) throws -> [Int] { try a.requireInfo(k).shape }
        let convIn = try shape("encoder.conv_in.weight")
        guard convIn.count == 4 else {
            throw CheckpointError.wrongShape(path: a.path, key: "encoder.conv_in.weight", expected: [-1, -1, 3, 3], actual: convIn)
        }
        let ch = convIn[0]
        var levels = 0
        while a.contains("encoder.down.\(levels).block.0.conv1.weight") { levels += 1 }
        guard levels > 0 else {
            throw CheckpointError.missingKey(path: a.path, key: "encoder.down.0.block.0.conv1.weight", available: a.keys.count)
        }
        var mult: [Int] = []
        for l in 0..<levels {
            let s = try shape("encoder.down.\(l).block.0.conv1.weight")
            guard s[0] % ch == 0 else {
                throw CheckpointError.wrongShape(path: a.path, key: "encoder.down.\(l).block.0.conv1.weight", expected: [ch], actual: s)
            }
            mult.append(s[0] / ch)
        }
        var blocks = 0
        while a.contains("encoder.down.0.block.\(blocks).conv1.weight") { blocks += 1 }
        let emb = try shape("quantize.embedding.weight")
        guard emb.count == 2 else {
            throw CheckpointError.wrongShape(path: a.path, key: "quantize.embedding.weight", expected: [-1, -1], actual: emb)
        }
        let z = try shape("encoder.conv_out.weight")[0]
        guard z == emb[1] else {
            throw CheckpointError.wrongShape(path: a.path, key: "quantize.embedding.weight", expected: [emb[0], z], actual: emb)
        }
        var layout: PhiLayout
        if a.contains("quantize.quant_resi.qresi.weight") {
            layout = .shared
        } else {
            var k = 0
            while a.contains("quantize.quant_resi.qresi_ls.\(k).weight") { k += 1 }
            if k > 0 {
                layout = .partiallyShared(k)
            } else {
                while a.contains("quantize.quant_resi.\(k).weight") { k += 1 }
                guard k > 0 else {
                    throw CheckpointError.missingKey(path: a.path, key: "quantize.quant_resi.qresi_ls.0.weight", available: a.keys.count)
                }
                layout = .nonShared(k)
            }
        }
        return VQVAEConfig(
            ch: ch, chMult: mult, numResBlocks: blocks, zChannels: z, inChannels: convIn[1], vocabSize: emb[0],
            attnAtLowest: a.contains("encoder.down.\(levels - 1).attn.0.qkv.weight"),
            midAttn: a.contains("encoder.mid.attn_1.qkv.weight"), phiLayout: layout)
    }
}

/// One resolution level: ResNet blocks, each optionally followed by attention.
struct VQLevel: Sendable {
    var blocks: [ResnetBlock]
    var attns: [SpatialAttention]
    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = x
        for (i, b) in blocks.enumerated() {
            h = b(h)
            if !attns.isEmpty { h = attns[i](h) }
        }
        return h
    }
}

/// image [B, 3, H, W] in [-1, 1] -> latent [B, z, H/16, W/16] (before quant_conv).
public struct VQEncoder: Sendable {
    var convIn: Conv2d
    var levels: [VQLevel]
    var downs: [Downsample?]
    var mid1: ResnetBlock, midAttn: SpatialAttention?, mid2: ResnetBlock
    var normOut: GroupNorm, convOut: Conv2d

    public init(_ r: WeightReader, _ c: VQVAEConfig) throws {
        convIn = try r.conv("conv_in", inChannels: c.inChannels, outChannels: c.ch)
        var blockIn = c.ch
        levels = []; downs = []
        let inMult = [1] + c.chMult
        for l in 0..<c.chMult.count {
            let lr = r["down"][String(l)]
            blockIn = c.ch * inMult[l]
            let blockOut = c.ch * c.chMult[l]
            var blocks: [ResnetBlock] = [], attns: [SpatialAttention] = []
            for b in 0..<c.numResBlocks {
                blocks.append(
                    try ResnetBlock(lr["block"][String(b)], inChannels: blockIn, outChannels: blockOut, groups: c.normGroups, eps: c.eps))
                blockIn = blockOut
                if l == c.chMult.count - 1 && c.attnAtLowest {
                    attns.append(try .fusedQKV(lr["attn"][String(b)], channels: blockIn, groups: c.normGroups, eps: c.eps))
                }
            }
            levels.append(VQLevel(blocks: blocks, attns: attns))
            downs.append(l != c.chMult.count - 1 ? try Downsample(lr["downsample"], channels: blockIn) : nil)
        }
        mid1 = try ResnetBlock(r["mid"]["block_1"], inChannels: blockIn, outChannels: blockIn, groups: c.normGroups, eps: c.eps)
        midAttn = c.midAttn ? try .fusedQKV(r["mid"]["attn_1"], channels: blockIn, groups: c.normGroups, eps: c.eps) : nil
        mid2 = try ResnetBlock(r["mid"]["block_2"], inChannels: blockIn, outChannels: blockIn, groups: c.normGroups, eps: c.eps)
        normOut = try r.groupNorm("norm_out", channels: blockIn, groups: c.normGroups, eps: c.eps)
        convOut = try r.conv("conv_out", inChannels: blockIn, outChannels: c.zChannels)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var h = convIn(x)
        for (l, level) in levels.enumerated() {
            h = level(h)
            if let d = downs[l] { h = d(h) }
        }
        h = mid1(h)
        if let midAttn { h = midAttn(h) }
        h = mid2(h)
        return convOut(normOut(h).silu())
    }
}

/// latent [B, z, h, w] (after post_quant_conv) -> image [B, 3, 16h, 16w] (not clamped).
public struct VQDecoder: Sendable {
    var convIn: Conv2d
    var mid1: ResnetBlock, midAttn: SpatialAttention?, mid2: ResnetBlock
    /// Indexed by level as in the state dict (`up.0` is the highest resolution); run from the last to the first.
    var levels: [VQLevel]
    var ups: [Upsample?]
    var normOut: GroupNorm, convOut: Conv2d

    public init(_ r: WeightReader, _ c: VQVAEConfig) throws {
        var blockIn = c.ch * c.chMult.last!
        convIn = try r.conv("conv_in", inChannels: c.zChannels, outChannels: blockIn)
        mid1 = try ResnetBlock(r["mid"]["block_1"], inChannels: blockIn, outChannels: blockIn, groups: c.normGroups, eps: c.eps)
        midAttn = c.midAttn ? try .fusedQKV(r["mid"]["attn_1"], channels: blockIn, groups: c.normGroups, eps: c.eps) : nil
        mid2 = try ResnetBlock(r["mid"]["block_2"], inChannels: blockIn, outChannels: blockIn, groups: c.normGroups, eps: c.eps)
        var lv = [VQLevel?](repeating: nil, count: c.chMult.count)
        var up = [Upsample?](repeating: nil, count: c.chMult.count)
        for l in stride(from: c.chMult.count - 1, through: 0, by: -1) {
            let lr = r["up"][String(l)]
            let blockOut = c.ch * c.chMult[l]
            var blocks: [ResnetBlock] = [], attns: [SpatialAttention] = []
            for b in 0...c.numResBlocks {
                blocks.append(
                    try ResnetBlock(lr["block"][String(b)], inChannels: blockIn, outChannels: blockOut, groups: c.normGroups, eps: c.eps))
                blockIn = blockOut
                if l == c.chMult.count - 1 && c.attnAtLowest {
                    attns.append(try .fusedQKV(lr["attn"][String(b)], channels: blockIn, groups: c.normGroups, eps: c.eps))
                }
            }
            lv[l] = VQLevel(blocks: blocks, attns: attns)
            up[l] = l != 0 ? try Upsample(lr["upsample"], channels: blockIn) : nil
        }
        levels = lv.map { $0! }
        ups = up
        normOut = try r.groupNorm("norm_out", channels: blockIn, groups: c.normGroups, eps: c.eps)
        convOut = try r.conv("conv_out", inChannels: blockIn, outChannels: c.inChannels)
    }

    public func callAsFunction(_ z: Tensor) -> Tensor {
        var h = convIn(z)
        h = mid1(h)
        if let midAttn { h = midAttn(h) }
        h = mid2(h)
        for l in stride(from: levels.count - 1, through: 0, by: -1) {
            h = levels[l](h)
            if let u = ups[l] { h = u(h) }
        }
        return convOut(normOut(h).silu())
    }
}

/// The VAR VQ-VAE (official `models.vqvae.VQVAE`, inference only).
public struct VQVAE: Sendable {
    public let config: VQVAEConfig
    public let encoder: VQEncoder
    public let decoder: VQDecoder
    public let quantConv: Conv2d
    public let postQuantConv: Conv2d
    public var quantizer: MultiScaleQuantizer

    /// Loads a state dict with the official key names; `patchNums` is the scale schedule (1,2,...,16 at 256 px).
    public init(archive a: TensorArchive, patchNums: [Int]) throws {
        var c = try VQVAEConfig.infer(from: a)
        c.normGroups = try VQVAEConfig.normGroups(of: a)
        config = c
        let r = WeightReader(a)
        encoder = try VQEncoder(r["encoder"], c)
        decoder = try VQDecoder(r["decoder"], c)
        quantConv = try r.conv("quant_conv", inChannels: c.zChannels, outChannels: c.zChannels)
        postQuantConv = try r.conv("post_quant_conv", inChannels: c.zChannels, outChannels: c.zChannels)
        quantizer = try MultiScaleQuantizer(r["quantize"], config: c, patchNums: patchNums)
    }

    public var patchNums: [Int] { quantizer.patchNums }
    /// Image side the scale schedule corresponds to (last patch number x 16).
    public var imageSize: Int { patchNums.last! * config.downsampling }

    /// `quant_conv(encoder(x))`: the continuous latent f before quantisation.
    public func encodeLatent(_ images: Tensor) -> Tensor { quantConv(encoder(images)) }

    /// `img_to_idxBl`: token maps per scale; entry s holds B x pn_s^2 indices (row-major grid, batch-major).
    public func tokens(images: Tensor) throws -> [[Int]] { try quantizer.tokens(latent: encodeLatent(images)) }

    /// `fhat_to_img`: decoder(post_quant_conv(f_hat)) clamped to [-1, 1].
    public func decode(fhat: Tensor) -> Tensor { decoder(postQuantConv(fhat)).clamped(-1, 1) }

    /// `idxBl_to_img(same_shape=True, last_one=True)`.
    public func decode(tokens: [[Int]]) -> Tensor {
        decode(fhat: quantizer.fhat(tokens: tokens, batch: tokens[0].count / (patchNums[0] * patchNums[0])).last!)
    }

    /// `idxBl_to_img(same_shape=True, last_one=False)`: the progressive previews, one image per scale.
    public func progressiveDecode(tokens: [[Int]]) -> [Tensor] {
        quantizer.fhat(tokens: tokens, batch: tokens[0].count / (patchNums[0] * patchNums[0])).map { decode(fhat: $0) }
    }
}
