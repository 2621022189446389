import DiT
import Foundation
import Tensor

public enum DiffusionSamplerError: Error, CustomStringConvertible, Equatable {
    case badNoise(String)
    case badOption(String)
    public var description: String {
        switch self {
        case let .badNoise(s): return s
        case let .badOption(s): return s
        }
    }
}

/// The reverse process: DDPM ancestral sampling (`p_sample_loop`) or DDIM (`ddim_sample_loop`, with eta),
/// over the respaced steps t = N-1 ... 0 of a `GaussianDiffusion`.
public struct DiffusionSampler {
    public enum Method: Equatable, Sendable {
        case ddpm
        case ddim(eta: Float)

        /// Parses "ddpm" / "ddim" (eta separately); the error names the flag.
        public static func parse(_ name: String, eta: Float = 0) throws -> Method {
            // DDIM's eta interpolates between deterministic DDIM (0) and DDPM-like noise (1).
            guard eta.isFinite, eta >= 0, eta <= 1 else {
                throw DiffusionSamplerError.badOption("--eta must be a number from 0 to 1, got \(eta)")
            }
            switch name.lowercased() {
            case "ddpm": return .ddpm
            case "ddim": return .ddim(eta: eta)
            default: throw DiffusionSamplerError.badOption("--sampler must be ddpm or ddim, got '\(name)'")
            }
        }
    }

    /// The model, as the loop sees it: (x_t, ORIGINAL timesteps as float) -> model output [N, 2C, ...].
    /// (`_WrappedModel`: the respaced index is mapped through `timestepMap` before the call.)
    public typealias Denoiser = (_ x: Tensor, _ t: [Float]) throws -> Tensor

    public struct Step {
        /// 0-based loop step and the number of steps.
        public var step: Int
        public var steps: Int
        /// Respaced index and the original timestep the model saw.
        public var t: Int
        public var originalT: Int
        public var sample: Tensor
        public var predXstart: Tensor
    }

    public var diffusion: GaussianDiffusion
    public var method: Method
    /// DiT's sample.py / sample_ddp.py use clip_denoised = False.
    public var clipDenoised: Bool

    public init(diffusion: GaussianDiffusion, method: Method, clipDenoised: Bool = false) {
        self.diffusion = diffusion; self.method = method; self.clipDenoised = clipDenoised
    }

    /// Runs the whole loop from x_T = noise.initial(shape) and returns x_0.
    public func sample<N: DiffusionNoise>(
        shape: [Int], noise: inout N, denoiser: Denoiser,
        onStep: (Step) -> Void = { _ in }
    ) throws -> Tensor {
        var x = try noise.initial(shape: shape)
        let steps = diffusion.numSteps
        for k in 0..<steps {
            let ti = steps - 1 - k
            let r = try step(x, t: ti, noise: try noise.step(k, shape: shape), denoiser: denoiser)
            x = r.sample
            onStep(Step(step: k, steps: steps, t: ti, originalT: diffusion.timestepMap[ti], sample: x, predXstart: r.predXstart))
        }
        return x
    }

    /// One reverse step from x_t at respaced index `t` (all rows) to x_{t-1}, with the given noise
    /// (`p_sample` or `ddim_sample`). For loops that interleave their own work (editing: RePaint, SDEdit).
    public func step(_ x: Tensor, t: Int, noise: Tensor, denoiser: Denoiser) throws -> (sample: Tensor, predXstart: Tensor) {
        let n = x.shape[0]
        guard t >= 0, t < diffusion.numSteps else { throw DiffusionSamplerError.badOption("step \(t) outside 0..<\(diffusion.numSteps)") }
        guard noise.shape == x.shape else { throw DiffusionSamplerError.badNoise("noise \(noise.shape) for x \(x.shape)") }
        let out = try denoiser(x, [Float](repeating: Float(diffusion.timestepMap[t]), count: n))
        try out.requireFinite("DiT output at timestep \(diffusion.timestepMap[t])")
        let mv = try diffusion.pMeanVariance(modelOutput: out, x: x, t: [Int](repeating: t, count: n), clipDenoised: clipDenoised)
        switch method {
        case .ddpm: return (DiffusionSampler.ddpmStep(mv, noise: noise, t: t), mv.predXstart)
        case let .ddim(eta): return (DiffusionSampler.ddimStep(diffusion, mv, x: x, noise: noise, t: t, eta: eta), mv.predXstart)
        }
    }

    /// `p_sample`: mean + (t != 0) * exp(0.5 log_var) * noise (float32, that operation order).
    public static func ddpmStep(_ mv: GaussianDiffusion.MeanVariance, noise: Tensor, t: Int) -> Tensor {
        let mask: Float = t != 0 ? 1 : 0
        var out = [Float](repeating: 0, count: mv.mean.count)
        for i in 0..<out.count {
            let sd = Float(Foundation.exp(Double(0.5 * mv.logVariance.data[i])))
            out[i] = mv.mean.data[i] + (mask * sd) * noise.data[i]
        }
        return Tensor(shape: mv.mean.shape, data: out)
    }

    /// `ddim_sample` (Song et al. eq. 12), float32 as the official code:
    ///   eps = (sqrt(1/abar) x - x0) / sqrt(1/abar - 1)
    ///   sigma = eta sqrt((1 - abar_prev) / (1 - abar)) sqrt(1 - abar / abar_prev)
    ///   x_prev = x0 sqrt(abar_prev) + sqrt(1 - abar_prev - sigma^2) eps + (t != 0) sigma noise
    public static func ddimStep(
        _ d: GaussianDiffusion, _ mv: GaussianDiffusion.MeanVariance, x: Tensor, noise: Tensor,
        t: Int, eta: Float
    ) -> Tensor {
        let n = x.shape[0]
        let eps = d.predictEpsFromXstart(x: x, t: [Int](repeating: t, count: n), predXstart: mv.predXstart)
        let ab = Float(d.alphasCumprod[t]), abPrev = Float(d.alphasCumprodPrev[t])
        let sigma = eta * ((1 - abPrev) / (1 - ab)).squareRoot() * (1 - ab / abPrev).squareRoot()
        let sqrtPrev = abPrev.squareRoot()
        let dirCoef = (1 - abPrev - sigma * sigma).squareRoot()
        let mask: Float = t != 0 ? 1 : 0
        var out = [Float](repeating: 0, count: x.count)
        for i in 0..<out.count {
            let meanPred = mv.predXstart.data[i] * sqrtPrev + dirCoef * eps.data[i]
            out[i] = meanPred + (mask * sigma) * noise.data[i]
        }
        return Tensor(shape: x.shape, data: out)
    }
}
