import Foundation
import Layers
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
    /// Commitment weight of the VQ loss (official `beta`, 0.25; training only).
    public var beta: Float = 0.25

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

    /// Number of Phi convolutions.
    public var phiCount: Int {
        switch phiLayout {
        case .shared: return 1
        case .partiallyShared(let k), .nonShared(let k): return k
        }
    }

    /// The sizes a new (trainable) model needs: widths that the norm groups divide, no attention.
    public func validateForTraining() throws {
        guard ch > 0, !chMult.isEmpty, normGroups >= 1, chMult.allSatisfy({ $0 > 0 && (ch * $0) % normGroups == 0 }),
            numResBlocks >= 1, zChannels >= 1, vocabSize >= 2, phiCount >= 1, !attnAtLowest, !midAttn
        else {
            throw AutoencoderError.badInput("invalid VQ-VAE config \(self) (widths must be multiples of the \(normGroups) norm groups)")
        }
    }

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

extension VQVAEConfig: Codable {
    enum CodingKeys: String, CodingKey {
        case ch, chMult, numResBlocks, zChannels, vocabSize, phiCount, beta, normGroups
        case inChannels, attnAtLowest, midAttn, quantResi, phiLayout, eps
    }

    /// A varlab-trained model's config: no attention, partially shared Phi (the keys absent from its JSON).
    public init(from decoder: Decoder) throws {
        let k = try decoder.container(keyedBy: CodingKeys.self)
        let phiCount = try k.decode(Int.self, forKey: .phiCount)
        let layout: PhiLayout
        switch try k.decodeIfPresent(String.self, forKey: .phiLayout) ?? "partially-shared" {
        case "shared": layout = .shared
        case "non-shared": layout = .nonShared(phiCount)
        default: layout = .partiallyShared(phiCount)
        }
        self.init(
            ch: try k.decode(Int.self, forKey: .ch), chMult: try k.decode([Int].self, forKey: .chMult),
            numResBlocks: try k.decode(Int.self, forKey: .numResBlocks), zChannels: try k.decode(Int.self, forKey: .zChannels),
            inChannels: try k.decodeIfPresent(Int.self, forKey: .inChannels) ?? 3, vocabSize: try k.decode(Int.self, forKey: .vocabSize),
            attnAtLowest: try k.decodeIfPresent(Bool.self, forKey: .attnAtLowest) ?? false,
            midAttn: try k.decodeIfPresent(Bool.self, forKey: .midAttn) ?? false, phiLayout: layout)
        beta = try k.decodeIfPresent(Float.self, forKey: .beta) ?? 0.25
        normGroups = try k.decodeIfPresent(Int.self, forKey: .normGroups) ?? 32
        quantResi = try k.decodeIfPresent(Float.self, forKey: .quantResi) ?? 0.5
        eps = try k.decodeIfPresent(Float.self, forKey: .eps) ?? 1e-6
    }

    /// Writes what a varlab-trained model's `varlab.config` has always held; the official-only settings only when
    /// they differ from it.
    public func encode(to encoder: Encoder) throws {
        var k = encoder.container(keyedBy: CodingKeys.self)
        try k.encode(ch, forKey: .ch)
        try k.encode(chMult, forKey: .chMult)
        try k.encode(numResBlocks, forKey: .numResBlocks)
        try k.encode(zChannels, forKey: .zChannels)
        try k.encode(vocabSize, forKey: .vocabSize)
        try k.encode(phiCount, forKey: .phiCount)
        try k.encode(beta, forKey: .beta)
        try k.encode(normGroups, forKey: .normGroups)
        if inChannels != 3 { try k.encode(inChannels, forKey: .inChannels) }
        if attnAtLowest { try k.encode(true, forKey: .attnAtLowest) }
        if midAttn { try k.encode(true, forKey: .midAttn) }
        if quantResi != 0.5 { try k.encode(quantResi, forKey: .quantResi) }
        if eps != 1e-6 { try k.encode(eps, forKey: .eps) }
        switch phiLayout {
        case .shared: try k.encode("shared", forKey: .phiLayout)
        case .nonShared: try k.encode("non-shared", forKey: .phiLayout)
        case .partiallyShared: break
        }
    }
}

