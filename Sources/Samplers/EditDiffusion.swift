// Diffusion editing in latent space with an unchanged denoiser:
//  * RePaint-style in-painting (Lugmayr et al. 2022): before every denoising step at t, the KNOWN region of x_t is
//    replaced by the forward-noised known latent q(x_t | x_0) = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, so the
//    model only has to fill in the unknown region consistently. Optional resampling (the RePaint jump schedule):
//    after reaching t, jump back up `jumpLength` steps with the forward transition
//    x_{t+1} = sqrt(1 - beta_{t+1}) x_t + sqrt(beta_{t+1}) eps and denoise again, `jumpNSample - 1` times.
//  * SDEdit (Meng et al. 2022): noise the whole known latent to level `strength` (x_{t0} = q(x_{t0} | x_0) with
//    t0 = round(strength * N) - 1 of the respaced schedule) and denoise from there with the new class; with a mask
//    the kept region is re-injected at every step as in RePaint.
// After the last step the kept region is set to the known latent itself (RePaint's output there only approximates
// it), so the kept region of the result equals the encoded input exactly.
//
// Randomness: the denoising steps draw their noise from `noise` exactly as `DiffusionSampler.sample` does (x_T,
// then one draw per step), and everything the editing adds (known-region noise, re-noising jumps) comes from a
// separate source `editNoise`. Hence an all-regenerate mask reproduces plain sampling with the same seed.
import DiT
import Foundation
import Tensor

public struct DiffusionEditor {
    public enum Mode: Equatable, Sendable {
        case inpaint
        /// SDEdit: start from the known latent noised to this level, in (0, 1].
        case sdedit(strength: Double)
    }

    public var sampler: DiffusionSampler
    public var mode: Mode
    /// RePaint resampling (jump length, repeats); nil = plain descent.
    public var resample: (jumpLength: Int, jumpNSample: Int)?

    public init(sampler: DiffusionSampler, mode: Mode, resample: (jumpLength: Int, jumpNSample: Int)? = nil) {
        self.sampler = sampler; self.mode = mode; self.resample = resample
    }

    /// The first (largest) respaced index SDEdit denoises from.
    public static func sdeditStart(strength: Double, steps: Int) -> Int {
        min(steps - 1, max(0, Int((strength * Double(steps)).rounded()) - 1))
    }

    /// The denoising/re-noising schedule: respaced indices visited, ending with -1.
    public func schedule() -> [Int] {
        let n = sampler.diffusion.numSteps
        switch mode {
        case .inpaint:
            if let r = resample { return RePaintSchedule.times(steps: n, jumpLength: r.jumpLength, jumpNSample: r.jumpNSample) }
            return RePaintSchedule.plain(steps: n)
        case let .sdedit(s):
            return RePaintSchedule.plain(steps: DiffusionEditor.sdeditStart(strength: s, steps: n) + 1)
        }
    }

    /// `known`: the encoded input latent [N, C, h, w] (scaled as the denoiser expects); `keep`: per latent cell
    /// (h * w, shared by the batch and the channels), true = keep the known latent, false = regenerate.
    /// Returns the edited latent x_0.
    public func run<N: DiffusionNoise, E: DiffusionNoise>(
        known: Tensor, keep: [Bool], noise: inout N, editNoise: inout E,
        denoiser: DiffusionSampler.Denoiser,
        onStep: ((_ done: Int, _ total: Int) -> Void)? = nil
    ) throws -> Tensor {
        guard known.rank == 4 else { throw EditError.invalid("known latent must be [N, C, h, w], got \(known.shape)") }
        let shape = known.shape
        let (n, c, hw) = (shape[0], shape[1], shape[2] * shape[3])
        guard keep.count == hw else { throw EditError.invalid("keep mask has \(keep.count) cells, the latent \(shape[2])x\(shape[3])") }
        if case let .sdedit(s) = mode, !(s > 0 && s <= 1) { throw EditError.invalid("strength must be in (0, 1], got \(s)") }
        if let r = resample, r.jumpLength < 1 || r.jumpNSample < 1 { throw EditError.invalid("jump length and repeats must be >= 1") }
        let d = sampler.diffusion
        let anyKept = keep.contains(true)

        /// x where the mask keeps <- value (exact selection, no arithmetic blending).
        func inject(_ x: inout Tensor, _ value: Tensor) {
            for b in 0..<n {
                for ch in 0..<c {
                    let base = (b * c + ch) * hw
                    for i in 0..<hw where keep[i] { x.data[base + i] = value.data[base + i] }
                }
            }
        }
        /// q(x_t | x_0) with float32 coefficients (as `_extract_into_tensor` casts them).
        func qSample(_ t: Int, _ eps: Tensor) -> Tensor {
            let a = Float(d.sqrtAlphasCumprod[t]), s = Float(d.sqrtOneMinusAlphasCumprod[t])
            var out = known
            for i in 0..<out.count { out.data[i] = a * known.data[i] + s * eps.data[i] }
            return out
        }

        let ts = schedule()
        let total = RePaintSchedule.denoisingSteps(ts)
        var x = try noise.initial(shape: shape)
        if case .sdedit = mode { x = qSample(ts[0], x) }  // SDEdit: x_{t0} from the known latent and the x_T draw
        var k = 0  // denoising calls so far (indexes the step noise, as in the plain loop)
        for (tLast, tCur) in zip(ts, ts.dropFirst()) {
            if tCur < tLast {
                if anyKept { inject(&x, qSample(tLast, try editNoise.step(k, shape: shape))) }
                let orig = d.timestepMap[tLast]
                let out = try denoiser(x, [Float](repeating: Float(orig), count: n))
                try out.requireFinite("DiT output at timestep \(orig)")
                let mv = try d.pMeanVariance(
                    modelOutput: out, x: x, t: [Int](repeating: tLast, count: n), clipDenoised: sampler.clipDenoised)
                let z = try noise.step(k, shape: shape)
                switch sampler.method {
                case .ddpm: x = DiffusionSampler.ddpmStep(mv, noise: z, t: tLast)
                case let .ddim(eta): x = DiffusionSampler.ddimStep(d, mv, x: x, noise: z, t: tLast, eta: eta)
                }
                k += 1
                onStep?(k, total)
            } else {
                // Jump back: one forward transition to tCur with the (respaced) beta of tCur.
                let beta = d.betas[tCur]
                let a = Float((1 - beta).squareRoot()), s = Float(beta.squareRoot())
                let eps = try editNoise.step(k, shape: shape)
                for i in 0..<x.count { x.data[i] = a * x.data[i] + s * eps.data[i] }
            }
        }
        if anyKept { inject(&x, known) }
        return x
    }
}
