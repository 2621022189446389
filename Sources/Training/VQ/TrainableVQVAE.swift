import Foundation
import Layers
import Tensor

/// Hyper-parameters of a trainable VAR VQ-VAE (official `models.vqvae.VQVAE` / `basic_vae` layout, without the
/// optional attention blocks so small models stay cheap).
public struct VQVAETrainConfig: Codable, Equatable, Sendable {
    public var ch = 32
    public var chMult = [1, 2, 2]
    public var numResBlocks = 1
    public var zChannels = 16
    public var vocabSize = 512
    public var patchNums = [1, 2, 3, 4, 6, 8, 10, 13, 16]
    public var phiCount = 4
    public var beta: Float = 0.25
    public var imageSize = 64
    /// GroupNorm groups (official 32, for widths of 128+). At width 32, 32 groups is instance normalisation: it
    /// normalises away every image's per-channel mean and scale, and the tokenizer came out colourless (issue 14).
    public var normGroups = 32
    /// Codebook from a real batch's residuals at step 0 instead of uniform(±1/V) (issue 14).
    public var dataInitCodebook = false
    /// Every N steps, codes unused in those N steps restart as residual vectors of the batch (0 = never). Resuming
    /// is bit-identical when the checkpoint interval is a multiple of N (the window is not checkpointed).
    public var deadCodeRestartEvery = 0
    /// Encoder / decoder conv init: false = PyTorch's default (uniform, variance 1/(3 fan_in), as the official
    /// code), true = He (variance 2/fan_in) with every ResNet block's last conv at zero, so each block starts as
    /// the identity. The default init shrinks the signal threefold in variance per plain conv; the small decoder
    /// then learned colour only after hundreds of steps (issue 14).
    public var heInit = false
    public init() {}

    private enum CodingKeys: String, CodingKey {
        case ch, chMult, numResBlocks, zChannels, vocabSize, patchNums, phiCount, beta, imageSize, normGroups
        case dataInitCodebook, deadCodeRestartEvery, heInit
    }

    /// Checkpoints written before the last four fields existed used 32 groups, the uniform init, no restarts.
    public init(from decoder: Decoder) throws {
        let k = try decoder.container(keyedBy: CodingKeys.self)
        ch = try k.decode(Int.self, forKey: .ch); chMult = try k.decode([Int].self, forKey: .chMult)
        numResBlocks = try k.decode(Int.self, forKey: .numResBlocks); zChannels = try k.decode(Int.self, forKey: .zChannels)
        vocabSize = try k.decode(Int.self, forKey: .vocabSize); patchNums = try k.decode([Int].self, forKey: .patchNums)
        phiCount = try k.decode(Int.self, forKey: .phiCount); beta = try k.decode(Float.self, forKey: .beta)
        imageSize = try k.decode(Int.self, forKey: .imageSize)
        normGroups = try k.decodeIfPresent(Int.self, forKey: .normGroups) ?? 32
        dataInitCodebook = try k.decodeIfPresent(Bool.self, forKey: .dataInitCodebook) ?? false
        deadCodeRestartEvery = try k.decodeIfPresent(Int.self, forKey: .deadCodeRestartEvery) ?? 0
        heInit = try k.decodeIfPresent(Bool.self, forKey: .heInit) ?? false
    }

    public var downsampling: Int { 1 << (chMult.count - 1) }

    public func validate() throws {
        guard ch > 0, !chMult.isEmpty, normGroups >= 1, chMult.allSatisfy({ $0 > 0 && (ch * $0) % normGroups == 0 }),
            numResBlocks >= 1, zChannels >= 1, vocabSize >= 2, phiCount >= 1, deadCodeRestartEvery >= 0
        else {
            throw TrainingError.config("invalid VQ-VAE config \(self) (widths must be multiples of the \(normGroups) norm groups)")
        }
        guard imageSize % downsampling == 0, patchNums.last == imageSize / downsampling else {
            throw TrainingError.config(
                "the last patch number \(patchNums.last ?? 0) must equal the latent size \(imageSize / downsampling)")
        }
    }
}

