import Foundation
import Tensor

/// The Gaussian diffusion of DiT's diffusion/ (ADM's gaussian_diffusion.py + respace.py) as `create_diffusion`
/// builds it: linear betas over 1000 steps, epsilon prediction, learned-range variance (or fixed-large when the
/// model does not learn sigma), respaced to the kept timesteps. All tables are float64 (numpy); every value that
/// meets a tensor is first rounded to float32, as `_extract_into_tensor` does.
public struct GaussianDiffusion: Sendable {
    public enum VarianceType: Sendable { case learnedRange, fixedLarge }

    /// Original timestep of each respaced index (ascending); the model is called with these.
    public let timestepMap: [Int]
    public let varianceType: VarianceType
    public let betas: [Double]
    public let alphasCumprod: [Double]
    public let alphasCumprodPrev: [Double]
    public let alphasCumprodNext: [Double]
    public let sqrtAlphasCumprod: [Double]
    public let sqrtOneMinusAlphasCumprod: [Double]
    public let sqrtRecipAlphasCumprod: [Double]
    public let sqrtRecipm1AlphasCumprod: [Double]
    public let posteriorVariance: [Double]
    public let posteriorLogVarianceClipped: [Double]
    public let posteriorMeanCoef1: [Double]
    public let posteriorMeanCoef2: [Double]
    public let logBetas: [Double]

    public var numSteps: Int { betas.count }

    /// numpy.linspace(1e-4 * s, 0.02 * s, n) with s = 1000 / n (get_named_beta_schedule("linear")):
    /// start + i * ((stop - start) / (n - 1)), the last value set to stop exactly.
    public static func linearBetas(_ n: Int) -> [Double] {
        let scale = 1000.0 / Double(n)
        let start = scale * 0.0001, stop = scale * 0.02
        if n == 1 { return [start] }
        let step = (stop - start) / Double(n - 1)
        var b = (0..<n).map { Double($0) * step + start }
        b[n - 1] = stop
        return b
    }

    /// `create_diffusion(respacing)`: "" means all `diffusionSteps`; otherwise a `space_timesteps` spec
    /// ("250", "ddim50", "10,20,30").
    public init(respacing: String, diffusionSteps: Int = 1000, learnSigma: Bool = true) throws {
        guard diffusionSteps >= 1 else { throw DiTError.badConfig("diffusion needs at least 1 step") }
        let keep = respacing.isEmpty ? Array(0..<diffusionSteps) : try Respacing.spaceTimesteps(diffusionSteps, respacing)
        self.init(
            useTimesteps: keep, baseBetas: GaussianDiffusion.linearBetas(diffusionSteps),
            varianceType: learnSigma ? .learnedRange : .fixedLarge)
    }

    /// SpacedDiffusion: keeps `useTimesteps` of the base process; respaced beta_i = 1 - abar[i] / abar[previous kept].
    public init(useTimesteps: [Int], baseBetas: [Double], varianceType: VarianceType = .learnedRange) {
        let keep = Set(useTimesteps)
        var ac = 1.0
        var last = 1.0
        var newBetas: [Double] = []
        var map: [Int] = []
        for (i, b) in baseBetas.enumerated() {
            ac *= 1.0 - b  // np.cumprod of alphas, sequential
            if keep.contains(i) {
                newBetas.append(1 - ac / last)
                last = ac
                map.append(i)
            }
        }
        self.init(betas: newBetas, timestepMap: map, varianceType: varianceType)
    }

    /// GaussianDiffusion.__init__ on given betas.
    public init(betas: [Double], timestepMap: [Int], varianceType: VarianceType = .learnedRange) {
        self.betas = betas
        self.timestepMap = timestepMap
        self.varianceType = varianceType
        let n = betas.count
        var ac = [Double](repeating: 0, count: n)
        var prod = 1.0
        for i in 0..<n { prod *= 1.0 - betas[i]; ac[i] = prod }
        alphasCumprod = ac
        alphasCumprodPrev = [1.0] + ac.dropLast()
        alphasCumprodNext = Array(ac.dropFirst()) + [0.0]
        sqrtAlphasCumprod = ac.map { $0.squareRoot() }
        sqrtOneMinusAlphasCumprod = ac.map { (1.0 - $0).squareRoot() }
        sqrtRecipAlphasCumprod = ac.map { (1.0 / $0).squareRoot() }
        sqrtRecipm1AlphasCumprod = ac.map { (1.0 / $0 - 1).squareRoot() }
        var pv = [Double](repeating: 0, count: n)
        for i in 0..<n { pv[i] = betas[i] * (1.0 - alphasCumprodPrev[i]) / (1.0 - ac[i]) }
        posteriorVariance = pv
        posteriorLogVarianceClipped = n > 1 ? ([pv[1]] + pv.dropFirst()).map { Foundation.log($0) } : []
        let acPrev = alphasCumprodPrev
        var coef1 = [Double](repeating: 0, count: n), coef2 = coef1
        for i in 0..<n {
            let oneMinusAc: Double = 1.0 - ac[i]
            coef1[i] = betas[i] * acPrev[i].squareRoot() / oneMinusAc
            let alpha: Double = 1.0 - betas[i]
            coef2[i] = (1.0 - acPrev[i]) * alpha.squareRoot() / oneMinusAc
        }
        posteriorMeanCoef1 = coef1
        posteriorMeanCoef2 = coef2
        logBetas = betas.map { Foundation.log($0) }
    }

