import Foundation
import ModelIO
import Tensor

// The pre-norm ViT encoder block shared by the metric networks (DINOv2, CLIP's vision tower):
//   x = x + ls1 * attn(norm1(x));  x = x + ls2 * ffn(norm2(x))
// The attention is the shared timm-style `SelfAttention` (DiT runs the same one).

/// The feed-forward half of a ViT block.
public enum ViTFeedForward: Sendable {
    public enum Activation: String, Sendable, Codable {
        /// Exact (erf) GELU: DINOv2, timm.
        case gelu
        /// CLIP's x * sigmoid(1.702 x).
        case quickGELU = "quick_gelu"
    }
    /// fc2(act(fc1(x))).
    case mlp(fc1: Linear, fc2: Linear, activation: Activation)
    /// DINOv2 ViT-g's SwiGLU: w3(silu(a) * b) with (a, b) = w12(x).chunk(2).
    case swiglu(w12: Linear, w3: Linear)

    public func callAsFunction(_ x: Tensor) -> Tensor {
        switch self {
        case let .mlp(fc1, fc2, activation):
            let h = fc1(x)
            switch activation {
            case .gelu: return fc2(h.gelu())
            case .quickGELU: return fc2(h.quickGELU())
            }
        case let .swiglu(w12, w3):
            let ab = w12(x)
            let hidden = w3.inFeatures
            let rows = ab.count / (2 * hidden)
            var out = Tensor.unfilled(rows * hidden)
            ab.data.withUnsafeBufferPointer { p in
                for r in 0..<rows {
                    let a = p.baseAddress! + r * 2 * hidden, b = a + hidden
                    for i in 0..<hidden { out[r * hidden + i] = a[i] / (1 + expf(-a[i])) * b[i] }
                }
            }
            return w3(Tensor(shape: Array(ab.shape.dropLast()) + [hidden], data: out))
        }
    }
}

public struct ViTBlock: Sendable {
    public var norm1: LayerNorm, attention: SelfAttention
    public var norm2: LayerNorm, feedForward: ViTFeedForward
    /// DINOv2's LayerScale gammas (nil in CLIP).
    public var layerScale1: Tensor?, layerScale2: Tensor?

    public init(
        norm1: LayerNorm, attention: SelfAttention, norm2: LayerNorm, feedForward: ViTFeedForward,
        layerScale1: Tensor? = nil, layerScale2: Tensor? = nil
    ) {
        self.norm1 = norm1; self.attention = attention; self.norm2 = norm2; self.feedForward = feedForward
        self.layerScale1 = layerScale1; self.layerScale2 = layerScale2
    }

    /// x: [B, T, D].
    public func callAsFunction(_ x: Tensor) -> Tensor {
        var h = x
        h.addInPlace(Self.scaled(attention(norm1(x)), layerScale1))
        h.addInPlace(Self.scaled(feedForward(norm2(h)), layerScale2))
        return h
    }

    /// The block's output at token 0 only (see `FirstTokenBlock`); models keep a `FirstTokenBlock` of their
    /// last block instead of calling this per image.
    public func firstTokenOutput(_ x: Tensor) -> Tensor { FirstTokenBlock(self)(x) }

    /// y * gamma over the last axis.
    static func scaled(_ y: Tensor, _ gamma: Tensor?) -> Tensor {
        guard let gamma else { return y }
        let d = gamma.count
        var out = y
        out.data.withUnsafeMutableBufferPointer { p in
            gamma.data.withUnsafeBufferPointer { g in
                for r in 0..<(p.count / d) { for i in 0..<d { p[r * d + i] *= g[i] } }
            }
        }
        return out
    }
}

/// A block run for token 0 only, [1, 1, D] from x [1, T, D]: what a feature taken from the CLS token needs of
/// the last block. Keys and values still see every token; the query, the projection and the feed-forward run on
/// one row instead of T (a few percent of a ViT-L forward pass). The fused qkv weight is split once, here.
public struct FirstTokenBlock: Sendable {
    let block: ViTBlock
    let query: Linear, keyValue: Linear

    public init(_ block: ViTBlock) {
        self.block = block
        let qkv = block.attention.qkv, d = qkv.inFeatures
        let w = qkv.weight.data, b = qkv.bias?.data
        query = Linear(
            weight: Tensor(shape: [d, d], data: Array(w[0..<(d * d)])), bias: b.map { Tensor(shape: [d], data: Array($0[0..<d])) })
        keyValue = Linear(
            weight: Tensor(shape: [2 * d, d], data: Array(w[(d * d)...])),
            bias: b.map { Tensor(shape: [2 * d], data: Array($0[d...])) })
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.rank == 3 && x.shape[0] == 1, "FirstTokenBlock expects [1, T, D], got \(x.shape)")
        let (t, d) = (x.shape[1], x.shape[2])
        let heads = block.attention.heads, hd = d / heads
        let normed = block.norm1(x)
        let q = query(tokenRow(normed, 0)).reshaped([1, heads, 1, hd])
        let kv = keyValue(normed).reshaped([1, t, 2, heads, hd]).permuted([2, 0, 3, 1, 4]).split([1, 1], dim: 0)
        let o = scaledDotProductAttention(
            q: q, k: kv[0].reshaped([1, heads, t, hd]), v: kv[1].reshaped([1, heads, t, hd]),
            scale: 1 / Float(hd).squareRoot())
        var h = tokenRow(x, 0).reshaped([1, 1, d])
        h.addInPlace(ViTBlock.scaled(block.attention.proj(o.reshaped([1, 1, d])), block.layerScale1))
        h.addInPlace(ViTBlock.scaled(block.feedForward(block.norm2(h)), block.layerScale2))
        return h
    }
}

/// Shape facts of a ViT read from its weights, with checks that name the file and key.
struct ViTShapes {
    /// Number of consecutive `<prefix>N.` blocks present (0, 1, 2, ... without gaps).
    static func depth(_ r: WeightReader, blockPrefix: String, probe: String) -> Int {
        var n = 0
        while r.has("\(blockPrefix)\(n).\(probe)") { n += 1 }
        return n
    }

    /// A square grid side from a token count (`tokens` = side * side), or an error naming the key.
    static func gridSide(_ tokens: Int, path: String, key: String, shape: [Int]) throws -> Int {
        let side = Int(Double(tokens).squareRoot().rounded())
        guard side > 0, side * side == tokens else {
            throw CheckpointError.malformed(path: path, reason: "\(key) \(shape): \(tokens) patch positions are not a square grid")
        }
        return side
    }
}

/// Token rows of one image: [1, T, D] -> the row at `index` as [D].
func tokenRow(_ x: Tensor, _ index: Int) -> Tensor {
    let d = x.dim(-1)
    return Tensor(shape: [d], data: Array(x.data[(index * d)..<((index + 1) * d)]))
}

/// Conv patch embedding output [1, D, gh, gw] -> tokens [1, gh * gw, D] (row-major over the grid).
func patchTokens(_ y: Tensor) -> Tensor {
    let (d, gh, gw) = (y.shape[1], y.shape[2], y.shape[3])
    return y.reshaped([1, d, gh * gw]).permuted([0, 2, 1])
}