/// ResNet block: conv1(silu(norm1(x))) -> conv2(silu(norm2(.))) plus the (1x1 `nin_shortcut` when widths differ) skip.
public final class ResnetBlockLayer: TrainableLayer {
    let main: Sequential
    let shortcut: ConvLayer?
    public init(_ name: String, cin: Int, cout: Int, groups: Int, seed: UInt64, stream: inout UInt64) {
        func next() -> UInt64 { stream += 2; return stream }
        main = Sequential([
            GroupNormLayer(name + ".norm1", channels: cin, groups: groups, eps: 1e-6), SiLULayer(),
            ConvLayer(name + ".conv1", cin: cin, cout: cout, kernel: 3, seed: seed, stream: next()),
            GroupNormLayer(name + ".norm2", channels: cout, groups: groups, eps: 1e-6), SiLULayer(),
            ConvLayer(name + ".conv2", cin: cout, cout: cout, kernel: 3, seed: seed, stream: next()),
        ])
        shortcut = cin != cout ? ConvLayer(name + ".nin_shortcut", cin: cin, cout: cout, kernel: 1, seed: seed, stream: next()) : nil
    }
    public func forward(_ x: Tensor) -> Tensor {
        var h = main.forward(x)
        h.addInPlace(shortcut?.forward(x) ?? x)
        return h
    }
    public func backward(_ dy: Tensor) -> Tensor {
        var dx = main.backward(dy)
        dx.addInPlace(shortcut?.backward(dy) ?? dy)
        return dx
    }
    public var parameters: [Parameter] { main.parameters + (shortcut?.parameters ?? []) }
}

/// Nearest x2 upsampling followed by a 3x3 conv (`upsample.conv`).
public final class UpsampleLayer: TrainableLayer {
    let conv: ConvLayer
    private var inShape: [Int] = []
    public init(_ name: String, channels: Int, seed: UInt64, stream: UInt64) {
        conv = ConvLayer(name + ".conv", cin: channels, cout: channels, kernel: 3, seed: seed, stream: stream)
    }
    public func forward(_ x: Tensor) -> Tensor {
        inShape = x.shape
        return conv.forward(x.interpolated(height: 2 * x.dim(-2), width: 2 * x.dim(-1), mode: .nearest))
    }
    public func backward(_ dy: Tensor) -> Tensor {
        InterpolateGrad.backward(inputShape: inShape, mode: .nearest, dy: conv.backward(dy))
    }
    public var parameters: [Parameter] { conv.parameters }
}

/// The VAR VQ-VAE for training. Parameter names are the official state-dict keys, so a checkpoint written by
/// `TrainCheckpoint` loads directly in the inference `VQVAE` (Autoencoders) and the VAR sampler.
/// Loss: mse(x̂, x) + L_vq (the quantiser's β-commitment loss averaged over scales, as `VectorQuantizer2`).
public final class TrainableVQVAE {
    public let config: VQVAETrainConfig
    public let encoder: Sequential
    public let quantConv: ConvLayer
    public let quantizer: TrainableQuantizer
    public let postQuantConv: ConvLayer
    public let decoder: Sequential

    public static let modelName = "var-vqvae"

