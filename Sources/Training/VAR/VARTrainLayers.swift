import Foundation
import Layers
import Tensor

/// Official VAR initialisation helpers (`init_weights`): truncated normals (torch `trunc_normal_` with its default
/// absolute bounds ±2, resampled outside), drawn from a Philox stream per tensor so a model is a function of the seed.
public enum VARInit {
    public static func truncNormal(_ shape: [Int], std: Float, seed: UInt64, stream: UInt64) -> Tensor {
        var rng = PhiloxRandom(seed: seed, stream: stream)
        let n = shape.reduce(1, *)
        var out = [Float](repeating: 0, count: n)
        for i in 0..<n {
            var v = rng.normal() * std
            while abs(v) > 2 { v = rng.normal() * std }
            out[i] = v
        }
        return Tensor(shape: shape, data: out)
    }

    /// Linear per `init_weights`: weight ~ trunc_normal(std), bias = 0.
    static func linear(_ l: LinearLayer, std: Float, seed: UInt64, stream: UInt64) {
        l.weight.value = truncNormal(l.weight.value.shape, std: std, seed: seed, stream: stream)
        l.bias.value = Tensor(zeros: l.bias.value.shape)
    }
}

/// Column chunk k (width c) of a per-sample vector table [B, k*c...] as [B, c].
func adaChunk(_ t: Tensor, _ k: Int, width c: Int) -> Tensor {
    let b = t.shape[0], total = t.shape[1]
    var out = [Float](repeating: 0, count: b * c)
    t.data.withUnsafeBufferPointer { p in
        for bi in 0..<b { for j in 0..<c { out[bi * c + j] = p[bi * total + k * c + j] } }
    }
    return Tensor(shape: [b, c], data: out)
}

/// Inverse of `adaChunk`: [B, c] chunks side by side -> [B, n*c].
func adaJoin(_ chunks: [Tensor]) -> Tensor {
    let b = chunks[0].shape[0], c = chunks[0].shape[1], n = chunks.count
    var out = [Float](repeating: 0, count: b * n * c)
    for (k, t) in chunks.enumerated() {
        for bi in 0..<b { for j in 0..<c { out[bi * n * c + k * c + j] = t.data[bi * c + j] } }
    }
    return Tensor(shape: [b, n * c], data: out)
}

/// VAR's attention (official `basic_var.SelfAttention`, attn_l2_norm = False): mat_qkv without bias plus the
/// learnable q_bias / v_bias and a fixed zero k bias; scale 0.25 / √head_dim; additive mask; then `proj`.
public final class VARSelfAttentionLayer: TrainableLayer {
    public let matQKV: Parameter        // [3C, C]
    public let qBias: Parameter, vBias: Parameter
    public let proj: LinearLayer
    public let heads: Int
    public var mask: Tensor?
    private var input = Tensor(zeros: [0])
    private var q = Tensor(zeros: [0]), k = Tensor(zeros: [0]), v = Tensor(zeros: [0])
    private var saved: AttentionGrad.Saved?

    public init(_ name: String, dim: Int, heads: Int, std: Float, seed: UInt64, stream: UInt64) {
        matQKV = Parameter(name + ".mat_qkv.weight", VARInit.truncNormal([3 * dim, dim], std: std, seed: seed, stream: stream), decay: true)
        qBias = Parameter(name + ".q_bias", Tensor(zeros: [dim]), decay: false)
        vBias = Parameter(name + ".v_bias", Tensor(zeros: [dim]), decay: false)
        proj = LinearLayer(name + ".proj", inFeatures: dim, outFeatures: dim, seed: seed, stream: stream + 1)
        VARInit.linear(proj, std: std, seed: seed, stream: stream + 1)
        self.heads = heads
    }

    var scale: Float { 0.25 / Float(matQKV.value.shape[1] / heads).squareRoot() }

