import CKernels
import Foundation
import Tensor

/// Trainable layers: each forward keeps what its backward needs (one forward per backward; a layer used twice
/// in one graph needs two instances). `backward(dy)` accumulates parameter gradients and returns dx.
public protocol TrainableLayer: AnyObject {
    func forward(_ x: Tensor) -> Tensor
    func backward(_ dy: Tensor) -> Tensor
    var parameters: [Parameter] { get }
}

/// PyTorch's default init for Linear / Conv2d (kaiming_uniform with a = √5, i.e. U(±1/√fan_in) for weight and
/// bias), drawn from a Philox stream per parameter so models are a pure function of the seed.
public enum Init {
    public static func uniform(_ shape: [Int], bound: Float, seed: UInt64, stream: UInt64) -> Tensor {
        var rng = PhiloxRandom(seed: seed, stream: stream)
        return Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in (2 * rng.uniform() - 1) * bound })
    }
}

public final class ConvLayer: TrainableLayer {
    public let weight: Parameter, bias: Parameter
    public let stride: Int, pads: (Int, Int, Int, Int)
    private var input: Tensor?

    /// `pads` (left, right, top, bottom) overrides `padding` (e.g. the VQ-VAE downsample's (0, 1, 0, 1)).
    public init(
        _ name: String, cin: Int, cout: Int, kernel: Int, stride: Int = 1, padding: Int? = nil,
        pads asym: (Int, Int, Int, Int)? = nil, seed: UInt64, stream: UInt64
    ) {
        let p = padding ?? kernel / 2
        let bound = 1 / Float(cin * kernel * kernel).squareRoot()
        weight = Parameter(
            name + ".weight", Init.uniform([cout, cin, kernel, kernel], bound: bound, seed: seed, stream: stream), decay: true)
        bias = Parameter(name + ".bias", Init.uniform([cout], bound: bound, seed: seed, stream: stream + 1), decay: false)
        self.stride = stride; pads = asym ?? (p, p, p, p)
    }

    /// `name.weight` [cout, cin, k, k] and `name.bias` [cout] from `source`; new weights come from `initial`.
    public init(
        _ name: String, cin: Int, cout: Int, kernel: Int, stride: Int, pads: (Int, Int, Int, Int), source: ParameterSource,
        initial: () -> (weight: Tensor, bias: Tensor)
    ) throws {
        (weight, bias) = try source.weightAndBias(name, weight: [cout, cin, kernel, kernel], bias: [cout], initial: initial)
        self.stride = stride; self.pads = pads
    }

    /// Inference: nothing kept.
    public func callAsFunction(_ x: Tensor) -> Tensor { Conv2d(weight: weight.value, bias: bias.value, stride: stride, pads: pads)(x) }

    /// Training: keeps x for `backward`.
    public func forward(_ x: Tensor) -> Tensor {
        input = x
        return self(x)
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let (dx, dW, db) = ConvGrad.backward(x: input!, weight: weight.value, stride: stride, pads: pads, dy: dy)
        weight.accumulate(dW); bias.accumulate(db)
        return dx
    }
    public var parameters: [Parameter] { [weight, bias] }
}

public final class LinearLayer: TrainableLayer {
    public let weight: Parameter, bias: Parameter
    private var input: Tensor?

    public init(_ name: String, inFeatures: Int, outFeatures: Int, seed: UInt64, stream: UInt64) {
        let bound = 1 / Float(inFeatures).squareRoot()
        weight = Parameter(
            name + ".weight", Init.uniform([outFeatures, inFeatures], bound: bound, seed: seed, stream: stream), decay: true)
        bias = Parameter(name + ".bias", Init.uniform([outFeatures], bound: bound, seed: seed, stream: stream + 1), decay: false)
    }

    /// Weights given (read from a checkpoint or initialised by the model).
    public init(_ name: String, weight: Tensor, bias: Tensor) {
        precondition(weight.rank == 2 && bias.shape == [weight.shape[0]], "\(name): weight \(weight.shape), bias \(bias.shape)")
        self.weight = Parameter(name + ".weight", weight, decay: true)
        self.bias = Parameter(name + ".bias", bias, decay: false)
    }

    /// `name.weight` [out, in] and `name.bias` [out] from `source`; new weights come from `initial`.
    public convenience init(
        _ name: String, inFeatures: Int, outFeatures: Int, source: ParameterSource,
        initial: () -> (weight: Tensor, bias: Tensor)
    ) throws {
        let p = try source.weightAndBias(name, weight: [outFeatures, inFeatures], bias: [outFeatures], initial: initial)
        self.init(name, weight: p.weight.value, bias: p.bias.value)
    }

    public var inFeatures: Int { weight.value.shape[1] }
    public var outFeatures: Int { weight.value.shape[0] }

    /// The weight rounded to bfloat16 for inference (`setPrecision`); nil: float32.
    public private(set) var bf16: BFloat16Weights?

    /// Inference precision of this layer's product (packs the current weight for `.bfloat16`). Training
    /// (`forward` / `backward`) always computes in float32.
    public func setPrecision(_ precision: MatmulPrecision) {
        bf16 = precision == .bfloat16 ? BFloat16Weights(weight.value) : nil
    }

    /// The inference product, in the layer's precision.
    public var inference: Linear { Linear(weight: weight.value, bias: bias.value, bf16: bf16) }

    /// Inference: y = x Wᵀ + b, nothing kept.
    public func callAsFunction(_ x: Tensor) -> Tensor { inference(x) }

    /// Training: the same y in float32, keeping x for `backward`.
    public func forward(_ x: Tensor) -> Tensor { input = x; return Linear(weight: weight.value, bias: bias.value)(x) }

