import Foundation
import Layers
import ModelIO
import Tensor

/// VAR's attention (official `basic_var.SelfAttention`): mat_qkv without bias plus the learnable q_bias / v_bias and
/// a fixed zero k bias, then `proj`. Plain attention scales by 0.25 / √head_dim; with attn_l2_norm (the released
/// models) q and k are L2-normalised and q is multiplied by the per-head temperature exp(min(scale_mul_1H11, ln 100)).
/// `callAsFunction` is inference (optionally with a KV cache); `forward` / `backward` are training (plain attention).
public final class VARAttention {
    public let matQKV: Parameter  // [3C, C]
    public let qBias: Parameter, vBias: Parameter
    /// The official zero_k_bias buffer (zeros; the stored one is used when a file has it).
    let kBias: Tensor
    /// attn_l2_norm: scale_mul_1H11 [1, H, 1, 1].
    public let scaleMul: Parameter?
    public let proj: LinearLayer
    public let heads: Int
    private var input = Tensor(zeros: [0])
    private var q = Tensor(zeros: [0]), k = Tensor(zeros: [0]), v = Tensor(zeros: [0])
    private var saved: AttentionGrad.Saved?
    /// mat_qkv rounded to bfloat16 for inference (`setPrecision`).
    private var qkvBF16: BFloat16Weights?

    /// New weights: mat_qkv ~ trunc_normal(std) on stream `stream`, biases 0, proj on `stream + 1` scaled by `projScale`.
    init(
        _ name: String, config c: VARConfig, std: Float, projScale: Float, source src: ParameterSource, seed: UInt64, stream: UInt64
    ) throws {
        let w = c.width
        matQKV = try src.parameter(name + ".mat_qkv.weight", shape: [3 * w, w], decay: true) {
            VARInit.truncNormal([3 * w, w], std: std, seed: seed, stream: stream)
        }
        qBias = try src.parameter(name + ".q_bias", shape: [w], decay: false) { Tensor(zeros: [w]) }
        vBias = try src.parameter(name + ".v_bias", shape: [w], decay: false) { Tensor(zeros: [w]) }
        kBias =
            src.has(name + ".zero_k_bias") ? try src.tensor(name + ".zero_k_bias", shape: [w]) { Tensor(zeros: [w]) } : Tensor(zeros: [w])
        scaleMul =
            c.attnL2Norm
            ? try src.parameter(name + ".scale_mul_1H11", shape: [1, c.heads, 1, 1], decay: false) {
                Tensor(repeating: logf(4), shape: [1, c.heads, 1, 1])
            }
            : nil
        proj = try LinearLayer(name + ".proj", inFeatures: w, outFeatures: w, source: src) {
            (VARInit.truncNormal([w, w], std: std, seed: seed, stream: stream + 1) * projScale, Tensor(zeros: [w]))
        }
        heads = c.heads
    }

    var scale: Float { 0.25 / Float(matQKV.value.shape[1] / heads).squareRoot() }

    /// Inference precision of mat_qkv and proj; training always computes in float32.
    func setPrecision(_ precision: MatmulPrecision) {
        qkvBF16 = precision == .bfloat16 ? BFloat16Weights(matQKV.value) : nil
        proj.setPrecision(precision)
    }

    /// q, k, v [B, H, l, hd] of x [B, l, C]; `inference` uses the inference precision.
    func projectQKV(_ x: Tensor, inference: Bool) -> (Tensor, Tensor, Tensor) {
        let (b, l, d) = (x.shape[0], x.shape[1], x.shape[2])
        let hd = d / heads
        let qkv = Linear(
            weight: matQKV.value, bias: Tensor.cat0([qBias.value, kBias, vBias.value]), bf16: inference ? qkvBF16 : nil)
        // [B, L, 3, H, hd] -> [3, B, H, L, hd]
        let parts = qkv(x).reshaped([b, l, 3, heads, hd]).permuted([2, 0, 3, 1, 4]).split([1, 1, 1], dim: 0)
        return (parts[0].reshaped([b, heads, l, hd]), parts[1].reshaped([b, heads, l, hd]), parts[2].reshaped([b, heads, l, hd]))
    }

