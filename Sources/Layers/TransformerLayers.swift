import CKernels
import Foundation
import Tensor

/// Trainable pieces of the transformer models (VAR, the AR baseline, DiT): LayerNorm, GELU(tanh), token / class
/// embeddings and multi-head self-attention with an additive mask. Same conventions as Layers.swift.

public final class LayerNormLayer: TrainableLayer {
    public let weight: Parameter?, bias: Parameter?
    public let eps: Float
    private var input: Tensor?
    /// `affine: false` is `elementwise_affine=False` (VAR's AdaLN blocks, DiT's final norm).
    public init(_ name: String, dim: Int, eps: Float = 1e-6, affine: Bool = true) {
        weight = affine ? Parameter(name + ".weight", Tensor(repeating: 1, shape: [dim]), decay: false) : nil
        bias = affine ? Parameter(name + ".bias", Tensor(zeros: [dim]), decay: false) : nil
        self.eps = eps
    }
    /// Affine weight / bias (`name.weight`, `name.bias`, init 1 and 0) from `source` when `affine`.
    public init(_ name: String, dim: Int, eps: Float, affine: Bool, source: ParameterSource) throws {
        weight = affine ? try source.parameter(name + ".weight", shape: [dim], decay: false) { Tensor(repeating: 1, shape: [dim]) } : nil
        bias = affine ? try source.parameter(name + ".bias", shape: [dim], decay: false) { Tensor(zeros: [dim]) } : nil
        self.eps = eps
    }
    /// Inference: nothing kept.
    public func callAsFunction(_ x: Tensor) -> Tensor { LayerNorm(eps: eps, weight: weight?.value, bias: bias?.value)(x) }
    /// Training: keeps x for `backward`.
    public func forward(_ x: Tensor) -> Tensor {
        input = x
        return self(x)
    }
    public func backward(_ dy: Tensor) -> Tensor {
        let (dx, dW, db) = NormGrad.layerNormBackward(x: input!, eps: eps, weight: weight?.value, dy: dy)
        weight?.accumulate(dW); bias?.accumulate(db)
        return dx
    }
    public var parameters: [Parameter] { [weight, bias].compactMap { $0 } }
}

/// GELU (tanh approximation) for the transformer MLPs, the largest elementwise tensors of VAR and DiT. The forward is the
/// inference op's kernel, bit for bit (`Tensor.geluTanh`: x / (1 + e^{-2u}), u = √(2/π)(x + 0.044715 x³)), and keeps
/// tanh(u) = 2 / (1 + e^{-2u}) - 1 from the same exponential, so the backward needs no transcendental at all
/// (tanhf/expm1f in the backward took a third of a DiT training step). Derivative: 0.5 (1 + t) + 0.5 x (1 - t²) √(2/π) (1 + 3·0.044715 x²).
public final class GELUTanhLayer: TrainableLayer {
    private var input = Tensor(zeros: [0])
    private var tanhU: [Float] = []
    static let chunk = 1 << 14
    public init() {}

    public func forward(_ x: Tensor) -> Tensor {
        let n = x.count, chunk = Self.chunk
        guard n > 0 else { input = x; tanhU = []; return x }
        var y = Tensor.unfilled(n), t = Tensor.unfilled(n)
        x.data.withUnsafeBufferPointer { px in
            y.withUnsafeMutableBufferPointer { py in
                t.withUnsafeMutableBufferPointer { pt in
                    let sx = UnsafeSendable(px.baseAddress!)
                    let sy = UnsafeSendable(UnsafePointer(py.baseAddress!)), st = UnsafeSendable(UnsafePointer(pt.baseAddress!))
                    Parallel.forEach((n + chunk - 1) / chunk) { ci in
                        let i = ci * chunk
                        varlab_gelu_tanh_with_tanh(
                            sx.p + i, UnsafeMutablePointer(mutating: sy.p) + i, UnsafeMutablePointer(mutating: st.p) + i,
                            min(chunk, n - i))
                    }
                }
            }
        }
        input = x; tanhU = t
        return Tensor(shape: x.shape, data: y)
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let n = dy.count, chunk = Self.chunk
        precondition(n == tanhU.count, "GELU backward before forward")
        guard n > 0 else { return dy }
        var dx = Tensor.unfilled(n)
        input.data.withUnsafeBufferPointer { px in
            dy.data.withUnsafeBufferPointer { pg in
                tanhU.withUnsafeBufferPointer { pt in
                    dx.withUnsafeMutableBufferPointer { pd in
                        let sx = UnsafeSendable(px.baseAddress!), sg = UnsafeSendable(pg.baseAddress!), st = UnsafeSendable(pt.baseAddress!)
                        let sd = UnsafeSendable(UnsafePointer(pd.baseAddress!))
                        Parallel.forEach((n + chunk - 1) / chunk) { ci in
                            let c: Float = 0.7978845608028654
                            let out = UnsafeMutablePointer(mutating: sd.p)
                            for i in (ci * chunk)..<min(n, (ci + 1) * chunk) {
                                let v = sx.p[i], t = st.p[i]
                                out[i] = sg.p[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * c * (1 + 3 * 0.044715 * v * v))
                            }
                        }
                    }
                }
            }
        }
        return Tensor(shape: dy.shape, data: dx)
    }
    public var parameters: [Parameter] { [] }
}

