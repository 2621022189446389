import Foundation
import Tensor

/// One adaLN-Zero transformer block (models.py `DiTBlock`):
///   (shift1, scale1, gate1, shift2, scale2, gate2) = Linear(SiLU(c)).chunk(6)
///   x += gate1 * Attn(modulate(LN(x), shift1, scale1))
///   x += gate2 * MLP(modulate(LN(x), shift2, scale2))
/// LN has no affine parameters and eps 1e-6; modulate(x, s, a) = x * (1 + a) + s; the MLP uses tanh-GELU.
public struct DiTBlock: Sendable {
    public var qkv: Linear
    public var proj: Linear
    public var fc1: Linear
    public var fc2: Linear
    public var adaLN: Linear
    public var numHeads: Int

    public init(qkv: Linear, proj: Linear, fc1: Linear, fc2: Linear, adaLN: Linear, numHeads: Int) {
        self.qkv = qkv; self.proj = proj; self.fc1 = fc1; self.fc2 = fc2; self.adaLN = adaLN; self.numHeads = numHeads
    }

    static let norm = LayerNorm(eps: 1e-6)

    /// x: [N, T, D]; siluC: SiLU(c) as [N, D] (shared by all blocks, so computed once by the caller).
    public func callAsFunction(_ x: Tensor, siluC: Tensor) -> Tensor {
        let d = x.dim(-1)
        let mod = adaLN(siluC)                    // [N, 6D]
        var h = x
        let a = attention(DiTBlock.modulate(DiTBlock.norm(h), mod, shift: 0, scale: 1, width: d))
        DiTBlock.addGated(&h, a, mod, gate: 2, width: d)
        let m = fc2(fc1(DiTBlock.modulate(DiTBlock.norm(h), mod, shift: 3, scale: 4, width: d)).geluTanh())
        DiTBlock.addGated(&h, m, mod, gate: 5, width: d)
        return h
    }

    /// timm Attention (the shared `SelfAttention`).
    func attention(_ x: Tensor) -> Tensor { SelfAttention(qkv: qkv, proj: proj, heads: numHeads)(x) }

    /// x * (1 + mod[chunk scale]) + mod[chunk shift], per sample, broadcast over tokens. `mod` is [N, k*D].
    /// Same float32 operation order as PyTorch: (1 + scale) first, then the product, then the sum.
    static func modulate(_ x: Tensor, _ mod: Tensor, shift: Int, scale: Int, width d: Int) -> Tensor {
        let n = x.shape[0], t = x.shape[1]
        let chunks = mod.dim(-1) / d
        var out = x.data
        out.withUnsafeMutableBufferPointer { po in mod.data.withUnsafeBufferPointer { pm in
            for b in 0..<n {
                let sh = pm.baseAddress! + b * chunks * d + shift * d
                let sc = pm.baseAddress! + b * chunks * d + scale * d
                for tok in 0..<t {
                    let row = po.baseAddress! + (b * t + tok) * d
                    for i in 0..<d { row[i] = row[i] * (1 + sc[i]) + sh[i] }
                }
            }
        } }
        return Tensor(shape: x.shape, data: out)
    }

    /// h += mod[chunk gate] * y (gate broadcast over tokens).
    static func addGated(_ h: inout Tensor, _ y: Tensor, _ mod: Tensor, gate: Int, width d: Int) {
        let n = h.shape[0], t = h.shape[1]
        let chunks = mod.dim(-1) / d
        h.data.withUnsafeMutableBufferPointer { ph in y.data.withUnsafeBufferPointer { py in mod.data.withUnsafeBufferPointer { pm in
            for b in 0..<n {
                let g = pm.baseAddress! + b * chunks * d + gate * d
                for tok in 0..<t {
                    let o = (b * t + tok) * d
                    for i in 0..<d { ph[o + i] += g[i] * py[o + i] }
                }
            }
        } } }
    }
}

/// models.py `FinalLayer`: (shift, scale) = Linear(SiLU(c)).chunk(2); Linear(modulate(LN(x), shift, scale)).
public struct DiTFinalLayer: Sendable {
    public var linear: Linear
    public var adaLN: Linear
    public init(linear: Linear, adaLN: Linear) { self.linear = linear; self.adaLN = adaLN }

    public func callAsFunction(_ x: Tensor, siluC: Tensor) -> Tensor {
        let mod = adaLN(siluC)
        return linear(DiTBlock.modulate(DiTBlock.norm(x), mod, shift: 0, scale: 1, width: x.dim(-1)))
    }
}
