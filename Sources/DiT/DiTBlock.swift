import Foundation
import Layers
import Tensor

/// One adaLN-Zero transformer block (models.py `DiTBlock`):
///   (shift1, scale1, gate1, shift2, scale2, gate2) = Linear(SiLU(c)).chunk(6)
///   x += gate1 * Attn(modulate(LN(x), shift1, scale1))
///   x += gate2 * MLP(modulate(LN(x), shift2, scale2))
/// LN has no affine parameters and eps 1e-6; modulate(x, s, a) = x * (1 + a) + s; the MLP uses tanh-GELU.
/// Parameter names are the official ones under `blocks.i.` (attn.qkv, attn.proj, mlp.fc1, mlp.fc2,
/// adaLN_modulation.1). `callAsFunction` is inference; `forward` / `backward` are training.
public final class DiTBlock {
    public let attn: SelfAttentionLayer
    public let fc1: LinearLayer, fc2: LinearLayer
    public let adaLN: LinearLayer
    /// The block's Linear layers (for `DiTModel.setMatmulPrecision`).
    var linears: [LinearLayer] { [attn.qkv, attn.proj, fc1, fc2, adaLN] }
    let norm1 = LayerNormLayer("norm1", dim: 1, eps: 1e-6, affine: false)
    let norm2 = LayerNormLayer("norm2", dim: 1, eps: 1e-6, affine: false)
    let gelu = GELUTanhLayer()
    // Saved by the training forward.
    private var chunks: [Tensor] = []
    private var n1 = Tensor(zeros: [0]), n2 = Tensor(zeros: [0]), a = Tensor(zeros: [0]), f = Tensor(zeros: [0])

    /// `initial(layer, out, in)` gives new weights of "attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2", "adaLN_modulation.1".
    public init(
        _ name: String, dim d: Int, heads: Int, mlpHidden: Int, source src: ParameterSource,
        initial: (_ layer: String, _ out: Int, _ in: Int) -> (weight: Tensor, bias: Tensor)
    ) throws {
        attn = try SelfAttentionLayer(name + ".attn", dim: d, heads: heads, source: src) { initial("attn." + $0, $1, $2) }
        fc1 = try LinearLayer(name + ".mlp.fc1", inFeatures: d, outFeatures: mlpHidden, source: src) { initial("mlp.fc1", mlpHidden, d) }
        fc2 = try LinearLayer(name + ".mlp.fc2", inFeatures: mlpHidden, outFeatures: d, source: src) { initial("mlp.fc2", d, mlpHidden) }
        adaLN = try LinearLayer(name + ".adaLN_modulation.1", inFeatures: d, outFeatures: 6 * d, source: src) {
            initial("adaLN_modulation.1", 6 * d, d)
        }
    }

    // MARK: inference

    /// x: [N, T, D]; siluC: SiLU(c) as [N, D] (shared by all blocks, so computed once by the caller).
    public func callAsFunction(_ x: Tensor, siluC: Tensor) -> Tensor {
        let d = x.dim(-1)
        let mod = adaLN(siluC)  // [N, 6D]
        var h = x
        let a = attn(DiTBlock.modulate(norm1(h), mod, shift: 0, scale: 1, width: d))
        DiTBlock.addGated(&h, a, mod, gate: 2, width: d)
        let m = fc2(fc1(DiTBlock.modulate(norm2(h), mod, shift: 3, scale: 4, width: d)).geluTanh())
        DiTBlock.addGated(&h, m, mod, gate: 5, width: d)
        return h
    }

    // MARK: training

    /// x [B, T, D], siluC [B, D] -> [B, T, D]; keeps what `backward` needs.
    public func forward(_ x: Tensor, siluC: Tensor) -> Tensor {
        chunks = AdaLNChunks.split(adaLN.forward(siluC), 6)
        n1 = norm1.forward(x)
        a = attn.forward(AdaLNGrad.modulate(n1, shift: chunks[0], scale: chunks[1]))
        var h = AdaLNGrad.gate(a, gate: chunks[2])
        h.addInPlace(x)
        n2 = norm2.forward(h)
        f = fc2.forward(gelu.forward(fc1.forward(AdaLNGrad.modulate(n2, shift: chunks[3], scale: chunks[4]))))
        var out = AdaLNGrad.gate(f, gate: chunks[5])
        out.addInPlace(h)
        return out
    }

    /// Returns (dx, dSiluC); parameter gradients are accumulated.
    public func backward(_ dy: Tensor) -> (dx: Tensor, dSiluC: Tensor) {
        let (df, dGate2) = AdaLNGrad.gateBackward(h: f, gate: chunks[5], dy: dy)
        let dm2 = fc1.backward(gelu.backward(fc2.backward(df)))
        let (dn2, dShift2, dScale2) = AdaLNGrad.modulateBackward(x: n2, scale: chunks[4], dy: dm2)
        var dh = norm2.backward(dn2)
        dh.addInPlace(dy)
        let (da, dGate1) = AdaLNGrad.gateBackward(h: a, gate: chunks[2], dy: dh)
        let (dn1, dShift1, dScale1) = AdaLNGrad.modulateBackward(x: n1, scale: chunks[1], dy: attn.backward(da))
        var dx = norm1.backward(dn1)
        dx.addInPlace(dh)
        let dSiluC = adaLN.backward(AdaLNChunks.join([dShift1, dScale1, dGate1, dShift2, dScale2, dGate2]))
        return (dx, dSiluC)
    }

