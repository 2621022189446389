import Foundation
import Layers
import ModelIO
import Tensor

/// diffusers `AutoencoderKL` (the Stable-Diffusion KL-f8 VAE that DiT decodes with), encoder and decoder.
///   encode: conv_in -> down blocks (resnets, Downsample pad (0,1,0,1) + 3x3/2 on all but the last) -> mid
///           (resnet, attention, resnet) -> GroupNorm -> SiLU -> conv_out (2L) -> quant_conv;
///           mean, logvar = chunk(2); logvar clamped to [-30, 20].
///   decode: post_quant_conv -> conv_in -> mid -> up blocks (layers+1 resnets, nearest x2 + conv on all but
///           the last) -> GroupNorm -> SiLU -> conv_out. No clamping and no latent scaling (callers divide by
///           `scalingFactor`, as DiT's sample.py does `vae.decode(z / 0.18215)`).
/// GroupNorm eps 1e-6 everywhere; the mid attention is single-head over H*W with scale 1/sqrt(C).
public struct KLVAE: @unchecked Sendable {
    public let config: KLVAEConfig
    public var encoder: KLEncoder?
    public var decoder: KLDecoder
    public var quantConv: Conv2d?
    public var postQuantConv: Conv2d?

    static let eps: Float = 1e-6

    public init(config: KLVAEConfig, encoder: KLEncoder?, decoder: KLDecoder, quantConv: Conv2d?, postQuantConv: Conv2d?) {
        self.config = config; self.encoder = encoder; self.decoder = decoder
        self.quantConv = quantConv; self.postQuantConv = postQuantConv
    }

    /// Builds the model from a state dict with diffusers key names (current `to_q/to_k/to_v/to_out.0` or the
    /// legacy `query/key/value/proj_attn` attention names). The encoder is optional (decode-only files).
    public init(archive: TensorArchive, config: KLVAEConfig) throws {
        self.config = config
        let r = WeightReader(archive)
        let l = config.latentChannels
        decoder = try KLDecoder(r["decoder"], config: config)
        encoder = archive.contains("encoder.conv_in.weight") ? try KLEncoder(r["encoder"], config: config) : nil
        quantConv =
            config.useQuantConv && encoder != nil
            ? try r.conv("quant_conv", inChannels: 2 * l, outChannels: 2 * l) : nil
        postQuantConv = config.usePostQuantConv ? try r.conv("post_quant_conv", inChannels: l, outChannels: l) : nil
    }

    /// Latents [N, L, h, w] (already divided by the scaling factor) -> images [N, C, 8h, 8w], roughly [-1, 1].
    public func decode(_ z: Tensor) throws -> Tensor {
        guard z.rank == 4, z.shape[1] == config.latentChannels else {
            throw AutoencoderError.badInput("KL-VAE decode expects latents [N, \(config.latentChannels), h, w], got \(z.shape)")
        }
        return decoder(postQuantConv.map { $0(z) } ?? z)
    }

    /// Images [N, C, H, W] in [-1, 1] -> the diagonal Gaussian posterior (mean, logvar), each [N, L, H/8, W/8].
    public func encode(_ x: Tensor) throws -> (mean: Tensor, logvar: Tensor) {
        guard let encoder else { throw AutoencoderError.badInput("this KL-VAE checkpoint has no encoder weights") }
        let f = config.downsampleFactor
        guard x.rank == 4, x.shape[1] == config.inChannels, x.shape[2] % f == 0, x.shape[3] % f == 0 else {
            throw AutoencoderError.badInput(
                "KL-VAE encode expects images [N, \(config.inChannels), H, W] with H, W multiples of \(f), got \(x.shape)")
        }
        var moments = encoder(x)
        if let quantConv { moments = quantConv(moments) }
        let parts = moments.split([config.latentChannels, config.latentChannels], dim: 1)
        return (parts[0], parts[1].clamped(-30, 20))
    }