/// How a VQ-VAE is built: from a checkpoint (`reader` set, attention allowed) or new (varlab's trainer: no attention).
struct VQBuild {
    let source: ParameterSource
    let reader: WeightReader?
    let initial: ConvInit

    func attention(_ name: String, channels: Int, _ c: VQVAEConfig) throws -> SpatialAttention {
        guard let reader else {
            throw AutoencoderError.badInput("\(name): a new VQ-VAE has no attention blocks (varlab trains without them)")
        }
        return try .fusedQKV(reader[name], channels: channels, groups: c.normGroups, eps: c.eps)
    }
    func conv(_ name: String, _ cin: Int, _ cout: Int) throws -> ConvLayer {
        try ConvLayer(name, cin: cin, cout: cout, kernel: 3, stride: 1, pads: (1, 1, 1, 1), source: source) { initial(name, cin, cout, 3) }
    }
    func resnet(_ name: String, _ cin: Int, _ cout: Int, _ c: VQVAEConfig) throws -> ResnetBlock {
        try ResnetBlock(name, inChannels: cin, outChannels: cout, groups: c.normGroups, eps: c.eps, source: source, initial: initial)
    }
}

/// image [B, 3, H, W] in [-1, 1] -> latent [B, z, H/16, W/16] (before quant_conv). `callAsFunction` is inference;
/// `forward` / `backward` are training (models without attention).
public final class VQEncoder {
    public let convIn: ConvLayer
    /// Per level: its ResNet blocks, each optionally followed by attention (official: at the lowest resolution).
    public let levels: [[ResnetBlock]]
    let attns: [[SpatialAttention]]
    public let downs: [ConvLayer?]
    public let mid1: ResnetBlock, mid2: ResnetBlock
    let midAttn: SpatialAttention?
    public let normOut: GroupNormLayer, convOut: ConvLayer
    let siluOut = SiLULayer()

    init(_ c: VQVAEConfig, _ b: VQBuild) throws {
        convIn = try b.conv("encoder.conv_in", c.inChannels, c.ch)
        var blockIn = c.ch
        var levels: [[ResnetBlock]] = [], attns: [[SpatialAttention]] = [], downs: [ConvLayer?] = []
        let inMult = [1] + c.chMult
        for l in 0..<c.chMult.count {
            blockIn = c.ch * inMult[l]
            let blockOut = c.ch * c.chMult[l]
            var blocks: [ResnetBlock] = [], at: [SpatialAttention] = []
            for i in 0..<c.numResBlocks {
                blocks.append(try b.resnet("encoder.down.\(l).block.\(i)", blockIn, blockOut, c))
                blockIn = blockOut
                if l == c.chMult.count - 1 && c.attnAtLowest {
                    at.append(try b.attention("encoder.down.\(l).attn.\(i)", channels: blockIn, c))
                }
            }
            levels.append(blocks); attns.append(at)
            downs.append(
                l != c.chMult.count - 1
                    ? try downsampleConv("encoder.down.\(l).downsample.conv", channels: blockIn, source: b.source, initial: b.initial) : nil
            )
        }
        self.levels = levels; self.attns = attns; self.downs = downs
        mid1 = try b.resnet("encoder.mid.block_1", blockIn, blockIn, c)
        midAttn = c.midAttn ? try b.attention("encoder.mid.attn_1", channels: blockIn, c) : nil
        mid2 = try b.resnet("encoder.mid.block_2", blockIn, blockIn, c)
        normOut = try GroupNormLayer("encoder.norm_out", channels: blockIn, groups: c.normGroups, eps: c.eps, source: b.source)
        convOut = try b.conv("encoder.conv_out", blockIn, c.zChannels)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var h = convIn(x)
        for (l, blocks) in levels.enumerated() {
            for (i, blk) in blocks.enumerated() {
                h = blk(h)
                if !attns[l].isEmpty { h = attns[l][i](h) }
            }
            if let d = downs[l] { h = d(h) }
        }
        h = mid1(h)
        if let midAttn { h = midAttn(h) }
        h = mid2(h)
        return convOut(normOut(h, thenSiLU: true))
    }

