import Foundation
import Layers
import Tensor

/// AdamW (Loshchilov & Hutter) exactly as `torch.optim.AdamW` steps it: decoupled decay p ← p (1 - lr·wd) for the
/// decay group only, then m ← β₁m + (1-β₁)g, v ← β₂v + (1-β₂)g², p ← p - lr · m̂ / (√v̂ + ε) with bias corrections.
/// Defaults are the official VAR trainer's (β = 0.9 / 0.95, wd 0.05); parameters with `decay == false` (biases,
/// norm weights, embeddings) form the no-decay group, as VAR's `filter_params` and DiT's trainers build them.
public final class AdamW {
    public var beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    public private(set) var step = 0
    public private(set) var m: [[Float]], v: [[Float]]
    public let params: [Parameter]

    public init(_ params: [Parameter], beta1: Float = 0.9, beta2: Float = 0.95, eps: Float = 1e-8, weightDecay: Float = 0.05) {
        self.params = params; self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        m = params.map { [Float](repeating: 0, count: $0.value.count) }
        v = m
    }

    /// One update with learning rate `lr` from the parameters' current gradients.
    public func update(lr: Float) {
        step += 1
        let bc1 = 1 - powf(beta1, Float(step)), bc2 = 1 - powf(beta2, Float(step))
        let stepSize = lr / bc1, bc2Sqrt = bc2.squareRoot()
        for (pi, p) in params.enumerated() {
            let decay: Float = p.decay ? 1 - lr * weightDecay : 1
            let (b1, b2, eps) = (beta1, beta2, eps)
            p.value.data.withUnsafeMutableBufferPointer { w in
                p.grad.data.withUnsafeBufferPointer { g in
                    m[pi].withUnsafeMutableBufferPointer { mm in
                        v[pi].withUnsafeMutableBufferPointer { vv in
                            guard w.count > 0 else { return }
                            let sw = UnsafeMutableSendable(w.baseAddress!), sg = UnsafeSendable(g.baseAddress!)
                            let sm = UnsafeMutableSendable(mm.baseAddress!), sv = UnsafeMutableSendable(vv.baseAddress!)
                            // Elementwise, so the pieces (parallel for the large tensors) give the same bits.
                            Parallel.forRanges(w.count, grain: 1 << 14) { r in
                                let (w, g, mm, vv) = (sw.p, sg.p, sm.p, sv.p)
                                for i in r {
                                    w[i] *= decay
                                    mm[i] = b1 * mm[i] + (1 - b1) * g[i]
                                    vv[i] = b2 * vv[i] + (1 - b2) * g[i] * g[i]
                                    w[i] -= stepSize * mm[i] / (vv[i].squareRoot() / bc2Sqrt + eps)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// State for checkpoints: step and the moment buffers (same order as `params`).
    public func restore(step: Int, m: [[Float]], v: [[Float]]) throws {
        guard m.count == params.count, v.count == params.count,
            zip(params, zip(m, v)).allSatisfy({ $0.value.count == $1.0.count && $0.value.count == $1.1.count })
        else {
            throw TrainingError.checkpoint("optimizer state does not match the model's parameters")
        }
        self.step = step; self.m = m; self.v = v
    }
}

/// Gradient clipping by the global L2 norm over all parameters (torch.nn.utils.clip_grad_norm_): when the norm
/// exceeds `maxNorm`, every gradient is scaled by maxNorm / (norm + 1e-6). Returns the norm before clipping (NaN
/// or infinite when a gradient is; then nothing is scaled and the caller should stop).
@discardableResult
public func clipGradNorm(_ params: [Parameter], maxNorm: Float) -> Double {
    var s = 0.0
    for p in params { for g in p.grad.data { s += Double(g) * Double(g) } }
    let norm = s.squareRoot()
    guard norm.isFinite, maxNorm > 0, norm > Double(maxNorm) else { return norm }
    let k = Float(Double(maxNorm) / (norm + 1e-6))
    for p in params { p.grad.data.withUnsafeMutableBufferPointer { g in for i in 0..<g.count { g[i] *= k } } }
    return norm
}

/// Learning-rate schedule: linear warmup from `warmupStart`·peak to peak over `warmupSteps`, then cosine or linear
/// decay to `finalRatio`·peak at `totalSteps` (VAR's `lr_wd_annealing` shape with its 'cos' / 'lin' options).
public struct LRSchedule: Sendable, Codable, Equatable {
    public enum Decay: String, Sendable, Codable { case cosine, linear, constant }
    public var peak: Float
    public var warmupSteps: Int
    public var totalSteps: Int
    public var decay: Decay
    public var warmupStart: Float
    public var finalRatio: Float

    public init(
        peak: Float, warmupSteps: Int, totalSteps: Int, decay: Decay = .cosine, warmupStart: Float = 0.005,
        finalRatio: Float = 0.01
    ) {
        self.peak = peak; self.warmupSteps = warmupSteps; self.totalSteps = totalSteps; self.decay = decay
        self.warmupStart = warmupStart; self.finalRatio = finalRatio
    }

    /// Learning rate of (0-based) step `step`.
    public func lr(_ step: Int) -> Float {
        if step < warmupSteps {
            let t = Float(step) / Float(max(warmupSteps, 1))
            return peak * (warmupStart + (1 - warmupStart) * t)
        }
        let span = max(totalSteps - warmupSteps, 1)
        let t = min(1, Float(step - warmupSteps) / Float(span))
        switch decay {
        case .constant: return peak
        case .linear: return peak * (1 - (1 - finalRatio) * t)
        case .cosine: return peak * (finalRatio + (1 - finalRatio) * 0.5 * (1 + cosf(Float.pi * t)))
        }
    }
}

public enum TrainingError: Error, CustomStringConvertible {
    case checkpoint(String)
    case data(String)
    case diverged(step: Int, loss: Double, kept: String?)
    case config(String)
    public var description: String {
        switch self {
        case let .checkpoint(s): return "checkpoint: \(s)"
        case let .data(s): return "data: \(s)"
        case let .config(s): return "config: \(s)"
        case let .diverged(step, loss, kept):
            return "training diverged at step \(step) (loss \(loss)); "
                + (kept.map { "the last good checkpoint is kept at \($0)" } ?? "no checkpoint had been written yet")
        }
    }
}