    /// Output of p_mean_variance, float32 [N, C, H, W] each.
    public struct MeanVariance: Sendable {
        public var mean: Tensor
        public var variance: Tensor
        public var logVariance: Tensor
        public var predXstart: Tensor
    }

    /// `p_mean_variance` given the model output for (x, t): `modelOutput` [N, 2C, ...] for learned range
    /// (split [eps, v]) or [N, C, ...] for fixed-large; `t` are RESPACED indices, one per row.
    ///   frac = (v + 1) / 2;  log_var = frac log(beta_t) + (1 - frac) posterior_log_variance_clipped_t
    ///   x0 = sqrt(1/abar_t) x - sqrt(1/abar_t - 1) eps  (clamped to [-1, 1] if clipDenoised)
    ///   mean = coef1_t x0 + coef2_t x
    public func pMeanVariance(modelOutput: Tensor, x: Tensor, t: [Int], clipDenoised: Bool) throws -> MeanVariance {
        let n = x.shape[0], c = x.shape[1]
        let plane = x.count / max(n * c, 1)
        let outC = varianceType == .learnedRange ? 2 * c : c
        guard modelOutput.shape == [n, outC] + Array(x.shape.dropFirst(2)) else {
            throw DiTError.badInput("model output \(modelOutput.shape) does not match x \(x.shape) (expected \(outC) channels)")
        }
        guard t.count == n, t.allSatisfy({ $0 >= 0 && $0 < numSteps }) else {
            throw DiTError.badInput("timesteps \(t) invalid for \(n) rows and \(numSteps) steps")
        }
        var mean = [Float](repeating: 0, count: x.count)
        var variance = mean, logVar = mean, x0 = mean
        // Fixed-large tables (only used when the model does not learn sigma).
        let fixedVar = n > 0 && numSteps > 1 ? [posteriorVariance[1]] + betas.dropFirst() : betas
        for r in 0..<n {
            let ti = t[r]
            let minLog = Float(posteriorLogVarianceClipped.isEmpty ? logBetas[ti] : posteriorLogVarianceClipped[ti])
            let maxLog = Float(logBetas[ti])
            let sr = Float(sqrtRecipAlphasCumprod[ti]), srm1 = Float(sqrtRecipm1AlphasCumprod[ti])
            let c1 = Float(posteriorMeanCoef1[ti]), c2 = Float(posteriorMeanCoef2[ti])
            let fv = Float(fixedVar[ti]), flv = Float(Foundation.log(fixedVar[ti]))
            for ch in 0..<c {
                let xo = (r * c + ch) * plane
                let eo = (r * outC + ch) * plane
                let vo = (r * outC + c + ch) * plane
                for i in 0..<plane {
                    let xv = x.data[xo + i], eps = modelOutput.data[eo + i]
                    if varianceType == .learnedRange {
                        let frac = (modelOutput.data[vo + i] + 1) / 2
                        let lv = frac * maxLog + (1 - frac) * minLog
                        logVar[xo + i] = lv
                        variance[xo + i] = Float(Foundation.exp(Double(lv)))
                    } else {
                        logVar[xo + i] = flv
                        variance[xo + i] = fv
                    }
                    var p = sr * xv - srm1 * eps
                    if clipDenoised { p = Swift.min(Swift.max(p, -1), 1) }
                    x0[xo + i] = p
                    mean[xo + i] = c1 * p + c2 * xv
                }
            }
        }
        return MeanVariance(
            mean: Tensor(shape: x.shape, data: mean), variance: Tensor(shape: x.shape, data: variance),
            logVariance: Tensor(shape: x.shape, data: logVar), predXstart: Tensor(shape: x.shape, data: x0))
    }

    /// `q_sample`: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise (t respaced, one per row; float32 coefficients).
    public func qSample(x0: Tensor, t: [Int], noise: Tensor) -> Tensor {
        let n = x0.shape[0], per = x0.count / max(n, 1)
        var out = [Float](repeating: 0, count: x0.count)
        for r in 0..<n {
            let a = Float(sqrtAlphasCumprod[t[r]]), b = Float(sqrtOneMinusAlphasCumprod[t[r]])
            for i in (r * per)..<((r + 1) * per) { out[i] = a * x0.data[i] + b * noise.data[i] }
        }
        return Tensor(shape: x0.shape, data: out)
    }

    /// `_predict_eps_from_xstart`: (sqrt(1/abar_t) x - x0) / sqrt(1/abar_t - 1), float32.
    public func predictEpsFromXstart(x: Tensor, t: [Int], predXstart: Tensor) -> Tensor {
        let n = x.shape[0], per = x.count / max(n, 1)
        var out = [Float](repeating: 0, count: x.count)
        for r in 0..<n {
            let sr = Float(sqrtRecipAlphasCumprod[t[r]]), srm1 = Float(sqrtRecipm1AlphasCumprod[t[r]])
            for i in (r * per)..<((r + 1) * per) { out[i] = (sr * x.data[i] - predXstart.data[i]) / srm1 }
        }
        return Tensor(shape: x.shape, data: out)
    }
}