    public func forward(_ x: Tensor) -> Tensor {
        input = x
        let (b, l, d) = (x.shape[0], x.shape[1], x.shape[2])
        let hd = d / heads
        let bias = Tensor.cat0([qBias.value, Tensor(zeros: [d]), vBias.value])
        let t = Linear(weight: matQKV.value, bias: bias)(x).reshaped([b, l, 3, heads, hd]).permuted([2, 0, 3, 1, 4])
        let parts = t.split([1, 1, 1], dim: 0).map { $0.reshaped([b, heads, l, hd]) }
        q = parts[0]; k = parts[1]; v = parts[2]
        let (o, s) = AttentionGrad.forward(q: q, k: k, v: v, scale: scale, mask: mask)
        saved = s
        return proj.forward(o.permuted([0, 2, 1, 3]).reshaped([b, l, d]))
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let (b, l, d) = (input.shape[0], input.shape[1], input.shape[2])
        let hd = d / heads
        let dO = proj.backward(dy).reshaped([b, l, heads, hd]).permuted([0, 2, 1, 3])
        let (dq, dk, dv) = AttentionGrad.backward(q: q, k: k, v: v, scale: scale, saved: saved!, dOut: dO)
        let dqkv = Tensor.cat([dq, dk, dv].map { $0.reshaped([1, b, heads, l, hd]) }, dim: 0)
            .permuted([1, 3, 0, 2, 4]).reshaped([b, l, 3 * d])
        let (dx, dW, db) = LinearGrad.linearBackward(x: input, weight: matQKV.value, dy: dqkv)
        matQKV.accumulate(dW)
        qBias.accumulate(Tensor(shape: [d], data: Array(db.data[0..<d])))
        vBias.accumulate(Tensor(shape: [d], data: Array(db.data[(2 * d)..<(3 * d)])))
        return dx
    }

    public var parameters: [Parameter] { [matQKV, qBias, vBias] + proj.parameters }
}

/// The official FFN: fc2(gelu_tanh(fc1(x))).
func makeFFN(_ name: String, dim: Int, hidden: Int, std: Float, depth: Int, seed: UInt64, stream: UInt64) -> Sequential {
    let fc1 = LinearLayer(name + ".fc1", inFeatures: dim, outFeatures: hidden, seed: seed, stream: stream)
    let fc2 = LinearLayer(name + ".fc2", inFeatures: hidden, outFeatures: dim, seed: seed, stream: stream + 2)
    VARInit.linear(fc1, std: std, seed: seed, stream: stream)
    VARInit.linear(fc2, std: std, seed: seed, stream: stream + 2)
    // init_weights: fc2.weight /= √(2·depth)
    fc2.weight.value = fc2.weight.value * (1 / Float(2 * depth).squareRoot())
    return Sequential([fc1, GELUTanhLayer(), fc2])
}

/// One official `AdaLNSelfAttn` block with its own ada_lin (not shared):
///   (γ1, γ2, s1, s2, b1, b2) = ada_lin(SiLU(cond))          [B, 6C] in this order
///   x ← x + attn(ln(x)(1 + s1) + b1) γ1
///   x ← x + ffn(ln(x)(1 + s2) + b2) γ2
/// ln = LayerNorm without affine. `forward` takes SiLU(cond); `backward` returns (dx, dSiLU(cond)).
public final class AdaLNBlockLayer {
    public let adaLin: LinearLayer
    public let attn: VARSelfAttentionLayer
    public let ffn: Sequential
    let ln1: LayerNormLayer, ln2: LayerNormLayer
    let width: Int
    private var ada = Tensor(zeros: [0]), n1 = Tensor(zeros: [0]), n2 = Tensor(zeros: [0])
    private var a = Tensor(zeros: [0]), f = Tensor(zeros: [0])