    /// Loads from a directory (diffusers layout: `diffusion_pytorch_model.safetensors` or `.bin`, optionally under
    /// `vae/`, with `config.json` beside) or from a weights file (config.json beside it if present, else sizes
    /// inferred from the shapes with `groups` GroupNorm groups, default 32).
    public static func load(path: String, groups: Int? = nil) throws -> KLVAE {
        let weights = try resolveWeights(path)
        let archive = try CheckpointLoader.open(path: weights)
        let configPath = URL(fileURLWithPath: weights).deletingLastPathComponent().appendingPathComponent("config.json").path
        var config: KLVAEConfig
        if FileManager.default.fileExists(atPath: configPath), try isVAEConfig(configPath) {
            config = try KLVAEConfig.fromJSON(path: configPath)
            if let groups { config.normNumGroups = groups }
        } else {
            config = try KLVAEConfig.infer(from: archive, groups: groups)
        }
        return try KLVAE(archive: archive, config: config)
    }

    /// Whether the config.json beside the weights describes an AutoencoderKL. One that cannot be read or parsed is an
    /// error, never silently replaced by sizes guessed from the weights (the GroupNorm count is not in the shapes).
    static func isVAEConfig(_ path: String) throws -> Bool {
        guard let d = FileManager.default.contents(atPath: path) else {
            throw CheckpointError.cannotOpen(path: path, reason: "config.json beside the VAE weights cannot be read")
        }
        guard let parsed = try? JSONSerialization.jsonObject(with: d) else {
            throw CheckpointError.malformed(path: path, reason: "config.json beside the VAE weights is not valid JSON")
        }
        guard let o = parsed as? [String: Any] else { return false }
        return (o["_class_name"] as? String) == "AutoencoderKL" || o["latent_channels"] != nil
    }

    /// The weights file for a path that is a file or a diffusers directory.
    public static func resolveWeights(_ path: String) throws -> String {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw CheckpointError.cannotOpen(path: path, reason: "no such file or directory")
        }
        if !isDir.boolValue { return path }
        let dir = URL(fileURLWithPath: path)
        for sub in ["", "vae"] {
            for name in ["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"] {
                let p = (sub.isEmpty ? dir : dir.appendingPathComponent(sub)).appendingPathComponent(name).path
                if FileManager.default.fileExists(atPath: p) { return p }
            }
        }
        throw CheckpointError.cannotOpen(
            path: path, reason: "directory has no diffusion_pytorch_model.safetensors or .bin (nor under vae/)")
    }
}

public enum AutoencoderError: Error, CustomStringConvertible, Equatable {
    case badInput(String)
    public var description: String {
        switch self {
        case let .badInput(s): return s
        }
    }
}

/// UNetMidBlock2D without time embedding: resnet, (attention), resnet.
public struct KLMidBlock: @unchecked Sendable {
    public var resnet1: ResnetBlock
    public var attention: SpatialAttention?
    public var resnet2: ResnetBlock

    init(_ r: WeightReader, channels c: Int, config: KLVAEConfig) throws {
        resnet1 = try klResnet(r["resnets"]["0"], in: c, out: c, groups: config.normNumGroups)
        attention = config.midBlockAddAttention ? try klAttention(r["attentions"]["0"], channels: c, groups: config.normNumGroups) : nil
        resnet2 = try klResnet(r["resnets"]["1"], in: c, out: c, groups: config.normNumGroups)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = resnet1(x)
        if let attention { h = attention(h) }
        return resnet2(h)
    }
}

public struct KLEncoder: @unchecked Sendable {
    public var convIn: Conv2d
    /// Per down block: its resnets and the optional downsampler.
    public var blocks: [(resnets: [ResnetBlock], down: ConvLayer?)]
    public var mid: KLMidBlock
    public var normOut: GroupNorm
    public var convOut: Conv2d

