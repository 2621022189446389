import Foundation
import ModelIO
import Tensor

extension KLVAEConfig {
    /// Every tensor of the diffusers state dict for this config (current key names), with its shape. Used to
    /// build random-weight models for benchmarks and to check the architecture against real files.
    public func stateDictShapes() -> [(key: String, shape: [Int])] {
        var out: [(key: String, shape: [Int])] = []
        func conv(_ k: String, _ o: Int, _ i: Int, _ s: Int) { out.append((k + ".weight", [o, i, s, s])); out.append((k + ".bias", [o])) }
        func norm(_ k: String, _ c: Int) { out.append((k + ".weight", [c])); out.append((k + ".bias", [c])) }
        func lin(_ k: String, _ c: Int) { out.append((k + ".weight", [c, c])); out.append((k + ".bias", [c])) }
        func resnet(_ k: String, _ i: Int, _ o: Int) {
            norm(k + ".norm1", i); conv(k + ".conv1", o, i, 3); norm(k + ".norm2", o); conv(k + ".conv2", o, o, 3)
            if i != o { conv(k + ".conv_shortcut", o, i, 1) }
        }
        func mid(_ k: String, _ c: Int) {
            resnet(k + ".resnets.0", c, c)
            if midBlockAddAttention {
                let a = k + ".attentions.0"
                norm(a + ".group_norm", c)
                for n in ["to_q", "to_k", "to_v", "to_out.0"] { lin(a + "." + n, c) }
            }
            resnet(k + ".resnets.1", c, c)
        }
        let ch = blockOutChannels, last = ch[ch.count - 1]
        conv("encoder.conv_in", ch[0], inChannels, 3)
        var cin = ch[0]
        for (i, c) in ch.enumerated() {
            for j in 0..<layersPerBlock { resnet("encoder.down_blocks.\(i).resnets.\(j)", j == 0 ? cin : c, c) }
            if i < ch.count - 1 { conv("encoder.down_blocks.\(i).downsamplers.0.conv", c, c, 3) }
            cin = c
        }
        mid("encoder.mid_block", last)
        norm("encoder.conv_norm_out", last)
        conv("encoder.conv_out", 2 * latentChannels, last, 3)
        let rev = Array(ch.reversed())
        conv("decoder.conv_in", rev[0], latentChannels, 3)
        mid("decoder.mid_block", rev[0])
        var prev = rev[0]
        for (i, c) in rev.enumerated() {
            for j in 0...layersPerBlock { resnet("decoder.up_blocks.\(i).resnets.\(j)", j == 0 ? prev : c, c) }
            if i < rev.count - 1 { conv("decoder.up_blocks.\(i).upsamplers.0.conv", c, c, 3) }
            prev = c
        }
        norm("decoder.conv_norm_out", rev[rev.count - 1])
        conv("decoder.conv_out", outChannels, rev[rev.count - 1], 3)
        if useQuantConv { conv("quant_conv", 2 * latentChannels, 2 * latentChannels, 1) }
        if usePostQuantConv { conv("post_quant_conv", latentChannels, latentChannels, 1) }
        return out
    }
}

/// Tensors held in memory under names (for random-weight models and tests).
public final class MemoryArchive: TensorArchive {
    public let path: String
    public private(set) var keys: [String] = []
    private var tensors: [String: Tensor] = [:]

    public init(path: String = "<memory>", tensors: [(String, Tensor)] = []) {
        self.path = path
        for (k, t) in tensors { set(k, t) }
    }

    public func set(_ key: String, _ t: Tensor) {
        if tensors[key] == nil { keys.append(key) }
        tensors[key] = t
    }

    public func info(_ key: String) -> TensorInfo? { tensors[key].map { TensorInfo(dtype: .f32, shape: $0.shape) } }

    public func floatTensor(_ key: String) throws -> Tensor {
        guard let t = tensors[key] else { throw CheckpointError.missingKey(path: path, key: key, available: keys.count) }
        return t
    }

    public func intTensor(_ key: String) throws -> (shape: [Int], values: [Int64]) {
        throw CheckpointError.wrongDType(path: path, key: key, dtype: "F32", wanted: "an integer type")
    }
}

extension KLVAE {
    /// Random weights in the shapes of `config` (benchmarks): N(0, 1/fan_in) convs and linears, unit norms.
    public static func random(config: KLVAEConfig, seed: UInt64 = 0) throws -> KLVAE {
        var rng = PhiloxRandom(seed: seed)
        let a = MemoryArchive(path: "<random KL-VAE>")
        for (key, shape) in config.stateDictShapes() {
            if key.hasSuffix(".bias") {
                a.set(key, Tensor(zeros: shape))
            } else if shape.count == 1 {
                a.set(key, Tensor(repeating: 1, shape: shape))
            } else {
                let fanIn = shape.dropFirst().reduce(1, *)
                a.set(key, Tensor.randn(shape, rng: &rng) * (1 / Float(fanIn).squareRoot()))
            }
        }
        return try KLVAE(archive: a, config: config)
    }
}
