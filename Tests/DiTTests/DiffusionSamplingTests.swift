import DiT
import Foundation
import ModelIO
import Samplers
import Tensor
import TestSupport
import XCTest

/// p_mean_variance, the full DDIM trajectory and the full DDPM loop (with the recorded per-step noises) against
/// dit/dit_sampling_io.safetensors. Tolerances (fixture README): single calls 1e-4 * max(1, max|ref|); the
/// chained trajectories 1e-4 * max|ref| of each step (float32 re-ordering alone gave ~5e-7 relative).
final class DiffusionSamplingTests: XCTestCase {
    static let tolerance: Float = 1e-4

    struct Setup {
        var model: DiTModel
        var diffusion: GaussianDiffusion
        var io: SafetensorsFile
        var manifest: [String: Any]
    }

    func setup() throws -> Setup {
        let manifest = try Fixtures.json("dit/manifest.json")
        let cfg = try XCTUnwrap((manifest["meta"] as? [String: Any])?["config"] as? [String: Any])
        let model = try DiTModel.load(path: Fixtures.path("dit/dit.safetensors"))
        let d = try GaussianDiffusion(respacing: try XCTUnwrap(cfg["respacing"] as? String), learnSigma: model.config.learnSigma)
        return Setup(model: model, diffusion: d, io: try Fixtures.safetensors("dit/dit_sampling_io.safetensors"), manifest: manifest)
    }

    /// A setting that the fixture only states inside a tensor description (e.g. "cfg_scale=1.5").
    func described(_ s: Setup, tensor: String, _ field: String) throws -> Float {
        let files = try XCTUnwrap(s.manifest["files"] as? [[String: Any]])
        for f in files {
            for t in (f["tensors"] as? [[String: Any]]) ?? [] where t["name"] as? String == tensor {
                let desc = try XCTUnwrap(t["desc"] as? String)
                let r = try XCTUnwrap(desc.range(of: field + "="))
                let num = desc[r.upperBound...].prefix { "0123456789.-".contains($0) }
                return try XCTUnwrap(Float(num))
            }
        }
        throw XCTSkip("manifest has no tensor \(tensor)")
    }

    func ints(_ f: SafetensorsFile, _ key: String) throws -> [Int] { try f.intTensor(key).values.map { Int($0) } }

    func check(_ a: Tensor, _ ref: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let e = relativeError(a, ref)
        XCTAssertLessThanOrEqual(e, Self.tolerance, "\(what): relative error \(e)", file: file, line: line)
    }

    func testPMeanVarianceWithCFG() throws {
        let s = try setup()
        let x = try s.io.floatTensor("pmv_x")
        let idx = try ints(s.io, "pmv_index")[0]
        let y = try ints(s.io, "pmv_y")
        let scale = try described(s, tensor: "pmv_cfg_mean", "cfg_scale")
        let n = x.shape[0]
        let t = [Float](repeating: Float(s.diffusion.timestepMap[idx]), count: n)
        let out = try s.model.forwardWithCFG(x, t: t, y: y, scale: scale)
        let mv = try s.diffusion.pMeanVariance(modelOutput: out, x: x, t: [Int](repeating: idx, count: n), clipDenoised: false)
        check(mv.mean, try s.io.floatTensor("pmv_cfg_mean"), "mean")
        check(mv.variance, try s.io.floatTensor("pmv_cfg_variance"), "variance")
        check(mv.logVariance, try s.io.floatTensor("pmv_cfg_log_variance"), "log_variance")
        check(mv.predXstart, try s.io.floatTensor("pmv_cfg_pred_xstart"), "pred_xstart")
    }