    /// Inference. `cache` gets this call's keys / values appended when given (then `mask` is nil and the queries see
    /// every cached position).
    func callAsFunction(_ x: Tensor, mask: Tensor?, cache: inout KVCache?) -> Tensor {
        let (b, l, w) = (x.shape[0], x.shape[1], x.shape[2])
        var (q, k, v) = projectQKV(x, inference: true)
        var scale = self.scale
        if let scaleMul {
            // F.normalize(., dim=-1) = x / max(|x|, 1e-12); q additionally times the per-head temperature.
            let maxLog = logf(100)  // torch.log(torch.tensor(100)).item(), float32
            let temperature = scaleMul.value.data.map { expf(min($0, maxLog)) }
            l2normalise(&q, headScale: temperature, heads: heads, length: l, dim: w / heads)
            l2normalise(&k, headScale: nil, heads: heads, length: l, dim: w / heads)
            scale = 1
        }
        if cache != nil { (k, v) = cache!.append(k: k, v: v) }
        let o = scaledDotProductAttention(q: q, k: k, v: v, scale: scale, mask: mask)
        return proj(o.permuted([0, 2, 1, 3]).reshaped([b, l, w]))
    }

    /// Training forward (plain attention, additive mask [l, l]); keeps what `backward` needs.
    func forward(_ x: Tensor, mask: Tensor?) -> Tensor {
        input = x
        let (b, l, d) = (x.shape[0], x.shape[1], x.shape[2])
        (q, k, v) = projectQKV(x, inference: false)
        let (o, s) = AttentionGrad.forward(q: q, k: k, v: v, scale: scale, mask: mask)
        saved = s
        return proj.forward(o.permuted([0, 2, 1, 3]).reshaped([b, l, d]))
    }

    func backward(_ dy: Tensor) -> Tensor {
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

    var parameters: [Parameter] { [matQKV, qBias, vBias] + (scaleMul.map { [$0] } ?? []) + proj.parameters }
}

/// One transformer block of the VAR family.
///
/// AdaLN (official `AdaLNSelfAttn`, var / ar):
///   (γ1, γ2, s1, s2, b1, b2) = ada_lin(SiLU(cond))          [B, 6C] in this order (unlike DiT)
///   x ← x + attn(ln(x)(1 + s1) + b1) γ1
///   x ← x + ffn(ln(x)(1 + s2) + b2) γ2
/// with ln a LayerNorm without affine; shared AdaLN (d36) uses shared_ada_lin(SiLU(cond)) + ada_gss instead.
/// Plain LayerNorm (plain-ln): x ← x + attn(ln1(x)); x ← x + ffn(ln2(x)) with affine LayerNorms, no conditioning.
/// ffn = fc2(gelu_tanh(fc1)). `callAsFunction` is inference; `forward` / `backward` are training.
public final class VARBlock {
    /// Per-block `ada_lin.1` (AdaLN without sharing).
    let adaLin: LinearLayer?
    /// Shared AdaLN: this block's additive `ada_gss` [1, 1, 6, C].
    let adaGss: Parameter?
    let ln1: LayerNormLayer, ln2: LayerNormLayer
    public let attn: VARAttention
    let fc1: LinearLayer, gelu = GELUTanhLayer(), fc2: LinearLayer
    let adaLN: Bool, width: Int
    // Saved by the training forward.
    private var ada = Tensor(zeros: [0]), n1 = Tensor(zeros: [0]), n2 = Tensor(zeros: [0])
    private var a = Tensor(zeros: [0]), f = Tensor(zeros: [0])