    public init(config c: VQVAETrainConfig, seed: UInt64) throws {
        try c.validate()
        config = c
        var stream: UInt64 = 0
        func next() -> UInt64 { stream += 2; return stream }
        var enc: [TrainableLayer] = [ConvLayer("encoder.conv_in", cin: 3, cout: c.ch, kernel: 3, seed: seed, stream: next())]
        let inMult = [1] + c.chMult
        var blockIn = c.ch
        for l in 0..<c.chMult.count {
            blockIn = c.ch * inMult[l]
            let blockOut = c.ch * c.chMult[l]
            for b in 0..<c.numResBlocks {
                enc.append(
                    ResnetBlockLayer(
                        "encoder.down.\(l).block.\(b)", cin: blockIn, cout: blockOut, groups: c.normGroups, seed: seed, stream: &stream))
                blockIn = blockOut
            }
            if l != c.chMult.count - 1 {
                enc.append(
                    ConvLayer(
                        "encoder.down.\(l).downsample.conv", cin: blockIn, cout: blockIn, kernel: 3, stride: 2,
                        pads: (0, 1, 0, 1), seed: seed, stream: next()))
            }
        }
        enc.append(ResnetBlockLayer("encoder.mid.block_1", cin: blockIn, cout: blockIn, groups: c.normGroups, seed: seed, stream: &stream))
        enc.append(ResnetBlockLayer("encoder.mid.block_2", cin: blockIn, cout: blockIn, groups: c.normGroups, seed: seed, stream: &stream))
        enc.append(GroupNormLayer("encoder.norm_out", channels: blockIn, groups: c.normGroups, eps: 1e-6))
        enc.append(SiLULayer())
        enc.append(ConvLayer("encoder.conv_out", cin: blockIn, cout: c.zChannels, kernel: 3, seed: seed, stream: next()))
        encoder = Sequential(enc)
        quantConv = ConvLayer("quant_conv", cin: c.zChannels, cout: c.zChannels, kernel: 3, seed: seed, stream: next())
        quantizer = try TrainableQuantizer(
            vocabSize: c.vocabSize, channels: c.zChannels, patchNums: c.patchNums,
            phiCount: c.phiCount, resiRatio: 0.5, beta: c.beta, seed: seed, stream: next())
        stream += 2 * UInt64(c.phiCount) + 2
        postQuantConv = ConvLayer("post_quant_conv", cin: c.zChannels, cout: c.zChannels, kernel: 3, seed: seed, stream: next())
        blockIn = c.ch * c.chMult.last!
        var dec: [TrainableLayer] = [ConvLayer("decoder.conv_in", cin: c.zChannels, cout: blockIn, kernel: 3, seed: seed, stream: next())]
        dec.append(ResnetBlockLayer("decoder.mid.block_1", cin: blockIn, cout: blockIn, groups: c.normGroups, seed: seed, stream: &stream))
        dec.append(ResnetBlockLayer("decoder.mid.block_2", cin: blockIn, cout: blockIn, groups: c.normGroups, seed: seed, stream: &stream))
        for l in stride(from: c.chMult.count - 1, through: 0, by: -1) {
            let blockOut = c.ch * c.chMult[l]
            for b in 0...c.numResBlocks {
                dec.append(
                    ResnetBlockLayer(
                        "decoder.up.\(l).block.\(b)", cin: blockIn, cout: blockOut, groups: c.normGroups, seed: seed, stream: &stream))
                blockIn = blockOut
            }
            if l != 0 { dec.append(UpsampleLayer("decoder.up.\(l).upsample", channels: blockIn, seed: seed, stream: next())) }
        }
        dec.append(GroupNormLayer("decoder.norm_out", channels: blockIn, groups: c.normGroups, eps: 1e-6))
        dec.append(SiLULayer())
        dec.append(ConvLayer("decoder.conv_out", cin: blockIn, cout: 3, kernel: 3, seed: seed, stream: next()))
        decoder = Sequential(dec)
        if c.heInit {
            for p in encoder.parameters + quantConv.parameters + postQuantConv.parameters + decoder.parameters {
                if p.name.hasSuffix(".conv2.weight") || p.name.hasSuffix(".conv2.bias") {
                    p.value = Tensor(zeros: p.value.shape)
                } else if p.value.rank == 4 {
                    p.value = p.value * Float(6).squareRoot()  // uniform(±√(6/fan_in)): variance 2/fan_in
                }
            }
        }
    }

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
        let (fHat, vq, saved) = quantizer.forward(f)
        let recon = decoder.forward(postQuantConv.forward(fHat))
        let (rl, dRecon) = Losses.mse(recon, x)
        let dFHat = postQuantConv.backward(decoder.backward(dRecon))
        let df = quantizer.backward(dFHat: dFHat, saved: saved)
        _ = encoder.backward(quantConv.backward(df))
        return Step(reconstruction: recon, reconLoss: rl, vqLoss: vq, tokens: saved.tokens, residualRows: saved.residualRows)
    }

    /// Codebook from the residuals of a real batch (see `TrainableQuantizer.initialiseCodebook`).
    public func initialiseCodebook(from x: Tensor, seed: UInt64) {
        quantizer.initialiseCodebook(from: quantConv.forward(encoder.forward(x)), seed: seed)
    }

    /// Reconstruction without gradients (for evaluation).
    public func reconstruct(_ x: Tensor) -> Tensor {
        let f = quantConv.forward(encoder.forward(x))
        return decoder.forward(postQuantConv.forward(quantizer.forward(f).fHat))
    }
}
