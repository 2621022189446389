import Foundation
import Tensor

/// A state dict of random tensors in given shapes, generated on demand (weights ~ N(0, 1/fan_in)-like uniform,
/// norms' weights 1), so benchmarks build the real models without files. With `shareBlocks`, every
/// `blocks.N.` tensor is the same array (copy-on-write storage is shared, so memory is one block's worth).
public final class RandomArchive: TensorArchive {
    public let path = "<random weights>"
    public let keys: [String]
    private let shapes: [String: [Int]]
    private let shareBlocks: Bool
    private var cache: [String: Tensor] = [:]

    public init(shapes list: [(String, [Int])], shareBlocks: Bool) {
        keys = list.map(\.0)
        shapes = Dictionary(list, uniquingKeysWith: { a, _ in a })
        self.shareBlocks = shareBlocks
    }

    public func info(_ key: String) -> TensorInfo? {
        shapes[key].map { TensorInfo(dtype: key.hasSuffix("lvl_1L") ? .i64 : .f32, shape: $0) }
    }

    public func floatTensor(_ key: String) throws -> Tensor {
        guard let shape = shapes[key] else { throw CheckpointError.missingKey(path: path, key: key, available: keys.count) }
        var cacheKey = key
        if shareBlocks, key.hasPrefix("blocks."), let dot = key.dropFirst(7).firstIndex(of: ".") {
            cacheKey = "blocks.*" + key[dot...]
            if let t = cache[cacheKey] { return t }
        }
        let n = shape.reduce(1, *)
        let t: Tensor
        if key.hasSuffix("norm1.weight") || key.hasSuffix("norm2.weight") || key.hasSuffix("norm.weight")
            || key.hasSuffix("norm_out.weight")
        {
            t = Tensor(repeating: 1, shape: shape)
        } else if key.hasSuffix("scale_mul_1H11") {
            t = Tensor(repeating: logf(4), shape: shape)
        } else {
            let fanIn = shape.count >= 2 ? shape.dropFirst().reduce(1, *) : 1
            let bound = key.hasSuffix(".bias") ? 0.01 : Float(3.0 / Double(max(fanIn, 1))).squareRoot()
            var state: UInt64 = 0x9E37_79B9_7F4A_7C15 &* UInt64(truncatingIfNeeded: key.utf8.reduce(5381) { ($0 << 5) &+ $0 &+ Int($1) })
            var d = [Float](repeating: 0, count: n)
            for i in 0..<n {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                d[i] = (Float(state >> 40) * 0x1p-24 * 2 - 1) * bound
            }
            t = Tensor(shape: shape, data: d)
        }
        if shareBlocks && cacheKey != key { cache[cacheKey] = t }
        return t
    }

    public func intTensor(_ key: String) throws -> (shape: [Int], values: [Int64]) {
        let t = try floatTensor(key)
        return (t.shape, t.data.map { Int64($0) })
    }
}