    /// New weights (official init_weights): trunc_normal(std) everywhere, biases 0; ada_lin's rows ×`initAdaLNGamma`
    /// (the two gammas) and ×`initAdaLN` (scales / shifts), so every block starts close to the identity; attn.proj and
    /// ffn.fc2 ÷ √(2·depth). Streams: ada_lin `stream`, attention `stream + 10`, fc1 `stream + 20`, fc2 `stream + 22`.
    public init(
        _ name: String, config c: VARConfig, std: Float, initAdaLN: Float = 0.5, initAdaLNGamma: Float = 1e-5,
        source src: ParameterSource, seed: UInt64, stream: UInt64
    ) throws {
        let w = c.width
        width = w
        adaLN = c.adaLN
        if c.adaLN && !c.sharedAdaLN {
            adaLin = try LinearLayer(name + ".ada_lin.1", inFeatures: w, outFeatures: 6 * w, source: src) {
                var weight = VARInit.truncNormal([6 * w, w], std: std, seed: seed, stream: stream)
                weight.data.withUnsafeMutableBufferPointer { p in
                    for i in 0..<p.count { p[i] *= i < 2 * w * w ? initAdaLNGamma : initAdaLN }
                }
                return (weight, Tensor(zeros: [6 * w]))
            }
        } else {
            adaLin = nil
        }
        adaGss =
            c.sharedAdaLN ? try src.parameter(name + ".ada_gss", shape: [1, 1, 6, w], decay: false) { Tensor(zeros: [1, 1, 6, w]) } : nil
        let residualScale = 1 / Float(2 * c.depth).squareRoot()
        attn = try VARAttention(name + ".attn", config: c, std: std, projScale: residualScale, source: src, seed: seed, stream: stream + 10)
        fc1 = try LinearLayer(name + ".ffn.fc1", inFeatures: w, outFeatures: c.mlpHidden, source: src) {
            (VARInit.truncNormal([c.mlpHidden, w], std: std, seed: seed, stream: stream + 20), Tensor(zeros: [c.mlpHidden]))
        }
        fc2 = try LinearLayer(name + ".ffn.fc2", inFeatures: c.mlpHidden, outFeatures: w, source: src) {
            (VARInit.truncNormal([w, c.mlpHidden], std: std, seed: seed, stream: stream + 22) * residualScale, Tensor(zeros: [w]))
        }
        if c.adaLN {
            ln1 = try LayerNormLayer(name + ".ln_wo_grad", dim: w, eps: c.normEps, affine: false, source: src)
            ln2 = try LayerNormLayer(name + ".ln_wo_grad", dim: w, eps: c.normEps, affine: false, source: src)
        } else {
            ln1 = try LayerNormLayer(name + ".ln1", dim: w, eps: c.normEps, affine: true, source: src)
            ln2 = try LayerNormLayer(name + ".ln2", dim: w, eps: c.normEps, affine: true, source: src)
        }
    }

    /// The six modulation vectors [B, 6C] (AdaLN blocks).
    func modulation(siluCond: Tensor, shared: Tensor?) -> Tensor {
        if let adaLin { return adaLin(siluCond) }
        return shared!.zipWith(adaGss!.value.reshaped([6 * width]), +)
    }

    // MARK: inference

    /// Inference precision of the block's Linear products (`MatmulPrecision`).
    func setPrecision(_ precision: MatmulPrecision) {
        adaLin?.setPrecision(precision)
        attn.setPrecision(precision)
        fc1.setPrecision(precision)
        fc2.setPrecision(precision)
    }

    /// x: [B, l, C]; `ada` [B, 6C] (nil for plain blocks); see `VARAttention.callAsFunction` for mask and cache.
    func callAsFunction(_ x: Tensor, ada: Tensor?, mask: Tensor?, cache: inout KVCache?) -> Tensor {
        let (b, l, w) = (x.shape[0], x.shape[1], x.shape[2])
        var h = x
        guard let ada else {
            h.addInPlace(attn(ln1(x), mask: mask, cache: &cache))
            h.addInPlace(fc2(fc1(ln2(h)).geluTanh()))
            return h
        }
        let a1 = attn(modulate(ln1(x), ada, scale: 2, shift: 4), mask: mask, cache: &cache)
        addScaled(&h, a1, ada, gamma: 0, b: b, l: l, w: w)
        let f = fc2(fc1(modulate(ln2(h), ada, scale: 3, shift: 5)).geluTanh())
        addScaled(&h, f, ada, gamma: 1, b: b, l: l, w: w)
        return h
    }

    // MARK: training

    /// Training forward: `siluCond` = SiLU(cond) [B, C] for AdaLN blocks (nil for plain ones).
    public func forward(_ x: Tensor, siluCond: Tensor?, mask: Tensor) -> Tensor {
        let w = width
        guard let siluCond, let adaLin else {
            var y = attn.forward(ln1.forward(x), mask: mask)
            y.addInPlace(x)
            var z = fc2.forward(gelu.forward(fc1.forward(ln2.forward(y))))
            z.addInPlace(y)
            return z
        }
        ada = adaLin.forward(siluCond)
        n1 = ln1.forward(x)
        a = attn.forward(AdaLNGrad.modulate(n1, shift: adaChunk(ada, 4, width: w), scale: adaChunk(ada, 2, width: w)), mask: mask)
        var h = x
        h.addInPlace(AdaLNGrad.gate(a, gate: adaChunk(ada, 0, width: w)))
        n2 = ln2.forward(h)
        f = fc2.forward(
            gelu.forward(fc1.forward(AdaLNGrad.modulate(n2, shift: adaChunk(ada, 5, width: w), scale: adaChunk(ada, 3, width: w)))))
        h.addInPlace(AdaLNGrad.gate(f, gate: adaChunk(ada, 1, width: w)))
        return h
    }

