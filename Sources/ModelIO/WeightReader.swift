import Foundation
import Tensor

/// Reads weights under a key prefix ("decoder.up.0.block.1." ...) and builds layers, checking shapes so a wrong
/// file fails with an error naming the file and key.
public struct WeightReader {
    public let archive: TensorArchive
    public let prefix: String
    public init(_ archive: TensorArchive, prefix: String = "") { self.archive = archive; self.prefix = prefix }

    /// A reader for a sub-module: `reader["mid"]["block_1"]`.
    public subscript(_ name: String) -> WeightReader { WeightReader(archive, prefix: prefix + name + ".") }

    public func has(_ key: String) -> Bool { archive.contains(prefix + key) }

    /// The full key of `key` under this reader's prefix; with no key, the prefix itself without its final dot.
    public func name(_ key: String = "") -> String { key.isEmpty ? String(prefix.dropLast()) : prefix + key }

    public func tensor(_ key: String, shape: [Int]) throws -> Tensor {
        try archive.floatTensor(prefix + key, shape: shape)
    }

    public func shape(_ key: String) throws -> [Int] { try archive.requireInfo(prefix + key).shape }

    /// Conv2d `name.weight` [out, in, k, k] (+ `name.bias` if present); `inChannels` checked when given.
    public func conv(
        _ name: String, inChannels: Int? = nil, outChannels: Int? = nil, stride: Int = 1,
        pads: (Int, Int, Int, Int)? = nil
    ) throws -> Conv2d {
        let w = try tensor(name + ".weight", shape: [outChannels ?? -1, inChannels ?? -1, -1, -1])
        let b = has(name + ".bias") ? try tensor(name + ".bias", shape: [w.shape[0]]) : nil
        let k = w.shape[2]
        let p = pads ?? (k / 2, k / 2, k / 2, k / 2)
        return Conv2d(weight: w, bias: b, stride: stride, pads: p)
    }

    /// Linear `name.weight` [out, in]; a 1x1 conv weight [out, in, 1, 1] is accepted and viewed as a matrix.
    public func linear(_ name: String, inFeatures: Int? = nil, outFeatures: Int? = nil) throws -> Linear {
        let s = try shape(name + ".weight")
        var w: Tensor
        if s.count == 4 {
            w = try tensor(name + ".weight", shape: [outFeatures ?? -1, inFeatures ?? -1, 1, 1])
            w = w.reshaped([s[0], s[1]])
        } else {
            w = try tensor(name + ".weight", shape: [outFeatures ?? -1, inFeatures ?? -1])
        }
        let b = has(name + ".bias") ? try tensor(name + ".bias", shape: [w.shape[0]]) : nil
        return Linear(weight: w, bias: b)
    }

    /// LayerNorm `name.weight` / `name.bias` over the last axis (both required).
    public func layerNorm(_ name: String, width: Int? = nil, eps: Float) throws -> LayerNorm {
        let w = try tensor(name + ".weight", shape: [width ?? -1])
        return LayerNorm(eps: eps, weight: w, bias: try tensor(name + ".bias", shape: [w.count]))
    }

    public func groupNorm(_ name: String, channels: Int? = nil, groups: Int = 32, eps: Float) throws -> GroupNorm {
        let w = try tensor(name + ".weight", shape: [channels ?? -1])
        let b = try tensor(name + ".bias", shape: [w.count])
        guard w.count % groups == 0 else {
            throw CheckpointError.wrongShape(path: archive.path, key: prefix + name + ".weight", expected: [groups], actual: w.shape)
        }
        return GroupNorm(groups: groups, eps: eps, weight: w, bias: b)
    }
}