    func testPMeanVariancePlainClipped() throws {
        let s = try setup()
        let tIdx = try ints(s.io, "pmv_plain_t")
        let n = tIdx.count
        let x = try s.io.floatTensor("pmv_x").slice0(0, n)
        let y = Array(try ints(s.io, "pmv_y").prefix(n))
        let out = try s.model.forward(x, t: tIdx.map { Float(s.diffusion.timestepMap[$0]) }, y: y)
        let mv = try s.diffusion.pMeanVariance(modelOutput: out, x: x, t: tIdx, clipDenoised: true)
        check(mv.variance, try s.io.floatTensor("pmv_plain_variance"), "variance")
        check(mv.logVariance, try s.io.floatTensor("pmv_plain_log_variance"), "log_variance")
        // pred_xstart = sqrt(1/abar) x - sqrt(1/abar - 1) eps, then clamped: the forward pass's float32 error in eps
        // (bounded by the single-forward tolerance 1e-4 x max|eps|) arrives multiplied by sqrt(1/abar - 1), 157 at
        // t = 999, while the clamp leaves max|ref| = 1. The bound is that propagated error, row by row (PyTorch
        // against itself with oneDNN off already moves such a row by 8e-5); the mean carries it times coef1.
        let c = x.shape[1], per = x.count / n
        var predBound: [Float] = [], meanBound: [Float] = []
        for (r, t) in tIdx.enumerated() {
            let eps = out.slice0(r, r + 1).data.prefix(c * per).map(abs).max() ?? 0
            let amplified = Float(s.diffusion.sqrtRecipm1AlphasCumprod[t]) * eps
            predBound.append(Self.tolerance * max(1, amplified))
            meanBound.append(Self.tolerance * max(1, Float(s.diffusion.posteriorMeanCoef1[t]) * amplified))
        }
        checkRows(mv.predXstart, try s.io.floatTensor("pmv_plain_pred_xstart"), bounds: predBound, "pred_xstart")
        let meanRef = try s.io.floatTensor("pmv_plain_mean")
        let meanScale = (0..<n).map { r in max(meanBound[r], Self.tolerance * (meanRef.slice0(r, r + 1).data.map(abs).max() ?? 0)) }
        checkRows(mv.mean, meanRef, bounds: meanScale, "mean")
    }