    init(_ r: WeightReader, config c: KLVAEConfig) throws {
        let ch = c.blockOutChannels
        convIn = try r.conv("conv_in", inChannels: c.inChannels, outChannels: ch[0])
        var blocks: [(resnets: [ResnetBlock], down: ConvLayer?)] = []
        var cin = ch[0]
        for (i, cout) in ch.enumerated() {
            let b = r["down_blocks"]["\(i)"]
            var res: [ResnetBlock] = []
            for j in 0..<c.layersPerBlock {
                res.append(try klResnet(b["resnets"]["\(j)"], in: j == 0 ? cin : cout, out: cout, groups: c.normNumGroups))
            }
            let down =
                i < ch.count - 1
                ? try downsampleConv(
                    b["downsamplers"]["0"].name("conv"), channels: cout, source: ArchiveParameters(r.archive), initial: noNewWeights)
                : nil
            blocks.append((res, down))
            cin = cout
        }
        self.blocks = blocks
        mid = try KLMidBlock(r["mid_block"], channels: ch[ch.count - 1], config: c)
        normOut = try r.groupNorm("conv_norm_out", channels: ch[ch.count - 1], groups: c.normNumGroups, eps: KLVAE.eps)
        convOut = try r.conv("conv_out", inChannels: ch[ch.count - 1], outChannels: 2 * c.latentChannels)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = convIn(x)
        for b in blocks {
            for res in b.resnets { h = res(h) }
            if let d = b.down { h = d(h) }
        }
        h = mid(h)
        return convOut(normOut(h, thenSiLU: true))
    }
}

public struct KLDecoder: @unchecked Sendable {
    public var convIn: Conv2d
    public var mid: KLMidBlock
    /// Up blocks in execution order (deepest first): resnets and the optional upsampler.
    public var blocks: [(resnets: [ResnetBlock], up: Upsample?)]
    public var normOut: GroupNorm
    public var convOut: Conv2d

    init(_ r: WeightReader, config c: KLVAEConfig) throws {
        let rev = Array(c.blockOutChannels.reversed())
        convIn = try r.conv("conv_in", inChannels: c.latentChannels, outChannels: rev[0])
        mid = try KLMidBlock(r["mid_block"], channels: rev[0], config: c)
        var blocks: [(resnets: [ResnetBlock], up: Upsample?)] = []
        var prev = rev[0]
        for (i, cout) in rev.enumerated() {
            let b = r["up_blocks"]["\(i)"]
            var res: [ResnetBlock] = []
            for j in 0...c.layersPerBlock {
                res.append(try klResnet(b["resnets"]["\(j)"], in: j == 0 ? prev : cout, out: cout, groups: c.normNumGroups))
            }
            let up =
                i < rev.count - 1
                ? try Upsample(
                    b["upsamplers"]["0"].name("conv"), channels: cout, source: ArchiveParameters(r.archive), initial: noNewWeights)
                : nil
            blocks.append((res, up))
            prev = cout
        }
        self.blocks = blocks
        normOut = try r.groupNorm("conv_norm_out", channels: rev[rev.count - 1], groups: c.normNumGroups, eps: KLVAE.eps)
        convOut = try r.conv("conv_out", inChannels: rev[rev.count - 1], outChannels: c.outChannels)
    }

    func callAsFunction(_ z: Tensor) -> Tensor {
        var h = mid(convIn(z))
        for b in blocks {
            for res in b.resnets { h = res(h) }
            if let u = b.up { h = u(h) }
        }
        return convOut(normOut(h, thenSiLU: true))
    }
}

/// diffusers ResnetBlock2D (no time embedding, output_scale_factor 1) with `groups` GroupNorm groups.
func klResnet(_ r: WeightReader, in cin: Int, out cout: Int, groups: Int) throws -> ResnetBlock {
    try ResnetBlock(
        r.name(), inChannels: cin, outChannels: cout, groups: groups, eps: KLVAE.eps, keys: .diffusers,
        source: ArchiveParameters(r.archive), initial: noNewWeights)
}

/// The mid-block attention: `group_norm` + `to_q/to_k/to_v/to_out.0` (current diffusers) or
/// `query/key/value/proj_attn` (checkpoints saved before diffusers 0.14), all Linear [C, C].
func klAttention(_ r: WeightReader, channels c: Int, groups: Int) throws -> SpatialAttention {
    let legacy = !r.has("to_q.weight") && r.has("query.weight")
    let n = legacy ? ("query", "key", "value", "proj_attn") : ("to_q", "to_k", "to_v", "to_out.0")
    return SpatialAttention(
        norm: try r.groupNorm("group_norm", channels: c, groups: groups, eps: KLVAE.eps),
        q: try r.linear(n.0, inFeatures: c, outFeatures: c), k: try r.linear(n.1, inFeatures: c, outFeatures: c),
        v: try r.linear(n.2, inFeatures: c, outFeatures: c), proj: try r.linear(n.3, inFeatures: c, outFeatures: c))
}