    public func forward(_ x: Tensor) -> Tensor {
        var h = convIn.forward(x)
        for (l, blocks) in levels.enumerated() {
            for blk in blocks { h = blk.forward(h) }
            if let d = downs[l] { h = d.forward(h) }
        }
        h = mid2.forward(mid1.forward(h))
        return convOut.forward(siluOut.forward(normOut.forward(h)))
    }

    public func backward(_ dy: Tensor) -> Tensor {
        var d = mid1.backward(mid2.backward(normOut.backward(siluOut.backward(convOut.backward(dy)))))
        for (l, blocks) in levels.enumerated().reversed() {
            if let down = downs[l] { d = down.backward(d) }
            for blk in blocks.reversed() { d = blk.backward(d) }
        }
        return convIn.backward(d)
    }

    public var parameters: [Parameter] {
        var p = convIn.parameters
        for (l, blocks) in levels.enumerated() {
            p += blocks.flatMap(\.parameters)
            p += downs[l]?.parameters ?? []
        }
        return p + mid1.parameters + mid2.parameters + normOut.parameters + convOut.parameters
    }
}

/// latent [B, z, h, w] (after post_quant_conv) -> image [B, 3, 16h, 16w] (not clamped). `callAsFunction` is
/// inference; `forward` / `backward` are training (models without attention).
public final class VQDecoder {
    public let convIn: ConvLayer
    public let mid1: ResnetBlock, mid2: ResnetBlock
    let midAttn: SpatialAttention?
    /// Indexed by level as in the state dict (`up.0` is the highest resolution); run from the last to the first.
    public let levels: [[ResnetBlock]]
    let attns: [[SpatialAttention]]
    public let ups: [Upsample?]
    public let normOut: GroupNormLayer, convOut: ConvLayer
    let siluOut = SiLULayer()

    init(_ c: VQVAEConfig, _ b: VQBuild) throws {
        var blockIn = c.ch * c.chMult.last!
        convIn = try b.conv("decoder.conv_in", c.zChannels, blockIn)
        mid1 = try b.resnet("decoder.mid.block_1", blockIn, blockIn, c)
        midAttn = c.midAttn ? try b.attention("decoder.mid.attn_1", channels: blockIn, c) : nil
        mid2 = try b.resnet("decoder.mid.block_2", blockIn, blockIn, c)
        let n = c.chMult.count
        var lv = [[ResnetBlock]](repeating: [], count: n), at = [[SpatialAttention]](repeating: [], count: n)
        var up = [Upsample?](repeating: nil, count: n)
        for l in stride(from: n - 1, through: 0, by: -1) {
            let blockOut = c.ch * c.chMult[l]
            for i in 0...c.numResBlocks {
                lv[l].append(try b.resnet("decoder.up.\(l).block.\(i)", blockIn, blockOut, c))
                blockIn = blockOut
                if l == n - 1 && c.attnAtLowest { at[l].append(try b.attention("decoder.up.\(l).attn.\(i)", channels: blockIn, c)) }
            }
            up[l] = l != 0 ? try Upsample("decoder.up.\(l).upsample.conv", channels: blockIn, source: b.source, initial: b.initial) : nil
        }
        levels = lv; attns = at; ups = up
        normOut = try GroupNormLayer("decoder.norm_out", channels: blockIn, groups: c.normGroups, eps: c.eps, source: b.source)
        convOut = try b.conv("decoder.conv_out", blockIn, c.inChannels)
    }

    public func callAsFunction(_ z: Tensor) -> Tensor {
        var h = convIn(z)
        h = mid1(h)
        if let midAttn { h = midAttn(h) }
        h = mid2(h)
        for l in stride(from: levels.count - 1, through: 0, by: -1) {
            for (i, blk) in levels[l].enumerated() {
                h = blk(h)
                if !attns[l].isEmpty { h = attns[l][i](h) }
            }
            if let u = ups[l] { h = u(h) }
        }
        return convOut(normOut(h, thenSiLU: true))
    }