/// Lookup table [num, dim] (no weight decay, as the official trainers treat embeddings).
public final class EmbeddingLayer {
    public let weight: Parameter
    private var ids: [Int] = []
    public init(_ name: String, count: Int, dim: Int, std: Float = 0.02, seed: UInt64, stream: UInt64) {
        var rng = PhiloxRandom(seed: seed, stream: stream)
        weight = Parameter(
            name + ".weight", Tensor(shape: [count, dim], data: (0..<(count * dim)).map { _ in rng.normal() * std }),
            decay: false)
    }
    /// The table `name.weight` [count, dim] from `source`; a new one comes from `initial`.
    public init(_ name: String, count: Int, dim: Int, source: ParameterSource, initial: () -> Tensor) throws {
        weight = try source.parameter(name + ".weight", shape: [count, dim], decay: false, initial: initial)
    }
    /// Inference: rows for `ids` as [ids.count, dim]; ids must lie in 0..<count (checked by the caller for user input).
    public func callAsFunction(_ ids: [Int]) -> Tensor { Embedding(weight: weight.value)(ids) }
    /// Training: the same rows, keeping the ids for `backward`.
    public func forward(_ ids: [Int]) -> Tensor { self.ids = ids; return self(ids) }
    public func backward(_ dy: Tensor) { weight.accumulate(LinearGrad.embeddingBackward(ids: ids, tableShape: weight.value.shape, dy: dy)) }
    public var parameters: [Parameter] { [weight] }
}

/// Multi-head self-attention on [B, L, D]: qkv = Linear(D, 3D) split in (q, k, v) order, heads of D/H,
/// softmax(q kᵀ / √(D/H) + mask) v, merged and projected by Linear(D, D). `mask` [L, L] is additive (-inf forbids),
/// e.g. VAR's block-causal scale mask or a causal mask for the raster AR baseline.
public final class SelfAttentionLayer: TrainableLayer {
    public let qkv: LinearLayer, proj: LinearLayer
    public let heads: Int
    public var mask: Tensor?
    private var q = Tensor(zeros: [0]), k = Tensor(zeros: [0]), v = Tensor(zeros: [0])
    private var saved: AttentionGrad.Saved?
    private var shape: [Int] = []

    public init(_ name: String, dim: Int, heads: Int, seed: UInt64, stream: UInt64) {
        precondition(dim % heads == 0, "attention width \(dim) not divisible by \(heads) heads")
        qkv = LinearLayer(name + ".qkv", inFeatures: dim, outFeatures: 3 * dim, seed: seed, stream: stream)
        proj = LinearLayer(name + ".proj", inFeatures: dim, outFeatures: dim, seed: seed, stream: stream + 2)
        self.heads = heads
    }

    /// `name.qkv` and `name.proj` from `source`; new weights come from `initial` (qkv, then proj).
    public init(
        _ name: String, dim: Int, heads: Int, source: ParameterSource,
        initial: (_ layer: String, _ out: Int, _ in: Int) -> (weight: Tensor, bias: Tensor)
    ) throws {
        precondition(dim % heads == 0, "attention width \(dim) not divisible by \(heads) heads")
        qkv = try LinearLayer(name + ".qkv", inFeatures: dim, outFeatures: 3 * dim, source: source) { initial("qkv", 3 * dim, dim) }
        proj = try LinearLayer(name + ".proj", inFeatures: dim, outFeatures: dim, source: source) { initial("proj", dim, dim) }
        self.heads = heads
    }

    /// Inference (timm `Attention`, no mask): nothing kept.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        SelfAttention(qkv: qkv.inference, proj: proj.inference, heads: heads)(x)
    }

    /// Inference precision of the two products (`LinearLayer.setPrecision`).
    public func setPrecision(_ precision: MatmulPrecision) {
        qkv.setPrecision(precision)
        proj.setPrecision(precision)
    }

    public func forward(_ x: Tensor) -> Tensor {
        shape = x.shape
        let (b, l, d) = (x.shape[0], x.shape[1], x.shape[2])
        let hd = d / heads
        // [B, L, 3D] -> [3, B, H, L, hd]
        let t = qkv.forward(x).reshaped([b, l, 3, heads, hd]).permuted([2, 0, 3, 1, 4])
        let parts = t.split([1, 1, 1], dim: 0).map { $0.reshaped([b, heads, l, hd]) }
        q = parts[0]; k = parts[1]; v = parts[2]
        let (o, s) = AttentionGrad.forward(q: q, k: k, v: v, scale: 1 / Float(hd).squareRoot(), mask: mask)
        saved = s
        return proj.forward(o.permuted([0, 2, 1, 3]).reshaped([b, l, d]))
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let (b, l, d) = (shape[0], shape[1], shape[2])
        let hd = d / heads
        let dO = proj.backward(dy).reshaped([b, l, heads, hd]).permuted([0, 2, 1, 3])
        let (dq, dk, dv) = AttentionGrad.backward(q: q, k: k, v: v, scale: 1 / Float(hd).squareRoot(), saved: saved!, dOut: dO)
        // [3, B, H, L, hd] -> [B, L, 3, H, hd] -> [B, L, 3D]
        let dqkv = Tensor.cat([dq, dk, dv].map { $0.reshaped([1, b, heads, l, hd]) }, dim: 0)
            .permuted([1, 3, 0, 2, 4]).reshaped([b, l, 3 * d])
        return qkv.backward(dqkv)
    }

    public var parameters: [Parameter] { qkv.parameters + proj.parameters }
}

/// Residual wrapper: y = x + f(x).
public final class Residual: TrainableLayer {
    public let inner: TrainableLayer
    public init(_ inner: TrainableLayer) { self.inner = inner }
    public func forward(_ x: Tensor) -> Tensor { var y = inner.forward(x); y.addInPlace(x); return y }
    public func backward(_ dy: Tensor) -> Tensor { var dx = inner.backward(dy); dx.addInPlace(dy); return dx }
    public var parameters: [Parameter] { inner.parameters }
}