    /// Returns dx and, for AdaLN blocks, dSiLU(cond).
    public func backward(_ dy: Tensor) -> (dx: Tensor, dSiluCond: Tensor?) {
        guard let adaLin else {
            var dy1 = ln2.backward(fc1.backward(gelu.backward(fc2.backward(dy))))
            dy1.addInPlace(dy)
            var dx = ln1.backward(attn.backward(dy1))
            dx.addInPlace(dy1)
            return (dx, nil)
        }
        let w = width
        // x2 = x + γ1·a; out = x2 + γ2·f
        let (df, dG2) = AdaLNGrad.gateBackward(h: f, gate: adaChunk(ada, 1, width: w), dy: dy)
        let dFFN = fc1.backward(gelu.backward(fc2.backward(df)))
        let (dn2, dB2, dS2) = AdaLNGrad.modulateBackward(x: n2, scale: adaChunk(ada, 3, width: w), dy: dFFN)
        var dx2 = dy
        dx2.addInPlace(ln2.backward(dn2))
        let (da, dG1) = AdaLNGrad.gateBackward(h: a, gate: adaChunk(ada, 0, width: w), dy: dx2)
        let (dn1, dB1, dS1) = AdaLNGrad.modulateBackward(x: n1, scale: adaChunk(ada, 2, width: w), dy: attn.backward(da))
        var dx = dx2
        dx.addInPlace(ln1.backward(dn1))
        let dc = adaLin.backward(adaJoin([dG1, dG2, dS1, dS2, dB1, dB2]))
        return (dx, dc)
    }

    /// Official module order: ada_lin, attn, ffn (AdaLN); ln1, attn, ln2, ffn (plain).
    public var parameters: [Parameter] {
        if adaLN { return (adaLin?.parameters ?? []) + (adaGss.map { [$0] } ?? []) + attn.parameters + fc1.parameters + fc2.parameters }
        return ln1.parameters + attn.parameters + ln2.parameters + fc1.parameters + fc2.parameters
    }
}

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
}

/// ln(x) * (1 + ada[scale chunk]) + ada[shift chunk], per batch row; chunks are C wide inside ada [B, kC].
func modulate(_ x: Tensor, _ ada: Tensor, scale si: Int, shift hi: Int) -> Tensor {
    let (b, l, w) = (x.shape[0], x.shape[1], x.shape[2])
    let chunks = ada.shape[1] / w
    var out = x.data
    ada.data.withUnsafeBufferPointer { pa in
        out.withUnsafeMutableBufferPointer { po in
            for bi in 0..<b {
                let sc = pa.baseAddress! + (bi * chunks + si) * w, sh = pa.baseAddress! + (bi * chunks + hi) * w
                for t in 0..<l {
                    let p = po.baseAddress! + (bi * l + t) * w
                    for c in 0..<w { p[c] = p[c] * (sc[c] + 1) + sh[c] }
                }
            }
        }
    }
    return Tensor(shape: x.shape, data: out)
}

/// h += y * ada[gamma chunk] (per batch row).
func addScaled(_ h: inout Tensor, _ y: Tensor, _ ada: Tensor, gamma gi: Int, b: Int, l: Int, w: Int) {
    let chunks = ada.shape[1] / w
    h.data.withUnsafeMutableBufferPointer { ph in
        y.data.withUnsafeBufferPointer { py in
            ada.data.withUnsafeBufferPointer { pa in
                for bi in 0..<b {
                    let g = pa.baseAddress! + (bi * chunks + gi) * w
                    for t in 0..<l {
                        let o = (bi * l + t) * w
                        for c in 0..<w { ph[o + c] += py[o + c] * g[c] }
                    }
                }
            }
        }
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

/// Normalises each hd-vector of [B, H, L, hd] to unit L2 norm (clamped at 1e-12), optionally times a per-head factor.
func l2normalise(_ t: inout Tensor, headScale: [Float]?, heads: Int, length: Int, dim: Int) {
    let rows = t.count / dim
    t.data.withUnsafeMutableBufferPointer { p in
        for r in 0..<rows {
            let v = p.baseAddress! + r * dim
            var s: Float = 0
            for i in 0..<dim { s += v[i] * v[i] }
            let n = max(s.squareRoot(), 1e-12)
            let m = headScale?[(r / length) % heads]
            if let m { for i in 0..<dim { v[i] = v[i] / n * m } } else { for i in 0..<dim { v[i] /= n } }
        }
    }
}