    public func forward(_ z: Tensor) -> Tensor {
        var h = mid2.forward(mid1.forward(convIn.forward(z)))
        for l in stride(from: levels.count - 1, through: 0, by: -1) {
            for blk in levels[l] { h = blk.forward(h) }
            if let u = ups[l] { h = u.forward(h) }
        }
        return convOut.forward(siluOut.forward(normOut.forward(h)))
    }

    public func backward(_ dy: Tensor) -> Tensor {
        var d = normOut.backward(siluOut.backward(convOut.backward(dy)))
        for l in 0..<levels.count {
            if let u = ups[l] { d = u.backward(d) }
            for blk in levels[l].reversed() { d = blk.backward(d) }
        }
        return convIn.backward(mid1.backward(mid2.backward(d)))
    }

    /// Official order: conv_in, mid, up blocks from the deepest level, norm_out, conv_out.
    public var parameters: [Parameter] {
        var p = convIn.parameters + mid1.parameters + mid2.parameters
        for l in stride(from: levels.count - 1, through: 0, by: -1) {
            p += levels[l].flatMap(\.parameters)
            p += ups[l]?.parameters ?? []
        }
        return p + normOut.parameters + convOut.parameters
    }
}

/// The VAR VQ-VAE (official `models.vqvae.VQVAE`), defined once: loaded from an official or varlab checkpoint for
/// inference, or new for training (`trainStep`: mse(x̂, x) + L_vq, the quantiser's β-commitment loss averaged over
/// scales, as `VectorQuantizer2`).
public final class VQVAE: @unchecked Sendable {
    public let config: VQVAEConfig
    public let encoder: VQEncoder
    public let decoder: VQDecoder
    public let quantConv: ConvLayer
    public let postQuantConv: ConvLayer
    public let quantizer: MultiScaleQuantizer

    /// `varlab.model` of the files varlab writes for this family.
    public static let checkpointName = "var-vqvae"

    /// Built in the order varlab's trainer numbers the Philox streams of new weights: encoder, quant_conv, the
    /// quantiser, post_quant_conv, decoder (each conv takes the next even stream, its bias the odd one after).
    init(config c: VQVAEConfig, patchNums: [Int], build b: VQBuild, seed: UInt64, streams: StreamCounter) throws {
        config = c
        encoder = try VQEncoder(c, b)
        quantConv = try b.conv("quant_conv", c.zChannels, c.zChannels)
        let qs = streams.next()
        quantizer = try MultiScaleQuantizer(config: c, patchNums: patchNums, source: b.source, seed: seed, stream: qs)
        streams.skip(2 * UInt64(c.phiCount) + 2)
        postQuantConv = try b.conv("post_quant_conv", c.zChannels, c.zChannels)
        decoder = try VQDecoder(c, b)
    }

    /// Loads a state dict with the official key names; `patchNums` is the scale schedule (1,2,...,16 at 256 px).
    public convenience init(archive a: TensorArchive, patchNums: [Int]) throws {
        var c = try VQVAEConfig.infer(from: a)
        c.normGroups = try VQVAEConfig.normGroups(of: a)
        try self.init(
            config: c, patchNums: patchNums, build: VQBuild(source: ArchiveParameters(a), reader: WeightReader(a), initial: noNewWeights),
            seed: 0, streams: StreamCounter())
    }