    /// `initAdaLN` / `initAdaLNGamma`: the official multipliers of ada_lin's weight rows (0.5 for scale / shift,
    /// 1e-5 for the two gammas), so every block starts close to the identity.
    public init(_ name: String, config c: VARTrainConfig, std: Float, initAdaLN: Float = 0.5, initAdaLNGamma: Float = 1e-5,
                seed: UInt64, stream: UInt64) {
        let w = c.width
        width = w
        adaLin = LinearLayer(name + ".ada_lin.1", inFeatures: w, outFeatures: 6 * w, seed: seed, stream: stream)
        VARInit.linear(adaLin, std: std, seed: seed, stream: stream)
        adaLin.weight.value.data.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count { p[i] *= i < 2 * w * w ? initAdaLNGamma : initAdaLN }
        }
        attn = VARSelfAttentionLayer(name + ".attn", dim: w, heads: c.heads, std: std, seed: seed, stream: stream + 10)
        attn.proj.weight.value = attn.proj.weight.value * (1 / Float(2 * c.depth).squareRoot())
        ffn = makeFFN(name + ".ffn", dim: w, hidden: c.mlpHidden, std: std, depth: c.depth, seed: seed, stream: stream + 20)
        ln1 = LayerNormLayer(name + ".ln_wo_grad", dim: w, eps: c.normEps, affine: false)
        ln2 = LayerNormLayer(name + ".ln_wo_grad", dim: w, eps: c.normEps, affine: false)
    }

    public func forward(_ x: Tensor, siluCond: Tensor) -> Tensor {
        let w = width
        ada = adaLin.forward(siluCond)
        n1 = ln1.forward(x)
        a = attn.forward(AdaLNGrad.modulate(n1, shift: adaChunk(ada, 4, width: w), scale: adaChunk(ada, 2, width: w)))
        var h = x
        h.addInPlace(AdaLNGrad.gate(a, gate: adaChunk(ada, 0, width: w)))
        n2 = ln2.forward(h)
        f = ffn.forward(AdaLNGrad.modulate(n2, shift: adaChunk(ada, 5, width: w), scale: adaChunk(ada, 3, width: w)))
        h.addInPlace(AdaLNGrad.gate(f, gate: adaChunk(ada, 1, width: w)))
        return h
    }

    public func backward(_ dy: Tensor) -> (dx: Tensor, dSiluCond: Tensor) {
        let w = width
        // x2 = x + γ1·a; out = x2 + γ2·f
        let (df, dG2) = AdaLNGrad.gateBackward(h: f, gate: adaChunk(ada, 1, width: w), dy: dy)
        let (dn2, dB2, dS2) = AdaLNGrad.modulateBackward(x: n2, scale: adaChunk(ada, 3, width: w), dy: ffn.backward(df))
        var dx2 = dy
        dx2.addInPlace(ln2.backward(dn2))
        let (da, dG1) = AdaLNGrad.gateBackward(h: a, gate: adaChunk(ada, 0, width: w), dy: dx2)
        let (dn1, dB1, dS1) = AdaLNGrad.modulateBackward(x: n1, scale: adaChunk(ada, 2, width: w), dy: attn.backward(da))
        var dx = dx2
        dx.addInPlace(ln1.backward(dn1))
        let dc = adaLin.backward(adaJoin([dG1, dG2, dS1, dS2, dB1, dB2]))
        return (dx, dc)
    }

    public var parameters: [Parameter] { adaLin.parameters + attn.parameters + ffn.parameters }
}

/// The plain-LayerNorm block of the AdaLN ablation: pre-norm with affine LayerNorms, no conditioning:
/// x ← x + attn(ln1(x)); x ← x + ffn(ln2(x)).
public final class PlainBlockLayer: TrainableLayer {
    public let attn: VARSelfAttentionLayer
    let body: Sequential
    public init(_ name: String, config c: VARTrainConfig, std: Float, seed: UInt64, stream: UInt64) {
        let w = c.width
        attn = VARSelfAttentionLayer(name + ".attn", dim: w, heads: c.heads, std: std, seed: seed, stream: stream + 10)
        attn.proj.weight.value = attn.proj.weight.value * (1 / Float(2 * c.depth).squareRoot())
        let ffn = makeFFN(name + ".ffn", dim: w, hidden: c.mlpHidden, std: std, depth: c.depth, seed: seed, stream: stream + 20)
        body = Sequential([
            Residual(Sequential([LayerNormLayer(name + ".ln1", dim: w, eps: c.normEps), attn])),
            Residual(Sequential([LayerNormLayer(name + ".ln2", dim: w, eps: c.normEps), ffn])),
        ])
    }
    public func forward(_ x: Tensor) -> Tensor { body.forward(x) }
    public func backward(_ dy: Tensor) -> Tensor { body.backward(dy) }
    public var parameters: [Parameter] { body.parameters }
}

