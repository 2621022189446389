import Foundation
import ModelIO

/// diffusers `AutoencoderKL` configuration (the Stable-Diffusion VAE family: sd-vae-ft-ema / -mse use
/// block_out_channels [128, 256, 512, 512], 2 layers per block, 4 latent channels, 32 groups, scale 0.18215).
public struct KLVAEConfig: Equatable, Sendable {
    public var inChannels = 3
    public var outChannels = 3
    public var blockOutChannels: [Int] = [128, 256, 512, 512]
    public var layersPerBlock = 2
    public var latentChannels = 4
    public var normNumGroups = 32
    public var scalingFactor: Float = 0.18215
    /// Added after scaling by some families (SD3/Flux); nil for the SD VAE that DiT uses.
    public var shiftFactor: Float?
    public var useQuantConv = true
    public var usePostQuantConv = true
    public var midBlockAddAttention = true

    public init() {}

    /// The sd-vae-ft-ema / sd-vae-ft-mse architecture.
    public static let stableDiffusion = KLVAEConfig()

    /// Spatial reduction factor (8 for four blocks).
    public var downsampleFactor: Int { 1 << (blockOutChannels.count - 1) }

    /// Reads diffusers' config.json. Unsupported block types or activations are refused, naming the field.
    public static func fromJSON(path: String) throws -> KLVAEConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CheckpointError.cannotOpen(path: path, reason: "no such file")
        }
        guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CheckpointError.malformed(path: path, reason: "config is not a JSON object")
        }
        func bad(_ s: String) -> CheckpointError { .unsupported(path: path, reason: s) }
        var c = KLVAEConfig()
        func int(_ k: String) -> Int? { (obj[k] as? NSNumber)?.intValue }
        if let v = int("in_channels") { c.inChannels = v }
        if let v = int("out_channels") { c.outChannels = v }
        if let v = obj["block_out_channels"] as? [NSNumber] { c.blockOutChannels = v.map(\.intValue) }
        if let v = int("layers_per_block") { c.layersPerBlock = v }
        if let v = int("latent_channels") { c.latentChannels = v }
        if let v = int("norm_num_groups") { c.normNumGroups = v }
        if let v = obj["scaling_factor"] as? NSNumber { c.scalingFactor = v.floatValue }
        if let v = obj["shift_factor"] as? NSNumber { c.shiftFactor = v.floatValue }
        if let v = obj["use_quant_conv"] as? Bool { c.useQuantConv = v }
        if let v = obj["use_post_quant_conv"] as? Bool { c.usePostQuantConv = v }
        if let v = obj["mid_block_add_attention"] as? Bool { c.midBlockAddAttention = v }
        if let act = obj["act_fn"] as? String, act != "silu" { throw bad("act_fn '\(act)' (only silu is implemented)") }
        if let types = obj["down_block_types"] as? [String], let t = types.first(where: { $0 != "DownEncoderBlock2D" }) {
            throw bad("down block type '\(t)' (only DownEncoderBlock2D)")
        }
        if let types = obj["up_block_types"] as? [String], let t = types.first(where: { $0 != "UpDecoderBlock2D" }) {
            throw bad("up block type '\(t)' (only UpDecoderBlock2D)")
        }
        if let types = obj["down_block_types"] as? [String], types.count != c.blockOutChannels.count {
            throw bad("\(types.count) down blocks for \(c.blockOutChannels.count) block_out_channels")
        }
        guard !c.blockOutChannels.isEmpty, c.layersPerBlock >= 1, c.latentChannels >= 1, c.normNumGroups >= 1 else {
            throw bad("empty or non-positive sizes in the config")
        }
        return c
    }

    /// Reads the sizes off the decoder's weights (config.json absent). The group count is not in the shapes:
    /// the SD default 32 is kept unless `groups` is given.
    public static func infer(from a: TensorArchive, groups: Int? = nil) throws -> KLVAEConfig {
        guard a.contains("decoder.conv_in.weight"), a.contains("decoder.up_blocks.0.resnets.0.conv1.weight") else {
            let sample = a.keys.prefix(4).map { "'\($0)'" }.joined(separator: ", ")
            throw CheckpointError.unsupported(
                path: a.path,
                reason: "not a diffusers AutoencoderKL: no 'decoder.conv_in.weight' / "
                    + "'decoder.up_blocks.0.resnets.0.conv1.weight' (its first keys are \(sample))")
        }
        var c = KLVAEConfig()
        let convIn = try a.requireInfo("decoder.conv_in.weight").shape
        let convOut = try a.requireInfo("decoder.conv_out.weight").shape
        c.latentChannels = convIn[1]
        c.outChannels = convOut[0]
        if let e = a.info("encoder.conv_in.weight") { c.inChannels = e.shape[1] } else { c.inChannels = c.outChannels }
        var outs: [Int] = []
        while let s = a.info("decoder.up_blocks.\(outs.count).resnets.0.conv1.weight") { outs.append(s.shape[0]) }
        c.blockOutChannels = outs.reversed()
        var layers = 0
        while a.contains("decoder.up_blocks.0.resnets.\(layers).conv1.weight") { layers += 1 }
        c.layersPerBlock = layers - 1
        c.useQuantConv = a.contains("quant_conv.weight")
        c.usePostQuantConv = a.contains("post_quant_conv.weight")
        c.midBlockAddAttention = a.contains("decoder.mid_block.attentions.0.group_norm.weight")
        if let groups { c.normNumGroups = groups }
        guard c.layersPerBlock >= 1 else {
            throw CheckpointError.unsupported(path: a.path, reason: "decoder up block 0 has \(layers) resnets (need at least 2)")
        }
        return c
    }
}