    /// The order of the official state dict (attn, mlp, adaLN_modulation).
    public var parameters: [Parameter] { attn.parameters + fc1.parameters + fc2.parameters + adaLN.parameters }

    /// x * (1 + mod[chunk scale]) + mod[chunk shift], per sample, broadcast over tokens. `mod` is [N, k*D].
    /// Same float32 operation order as PyTorch: (1 + scale) first, then the product, then the sum.
    static func modulate(_ x: Tensor, _ mod: Tensor, shift: Int, scale: Int, width d: Int) -> Tensor {
        let n = x.shape[0], t = x.shape[1]
        let chunks = mod.dim(-1) / d
        var out = x.data
        out.withUnsafeMutableBufferPointer { po in
            mod.data.withUnsafeBufferPointer { pm in
                for b in 0..<n {
                    let sh = pm.baseAddress! + b * chunks * d + shift * d
                    let sc = pm.baseAddress! + b * chunks * d + scale * d
                    for tok in 0..<t {
                        let row = po.baseAddress! + (b * t + tok) * d
                        for i in 0..<d { row[i] = row[i] * (1 + sc[i]) + sh[i] }
                    }
                }
            }
        }
        return Tensor(shape: x.shape, data: out)
    }

    /// h += mod[chunk gate] * y (gate broadcast over tokens).
    static func addGated(_ h: inout Tensor, _ y: Tensor, _ mod: Tensor, gate: Int, width d: Int) {
        let n = h.shape[0], t = h.shape[1]
        let chunks = mod.dim(-1) / d
        h.data.withUnsafeMutableBufferPointer { ph in
            y.data.withUnsafeBufferPointer { py in
                mod.data.withUnsafeBufferPointer { pm in
                    for b in 0..<n {
                        let g = pm.baseAddress! + b * chunks * d + gate * d
                        for tok in 0..<t {
                            let o = (b * t + tok) * d
                            for i in 0..<d { ph[o + i] += g[i] * py[o + i] }
                        }
                    }
                }
            }
        }
    }
}

/// models.py `FinalLayer`: (shift, scale) = adaLN_modulation(c).chunk(2); linear(modulate(norm_final(x), shift, scale)).
public final class DiTFinalLayer {
    public let linear: LinearLayer, adaLN: LinearLayer
    let norm = LayerNormLayer("norm_final", dim: 1, eps: 1e-6, affine: false)
    private var chunks: [Tensor] = []
    private var n = Tensor(zeros: [0])

    public init(
        dim d: Int, outFeatures: Int, source src: ParameterSource,
        initial: (_ layer: String, _ out: Int, _ in: Int) -> (weight: Tensor, bias: Tensor)
    ) throws {
        linear = try LinearLayer("final_layer.linear", inFeatures: d, outFeatures: outFeatures, source: src) {
            initial("linear", outFeatures, d)
        }
        adaLN = try LinearLayer("final_layer.adaLN_modulation.1", inFeatures: d, outFeatures: 2 * d, source: src) {
            initial("adaLN_modulation.1", 2 * d, d)
        }
    }

    public func callAsFunction(_ x: Tensor, siluC: Tensor) -> Tensor {
        let mod = adaLN(siluC)
        return linear(DiTBlock.modulate(norm(x), mod, shift: 0, scale: 1, width: x.dim(-1)))
    }

    public func forward(_ x: Tensor, siluC: Tensor) -> Tensor {
        chunks = AdaLNChunks.split(adaLN.forward(siluC), 2)
        n = norm.forward(x)
        return linear.forward(AdaLNGrad.modulate(n, shift: chunks[0], scale: chunks[1]))
    }

    public func backward(_ dy: Tensor) -> (dx: Tensor, dSiluC: Tensor) {
        let (dn, dShift, dScale) = AdaLNGrad.modulateBackward(x: n, scale: chunks[1], dy: linear.backward(dy))
        return (norm.backward(dn), adaLN.backward(AdaLNChunks.join([dShift, dScale])))
    }

    public var parameters: [Parameter] { linear.parameters + adaLN.parameters }
}

/// Splits the adaLN output [B, k*D] into k per-sample vectors [B, D] (torch `.chunk(k, dim=1)`), and back.
enum AdaLNChunks {
    static func split(_ mod: Tensor, _ k: Int) -> [Tensor] {
        let b = mod.shape[0], d = mod.shape[1] / k
        return (0..<k).map { c in
            var out = [Float](repeating: 0, count: b * d)
            for r in 0..<b { for j in 0..<d { out[r * d + j] = mod.data[r * k * d + c * d + j] } }
            return Tensor(shape: [b, d], data: out)
        }
    }

    static func join(_ parts: [Tensor]) -> Tensor { Tensor.cat(parts, dim: 1) }
}