    /// A new model for training (no attention blocks). Every conv starts as PyTorch's default init (uniform
    /// ±1/√fan_in) from its own stream of `seed`; with `heInit`, weights are scaled to He's variance (×√6) and every
    /// ResNet block's conv2 starts at zero, so each block starts as the identity.
    public convenience init(config c: VQVAEConfig, patchNums: [Int], seed: UInt64, heInit: Bool = false) throws {
        guard !c.attnAtLowest && !c.midAttn else {
            throw AutoencoderError.badInput("a new VQ-VAE is trained without attention blocks (attn at lowest / mid must be off)")
        }
        let streams = StreamCounter()
        let initial: ConvInit = { name, cin, cout, k in
            let s = streams.next()
            let bound = 1 / Float(cin * k * k).squareRoot()
            var w = Init.uniform([cout, cin, k, k], bound: bound, seed: seed, stream: s)
            var b = Init.uniform([cout], bound: bound, seed: seed, stream: s + 1)
            if heInit {
                if name.hasSuffix(".conv2") {
                    w = Tensor(zeros: w.shape); b = Tensor(zeros: b.shape)
                } else {
                    w = w * Float(6).squareRoot()  // uniform(±√(6/fan_in)): variance 2/fan_in
                }
            }
            return (w, b)
        }
        try self.init(
            config: c, patchNums: patchNums, build: VQBuild(source: FreshParameters(), reader: nil, initial: initial), seed: seed,
            streams: streams)
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

/// Philox stream numbers handed out in construction order (2, 4, 6, ...: each conv's weight; its bias takes the next).
final class StreamCounter {
    private var value: UInt64 = 0
    func next() -> UInt64 { value += 2; return value }
    func skip(_ n: UInt64) { value += n }
}

// MARK: training

extension VQVAE {
    public var parameters: [Parameter] {
        encoder.parameters + quantConv.parameters + quantizer.parameters + postQuantConv.parameters + decoder.parameters
    }

    public struct Step {
        public let reconstruction: Tensor
        public let reconLoss: Double
        public let vqLoss: Double
        public let tokens: [[Int]]
        /// Per scale, the residual rows the tokens were chosen for (dead-code restarts draw from them).
        public let residualRows: [Tensor]
        public var loss: Double { reconLoss + vqLoss }
    }

    /// Forward + backward of mse(x̂, x) + L_vq on a batch; gradients are accumulated into the parameters.
    public func trainStep(_ x: Tensor) -> Step {
        let f = quantConv.forward(encoder.forward(x))
        let (fHat, vq, saved) = quantizer.trainingForward(f)
        let recon = decoder.forward(postQuantConv.forward(fHat))
        let (rl, dRecon) = Losses.mse(recon, x)
        let dFHat = postQuantConv.backward(decoder.backward(dRecon))
        let df = quantizer.backward(dFHat: dFHat, saved: saved)
        _ = encoder.backward(quantConv.backward(df))
        return Step(reconstruction: recon, reconLoss: rl, vqLoss: vq, tokens: saved.tokens, residualRows: saved.residualRows)
    }

    /// What decoder fine-tuning trains: post_quant_conv and the decoder (everything after f-hat).
    public var decoderParameters: [Parameter] { postQuantConv.parameters + decoder.parameters }

    /// Forward + backward of mse(x̂, x) through the decoder alone: the encoder, quant_conv and quantiser run forward
    /// only, so every image keeps its tokens and its f-hat (the VAR and DiT trained on them stay valid) while the
    /// decoder learns to draw them better. Gradients reach `decoderParameters` only; the step's `vqLoss` is the
    /// frozen quantiser's (for the log).
    public func decoderTrainStep(_ x: Tensor) -> Step {
        let f = encodeLatent(x)  // the inference path, as `tokens(images:)` encodes the generators' data
        let (fHat, vq, saved) = quantizer.trainingForward(f)
        let recon = decoder.forward(postQuantConv.forward(fHat))
        let (rl, dRecon) = Losses.mse(recon, x)
        _ = postQuantConv.backward(decoder.backward(dRecon))
        return Step(reconstruction: recon, reconLoss: rl, vqLoss: vq, tokens: saved.tokens, residualRows: saved.residualRows)
    }

    /// Codebook from the residuals of a real batch (see `MultiScaleQuantizer.initialiseCodebook`).
    public func initialiseCodebook(from x: Tensor, seed: UInt64) {
        quantizer.initialiseCodebook(from: quantConv.forward(encoder.forward(x)), seed: seed)
    }

    /// Reconstruction through the training path (the straight-through f̂), without gradients.
    public func reconstruct(_ x: Tensor) -> Tensor {
        let f = quantConv.forward(encoder.forward(x))
        return decoder.forward(postQuantConv.forward(quantizer.trainingForward(f).fHat))
    }
}
