import Foundation
import Layers
import Tensor

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

/// One adaLN-Zero block (models.py `DiTBlock`), trainable:
///   (shift1, scale1, gate1, shift2, scale2, gate2) = adaLN_modulation(c).chunk(6)   (SiLU(c) given by the caller)
///   x = x + gate1 * attn(modulate(norm1(x), shift1, scale1))
///   x = x + gate2 * mlp(modulate(norm2(x), shift2, scale2))
/// Parameter names are the official ones under `blocks.i.` (attn.qkv, attn.proj, mlp.fc1, mlp.fc2,
/// adaLN_modulation.1); norm1 / norm2 have no parameters (elementwise_affine=False, eps 1e-6).
public final class TrainableDiTBlock {
    public let attn: SelfAttentionLayer
    public let fc1: LinearLayer, fc2: LinearLayer
    public let adaLN: LinearLayer
    let norm1 = LayerNormLayer("norm1", dim: 1, eps: 1e-6, affine: false)
    let norm2 = LayerNormLayer("norm2", dim: 1, eps: 1e-6, affine: false)
    let gelu = GELUTanhLayer()
    private var chunks: [Tensor] = []
    private var n1 = Tensor(zeros: [0]), n2 = Tensor(zeros: [0]), a = Tensor(zeros: [0]), f = Tensor(zeros: [0])

    public init(_ name: String, dim d: Int, heads: Int, mlpHidden: Int, seed: UInt64, stream: UInt64) {
        attn = SelfAttentionLayer(name + ".attn", dim: d, heads: heads, seed: seed, stream: stream)
        fc1 = LinearLayer(name + ".mlp.fc1", inFeatures: d, outFeatures: mlpHidden, seed: seed, stream: stream + 4)
        fc2 = LinearLayer(name + ".mlp.fc2", inFeatures: mlpHidden, outFeatures: d, seed: seed, stream: stream + 6)
        adaLN = LinearLayer(name + ".adaLN_modulation.1", inFeatures: d, outFeatures: 6 * d, seed: seed, stream: stream + 8)
    }

    /// x [B, T, D], siluC [B, D] -> [B, T, D].
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

    public var parameters: [Parameter] { attn.parameters + fc1.parameters + fc2.parameters + adaLN.parameters }
    /// The order of the official state dict (attn, mlp, adaLN_modulation).
    var linears: [LinearLayer] { [attn.qkv, attn.proj, fc1, fc2, adaLN] }
}

/// models.py `FinalLayer`: (shift, scale) = adaLN_modulation(c).chunk(2); linear(modulate(norm_final(x), shift, scale)).
public final class TrainableDiTFinalLayer {
    public let linear: LinearLayer, adaLN: LinearLayer
    let norm = LayerNormLayer("norm_final", dim: 1, eps: 1e-6, affine: false)
    private var chunks: [Tensor] = []
    private var n = Tensor(zeros: [0])

    public init(dim d: Int, outFeatures: Int, seed: UInt64, stream: UInt64) {
        linear = LinearLayer("final_layer.linear", inFeatures: d, outFeatures: outFeatures, seed: seed, stream: stream)
        adaLN = LinearLayer("final_layer.adaLN_modulation.1", inFeatures: d, outFeatures: 2 * d, seed: seed, stream: stream + 2)
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
