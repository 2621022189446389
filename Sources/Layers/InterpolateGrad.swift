import Foundation
import Tensor

/// Gradients of `Tensor.interpolated` (the quantiser's up/down sampling). Every mode is linear in the input,
/// y = A x, so the gradient is the adjoint dx = Aᵀ dy: each output's upstream gradient is added back onto the input
/// taps it read, with the same weights (computed with the same float32 formulas as the forward).
public enum InterpolateGrad {
    public static func backward(inputShape: [Int], mode: InterpolationMode, dy: Tensor) -> Tensor {
        let rank = inputShape.count
        let h = inputShape[rank - 2], w = inputShape[rank - 1]
        let oh = dy.dim(-2), ow = dy.dim(-1)
        let planes = inputShape.reduce(1, *) / max(h * w, 1)
        var dx = [Float](repeating: 0, count: planes * h * w)
        dy.data.withUnsafeBufferPointer { pg in
            dx.withUnsafeMutableBufferPointer { qx in
                let sg = UnsafeSendable(pg.baseAddress!), sx = UnsafeSendable(UnsafePointer(qx.baseAddress!))
                if mode == .area {
                    func start(_ i: Int, _ inp: Int, _ outp: Int) -> Int { (i * inp) / outp }
                    func end(_ i: Int, _ inp: Int, _ outp: Int) -> Int { ((i + 1) * inp + outp - 1) / outp }
                    Parallel.forEach(planes) { p in
                        let g = sg.p + p * oh * ow, d = UnsafeMutablePointer(mutating: sx.p) + p * h * w
                        for oy in 0..<oh {
                            let y0 = start(oy, h, oh), y1 = end(oy, h, oh)
                            for ox in 0..<ow {
                                let x0 = start(ox, w, ow), x1 = end(ox, w, ow)
                                let v = g[oy * ow + ox] / Float(y1 - y0) / Float(x1 - x0)
                                for y in y0..<y1 { for x in x0..<x1 { d[y * w + x] += v } }
                            }
                        }
                    }
                    return
                }
                let ty = Taps(mode, input: h, output: oh), tx = Taps(mode, input: w, output: ow)
                Parallel.forEach(planes) { p in
                    let g = sg.p + p * oh * ow, d = UnsafeMutablePointer(mutating: sx.p) + p * h * w
                    for oy in 0..<oh {
                        for j in 0..<ty.taps {
                            let iy = ty.index[oy * ty.taps + j], wy = ty.weight[oy * ty.taps + j]
                            for ox in 0..<ow {
                                let gv = g[oy * ow + ox] * wy
                                for i in 0..<tx.taps {
                                    d[iy * w + tx.index[ox * tx.taps + i]] += gv * tx.weight[ox * tx.taps + i]
                                }
                            }
                        }
                    }
                }
            }
        }
        return Tensor(shape: inputShape, data: dx)
    }

    /// Separable taps, the same formulas as the forward (PyTorch's align_corners=False conventions).
    struct Taps {
        var index: [Int] = [], weight: [Float] = [], taps = 1
        init(_ mode: InterpolationMode, input: Int, output: Int) {
            let scale = Float(input) / Float(output)
            switch mode {
            case .nearest:
                taps = 1
                for o in 0..<output {
                    if output == input {
                        index.append(o)
                    } else if output == 2 * input {
                        index.append(o >> 1)
                    } else {
                        index.append(min(Int(floorf(Float(o) * scale)), input - 1))
                    }
                    weight.append(1)
                }
            case .bilinear, .bilinearNoHalfPixel:
                taps = 2
                for o in 0..<output {
                    let real = mode == .bilinear ? max(scale * (Float(o) + 0.5) - 0.5, 0) : Float(o) * scale
                    let i0 = min(Int(real), input - 1)
                    let lambda = min(max(real - Float(i0), 0), 1)
                    index += [i0, i0 + (i0 < input - 1 ? 1 : 0)]
                    weight += [1 - lambda, lambda]
                }
            case .bicubic:
                taps = 4
                let a: Float = -0.75
                func conv1(_ x: Float) -> Float { ((a + 2) * x - (a + 3)) * x * x + 1 }
                func conv2(_ x: Float) -> Float { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
                for o in 0..<output {
                    let real = scale * (Float(o) + 0.5) - 0.5
                    let i0 = Int(floorf(real))
                    let t = real - Float(i0)
                    let c: [Float] = [conv2(t + 1), conv1(t), conv1(1 - t), conv2(2 - t)]
                    for j in 0..<4 { index.append(max(min(i0 - 1 + j, input - 1), 0)); weight.append(c[j]) }
                }
            case .area:
                fatalError("area taps are handled by the window loop")
            }
        }
    }
}

/// The vector quantiser's straight-through estimator and commitment loss, as VAR's `VectorQuantizer2` defines them:
/// forward value f̂ = f + sg(q - f) (= q), backward ∂/∂f = identity; loss = β·mse(sg(f̂), f) + mse(f̂, sg(f)).
public enum StraightThrough {
    /// Forward: the quantised value (the identity path to the input is in `backward`).
    public static func forward(input: Tensor, quantized: Tensor) -> Tensor {
        precondition(input.shape == quantized.shape, "straight-through: \(input.shape) vs \(quantized.shape)")
        return quantized
    }
    /// Backward: the gradient passes to the encoder output unchanged.
    public static func backward(dOut: Tensor) -> Tensor { dOut }

    /// VQ loss β·mse(sg(f̂), f) + mse(f̂, sg(f)) with gradients to f (encoder, commitment) and f̂ (codebook path).
    public static func vqLoss(f: Tensor, fHat: Tensor, beta: Float) -> (loss: Double, dF: Tensor, dFHat: Tensor) {
        let (l, gHat) = Losses.mse(fHat, f)  // gHat = 2 (f̂ - f) / M
        return (Double(1 + beta) * l, gHat * (-beta), gHat)
    }
}
