import DiT
import Foundation
import ModelIO
import Tensor
import TestSupport
import XCTest

/// The float64 schedules and respacing maps against dit/diffusion_schedule.safetensors. The tables are float64
/// numpy; ours are float64 Swift: equal up to the last bits of log/sqrt (relative 1e-12).
final class DiffusionScheduleTests: XCTestCase {
    func doubles(_ f: SafetensorsFile, _ key: String) throws -> [Double] {
        // floatTensor would round to float32; the schedules must be compared in float64.
        try f.doubleValues(key)
    }

    func assertClose(_ a: [Double], _ b: [Double], _ what: String, rel: Double = 1e-12) {
        XCTAssertEqual(a.count, b.count, what)
        for (i, (x, y)) in zip(a, b).enumerated() {
            if abs(x - y) > rel * max(abs(y), 1e-300) {
                XCTFail("\(what)[\(i)]: \(x) vs \(y)")
                return
            }
        }
    }

    func respacingFromManifest() throws -> (main: String, betasOnly: String) {
        let cfg = try XCTUnwrap((Fixtures.json("dit/manifest.json")["meta"] as? [String: Any])?["config"] as? [String: Any])
        return (try XCTUnwrap(cfg["respacing"] as? String), try XCTUnwrap(cfg["respacing_betas_only"] as? String))
    }

    func testUnrespacedBetas() throws {
        let f = try Fixtures.safetensors("dit/diffusion_schedule.safetensors")
        let ref = try doubles(f, "base_betas_1000")
        // create_diffusion('') still goes through SpacedDiffusion, whose betas are 1 - abar_i / abar_{i-1}:
        // the same float64 operations in the same order, so bit-identical ...
        let d = try GaussianDiffusion(respacing: "", diffusionSteps: ref.count)
        XCTAssertEqual(d.betas.count, ref.count)
        XCTAssertTrue(d.betas == ref, "max diff \(zip(d.betas, ref).map { abs($0 - $1) }.max() ?? .nan)")
        // ... and equal to numpy.linspace up to the cancellation in 1 - abar_i / abar_{i-1} (~1e-16 / beta).
        assertClose(GaussianDiffusion.linearBetas(ref.count), ref, "linspace", rel: 1e-10)
    }

    func testSpaceTimesteps() throws {
        let f = try Fixtures.safetensors("dit/diffusion_schedule.safetensors")
        let keys = f.keys.filter { $0.hasPrefix("space_timesteps_") }
        XCTAssertFalse(keys.isEmpty)
        for key in keys {
            let spec = String(key.dropFirst("space_timesteps_".count)).replacingOccurrences(of: "_", with: ",")
            let ref = try f.intTensor(key).values.map { Int($0) }
            XCTAssertEqual(try Respacing.spaceTimesteps(1000, spec), ref, "space_timesteps(1000, '\(spec)')")
        }
    }

    func testHalfTiesRoundToEven() throws {
        // The manifest lists the exact .5 ties of each spec; every one must land on the even neighbour.
        let cfg = try XCTUnwrap(Fixtures.json("dit/manifest.json")["meta"] as? [String: Any])
        let ties = try XCTUnwrap(cfg["space_timesteps_half_ties"] as? [String: [Double]])
        for (spec, values) in ties {
            let kept = Set(try Respacing.spaceTimesteps(1000, spec))
            for v in values {
                let even = Int(v.rounded(.toNearestOrEven)), odd = even + (Double(even) < v ? 1 : -1)
                XCTAssertTrue(kept.contains(even), "\(spec): \(v) -> \(even)")
                XCTAssertFalse(kept.contains(odd) && !kept.contains(even), "\(spec): \(v)")
            }
        }
    }

    func testRespacedTables() throws {
        let f = try Fixtures.safetensors("dit/diffusion_schedule.safetensors")
        let (main, betasOnly) = try respacingFromManifest()
        let d = try GaussianDiffusion(respacing: main)
        let s = "_" + main
        XCTAssertEqual(d.timestepMap, try f.intTensor("timestep_map" + s).values.map { Int($0) })
        let tables: [(String, [Double])] = [
            ("betas", d.betas), ("alphas_cumprod", d.alphasCumprod), ("alphas_cumprod_prev", d.alphasCumprodPrev),
            ("alphas_cumprod_next", d.alphasCumprodNext), ("sqrt_alphas_cumprod", d.sqrtAlphasCumprod),
            ("sqrt_one_minus_alphas_cumprod", d.sqrtOneMinusAlphasCumprod),
            ("sqrt_recip_alphas_cumprod", d.sqrtRecipAlphasCumprod), ("sqrt_recipm1_alphas_cumprod", d.sqrtRecipm1AlphasCumprod),
            ("posterior_variance", d.posteriorVariance), ("posterior_log_variance_clipped", d.posteriorLogVarianceClipped),
            ("posterior_mean_coef1", d.posteriorMeanCoef1), ("posterior_mean_coef2", d.posteriorMeanCoef2),
        ]
        for (name, ours) in tables {
            guard f.contains(name + s) else { XCTFail("fixture lacks \(name + s)"); continue }
            assertClose(ours, try doubles(f, name + s), name + s)
        }
        let d2 = try GaussianDiffusion(respacing: betasOnly)
        XCTAssertEqual(d2.timestepMap, try f.intTensor("timestep_map_" + betasOnly).values.map { Int($0) })
        assertClose(d2.betas, try doubles(f, "betas_" + betasOnly), "betas_" + betasOnly)
    }

    func testBadRespacingIsAnError() {
        XCTAssertThrowsError(try Respacing.spaceTimesteps(1000, "1001"))
        XCTAssertThrowsError(try Respacing.spaceTimesteps(1000, "abc"))
        XCTAssertThrowsError(try Respacing.spaceTimesteps(1000, "ddim999"))
    }
}

extension SafetensorsFile {
    /// float64 values of a tensor without the float32 rounding of floatTensor (F64 only; others widen).
    func doubleValues(_ key: String) throws -> [Double] {
        let info = try requireInfo(key)
        if info.dtype != .f64 { return try floatTensor(key).data.map(Double.init) }
        let raw = try rawBytes(key)
        return (0..<info.count).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self) }
    }
}