    /// max |a - ref| over each row r of axis 0 is at most bounds[r].
    func checkRows(_ a: Tensor, _ ref: Tensor, bounds: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.shape, ref.shape, what, file: file, line: line)
        guard a.shape == ref.shape, a.shape[0] == bounds.count else { return XCTFail("\(what): rows", file: file, line: line) }
        for r in 0..<bounds.count {
            let d = zip(a.slice0(r, r + 1).data, ref.slice0(r, r + 1).data).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(d, bounds[r], "\(what) row \(r): max abs error \(d), bound \(bounds[r])", file: file, line: line)
        }
    }

    func trajectory(_ s: Setup, method: DiffusionSampler.Method, scale: Float, stepNoise: Tensor?) throws -> ([Tensor], [Tensor], Tensor) {
        let z = try s.io.floatTensor("z_cat")
        let y = try ints(s.io, "sample_y")
        var noise = RecordedNoise(initial: z, steps: stepNoise)
        var xs: [Tensor] = [], x0s: [Tensor] = []
        let sampler = DiffusionSampler(diffusion: s.diffusion, method: method, clipDenoised: false)
        let final = try sampler.sample(
            shape: z.shape, noise: &noise,
            denoiser: DiTDenoisers.officialCFG(s.model, labels: y, scale: scale)
        ) { st in
            xs.append(st.sample); x0s.append(st.predXstart)
        }
        return (xs, x0s, final)
    }

    func testDDIMTrajectory() throws {
        let s = try setup()
        let scale = try s.io.floatTensor("ddim_cfg_scale").data[0]
        let (xs, x0s, final) = try trajectory(s, method: .ddim(eta: 0), scale: scale, stepNoise: nil)
        let refX = try s.io.floatTensor("ddim_trajectory"), refX0 = try s.io.floatTensor("ddim_pred_xstart")
        XCTAssertEqual(xs.count, refX.shape[0])
        var worst: Float = 0
        for k in 0..<min(xs.count, refX.shape[0]) {
            let r = refX.slice0(k, k + 1).reshaped(xs[k].shape), r0 = refX0.slice0(k, k + 1).reshaped(xs[k].shape)
            check(xs[k], r, "ddim step \(k) sample")
            check(x0s[k], r0, "ddim step \(k) pred_xstart")
            worst = max(worst, relativeError(xs[k], r))
        }
        check(final, try s.io.floatTensor("ddim_final"), "ddim final")
        print("ddim worst per-step relative error \(worst)")
    }

    func testDDPMLoopWithRecordedNoise() throws {
        let s = try setup()
        let scale = try s.io.floatTensor("ddpm_cfg_scale").data[0]
        let (xs, _, final) = try trajectory(s, method: .ddpm, scale: scale, stepNoise: try s.io.floatTensor("ddpm_noise"))
        let refX = try s.io.floatTensor("ddpm_trajectory")
        XCTAssertEqual(xs.count, refX.shape[0])
        var worst: Float = 0
        for k in 0..<min(xs.count, refX.shape[0]) {
            let r = refX.slice0(k, k + 1).reshaped(xs[k].shape)
            check(xs[k], r, "ddpm step \(k)")
            worst = max(worst, relativeError(xs[k], r))
        }
        check(final, try s.io.floatTensor("ddpm_final"), "ddpm final")
        print("ddpm worst per-step relative error \(worst)")
    }

    /// The production path carries only the n conditional rows; they must equal rows [0, n) of the official 2n-row loop.
    func testGuidedHalfBatchEqualsOfficialRows() throws {
        let s = try setup()
        let scale = try s.io.floatTensor("ddpm_cfg_scale").data[0]
        let (_, _, official) = try trajectory(s, method: .ddpm, scale: scale, stepNoise: try s.io.floatTensor("ddpm_noise"))
        let z = try s.io.floatTensor("z")
        let n = z.shape[0]
        let y = Array(try ints(s.io, "sample_y").prefix(n))
        let all = try s.io.floatTensor("ddpm_noise")
        let steps = all.shape[0]
        var rows: [Tensor] = []
        for k in 0..<steps { rows.append(all.slice0(k, k + 1).reshaped(Array(all.shape.dropFirst())).slice0(0, n)) }
        var noise = RecordedNoise(initial: z, steps: Tensor.cat0(rows.map { $0.reshaped([1] + $0.shape) }))
        let sampler = DiffusionSampler(diffusion: s.diffusion, method: .ddpm)
        let ours = try sampler.sample(
            shape: z.shape, noise: &noise,
            denoiser: DiTDenoisers.guided(s.model, labels: y, scale: scale))
        XCTAssertEqual(ours, official.slice0(0, n))
    }

    func testPerSampleNoiseDependsOnlyOnSeedAndIndex() throws {
        var a = PerSampleNoise(seed: 7, sampleIndices: [3, 9])
        var b = PerSampleNoise(seed: 7, sampleIndices: [9])
        let shape = [4, 2, 2]
        let a0 = try a.initial(shape: [2] + shape), b0 = try b.initial(shape: [1] + shape)
        XCTAssertEqual(a0.slice0(1, 2), b0)
        let a1 = try a.step(0, shape: [2] + shape), b1 = try b.step(0, shape: [1] + shape)
        XCTAssertEqual(a1.slice0(1, 2), b1)
        XCTAssertNotEqual(a0.slice0(0, 1), b0)
    }

    func testSamplerNameErrors() {
        XCTAssertThrowsError(try DiffusionSampler.Method.parse("euler")) { e in XCTAssertTrue("\(e)".contains("--sampler")) }
        XCTAssertEqual(try DiffusionSampler.Method.parse("DDIM", eta: 0.5), .ddim(eta: 0.5))
        // eta outside [0, 1] (NaN, negative, huge) would give NaN noise scales: refused, naming the flag.
        for eta: Float in [.nan, -5, 1e30, .infinity] {
            XCTAssertThrowsError(try DiffusionSampler.Method.parse("ddim", eta: eta)) { e in XCTAssertTrue("\(e)".contains("--eta"), "\(e)")
            }
        }
    }
}