    public func backward(_ dy: Tensor) -> Tensor {
        let (dx, dW, db) = LinearGrad.linearBackward(x: input!, weight: weight.value, dy: dy)
        weight.accumulate(dW); bias.accumulate(db)
        return dx
    }
    public var parameters: [Parameter] { [weight, bias] }
}

/// GroupNorm with affine weight (init 1) and bias (init 0), both in the no-decay group.
public final class GroupNormLayer: TrainableLayer {
    public let weight: Parameter, bias: Parameter
    public let groups: Int, eps: Float
    private var input: Tensor?

    public init(_ name: String, channels: Int, groups: Int, eps: Float = 1e-5) {
        weight = Parameter(name + ".weight", Tensor(repeating: 1, shape: [channels]), decay: false)
        bias = Parameter(name + ".bias", Tensor(zeros: [channels]), decay: false)
        self.groups = groups; self.eps = eps
    }

    /// `name.weight` / `name.bias` [channels] from `source` (new: 1 and 0).
    public init(_ name: String, channels: Int, groups: Int, eps: Float, source: ParameterSource) throws {
        guard groups >= 1, channels % groups == 0 else {
            throw LayerError("\(source.origin): key '\(name).weight': \(channels) channels cannot be split into \(groups) GroupNorm groups")
        }
        weight = try source.parameter(name + ".weight", shape: [channels], decay: false) { Tensor(repeating: 1, shape: [channels]) }
        bias = try source.parameter(name + ".bias", shape: [channels], decay: false) { Tensor(zeros: [channels]) }
        self.groups = groups; self.eps = eps
    }

    /// Inference: nothing kept.
    public func callAsFunction(_ x: Tensor, thenSiLU: Bool = false) -> Tensor {
        GroupNorm(groups: groups, eps: eps, weight: weight.value, bias: bias.value)(x, thenSiLU: thenSiLU)
    }

    public func forward(_ x: Tensor) -> Tensor {
        input = x
        return self(x)
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let (dx, dW, db) = NormGrad.groupNormBackward(x: input!, groups: groups, eps: eps, weight: weight.value, dy: dy)
        weight.accumulate(dW); bias.accumulate(db)
        return dx
    }
    public var parameters: [Parameter] { [weight, bias] }
}

/// SiLU that keeps x and σ(x) from the forward, so the backward needs no second exp:
/// d/dx x σ(x) = σ(x) (1 + x (1 - σ(x))). The forward is `Tensor.silu`'s kernel, bit for bit.
public final class SiLULayer: TrainableLayer {
    private var input: [Float] = [], sigma: [Float] = []
    public init() {}
    public func forward(_ x: Tensor) -> Tensor {
        let n = x.count
        input = x.data
        sigma = Tensor.unfilled(n)
        var out = Tensor.unfilled(n)
        x.data.withUnsafeBufferPointer { px in
            sigma.withUnsafeMutableBufferPointer { ps in
                out.withUnsafeMutableBufferPointer { po in
                    guard n > 0 else { return }
                    varlab_silu_sigmoid(px.baseAddress!, po.baseAddress!, ps.baseAddress!, n)
                }
            }
        }
        return Tensor(shape: x.shape, data: out)
    }
    public func backward(_ dy: Tensor) -> Tensor {
        var dx = [Float](repeating: 0, count: dy.count)
        input.withUnsafeBufferPointer { px in
            sigma.withUnsafeBufferPointer { ps in
                dy.data.withUnsafeBufferPointer { pg in
                    dx.withUnsafeMutableBufferPointer { pd in
                        for i in 0..<pd.count { let s = ps[i]; pd[i] = pg[i] * s * (1 + px[i] * (1 - s)) }
                    }
                }
            }
        }
        return Tensor(shape: dy.shape, data: dx)
    }
    public var parameters: [Parameter] { [] }
}

/// Mean over the spatial axes: [N, C, H, W] -> [N, C].
public final class GlobalAveragePool: TrainableLayer {
    private var shape: [Int] = []
    public init() {}
    public func forward(_ x: Tensor) -> Tensor {
        shape = x.shape
        let (n, c) = (x.shape[0], x.shape[1]), sp = x.count / max(n * c, 1)
        var out = [Float](repeating: 0, count: n * c)
        x.data.withUnsafeBufferPointer { p in
            for i in 0..<(n * c) {
                var s = 0.0
                for j in 0..<sp { s += Double(p[i * sp + j]) }
                out[i] = Float(s / Double(sp))
            }
        }
        return Tensor(shape: [n, c], data: out)
    }
    public func backward(_ dy: Tensor) -> Tensor {
        let (n, c) = (shape[0], shape[1]), sp = shape.reduce(1, *) / max(n * c, 1)
        var dx = [Float](repeating: 0, count: n * c * sp)
        for i in 0..<(n * c) {
            let v = dy.data[i] / Float(sp)
            for j in 0..<sp { dx[i * sp + j] = v }
        }
        return Tensor(shape: shape, data: dx)
    }
    public var parameters: [Parameter] { [] }
}

/// Layers applied in order; backward in reverse.
public final class Sequential: TrainableLayer {
    public let layers: [TrainableLayer]
    public init(_ layers: [TrainableLayer]) { self.layers = layers }
    public func forward(_ x: Tensor) -> Tensor { layers.reduce(x) { $1.forward($0) } }
    public func backward(_ dy: Tensor) -> Tensor { layers.reversed().reduce(dy) { $1.backward($0) } }
    public var parameters: [Parameter] { layers.flatMap { $0.parameters } }
}
