import Foundation
import Metrics
import ModelIO
import Tensor
import TestSupport
import XCTest

/// FD (dgm-eval `compute_FD_with_reps`) and CMMD (google-research `cmmd.distance.mmd`) against the official values.
final class RepresentationDistanceTests: XCTestCase {
    /// The first n1 rows vs the next n2 rows of a feature tensor (the fixtures' 'images' cases).
    func split(_ t: Tensor, _ n1: Int, _ n2: Int) -> (Tensor, Tensor) {
        (t.slice0(0, n1), t.slice0(n1, n1 + n2))
    }

    func testFDMatchesDgmEval() throws {
        let expected = try XCTUnwrap(try Fixtures.json("eval/dinov2_fd_expected.json")["cases"] as? [String: [String: Any]])
        let f = try Fixtures.safetensors("eval/dinov2_fd.safetensors")
        XCTAssertFalse(expected.isEmpty)
        for (name, c) in expected.sorted(by: { $0.key < $1.key }) {
            let want = try XCTUnwrap(c["fd_official"] as? Double)
            let n1 = try XCTUnwrap(c["n1"] as? Int), n2 = try XCTUnwrap(c["n2"] as? Int), dim = try XCTUnwrap(c["dim"] as? Int)
            let (x, y): (Tensor, Tensor)
            if f.contains("\(name)_x") {
                (x, y) = (try f.floatTensor("\(name)_x"), try f.floatTensor("\(name)_y"))
                // The statistics themselves (np.mean, np.cov with N - 1).
                let sx = try GaussianStats(features: x)
                let mu = try f.floatTensor64("\(name)_mu1"), sigma = try f.floatTensor64("\(name)_sigma1")
                XCTAssertLessThanOrEqual(zip(sx.mu, mu).map { abs($0 - $1) }.max()!, 1e-12, "\(name) mu1")
                XCTAssertLessThanOrEqual(zip(sx.sigma, sigma).map { abs($0 - $1) }.max()!, 1e-12, "\(name) sigma1")
            } else {
                (x, y) = split(try Fixtures.safetensors("eval/dinov2_io.safetensors").floatTensor("features"), n1, n2)
            }
            XCTAssertEqual([x.shape[0], y.shape[0], x.shape[1]], [n1, n2, dim], name)
            let fd = try FID.distance(GaussianStats(features: x), GaussianStats(features: y))
            // Well-conditioned (N > dim): 1e-9; singular covariances (N <= dim): 1e-6, the fixture README's bounds.
            let tol = n1 > dim && n2 > dim ? 1e-9 : 1e-6
            XCTAssertLessThanOrEqual(abs(fd - want) / want, tol, "\(name): FD \(fd) vs official \(want)")
        }
    }

    func testCMMDMatchesTheOfficialCode() throws {
        let expected = try XCTUnwrap(try Fixtures.json("eval/clip_cmmd_expected.json")["cases"] as? [String: [String: Any]])
        let f = try Fixtures.safetensors("eval/clip_cmmd.safetensors")
        XCTAssertFalse(expected.isEmpty)
        for (name, c) in expected.sorted(by: { $0.key < $1.key }) {
            let n1 = try XCTUnwrap(c["n1"] as? Int), n2 = try XCTUnwrap(c["n2"] as? Int)
            let (x, y) =
                f.contains("\(name)_x")
                ? (try f.floatTensor("\(name)_x"), try f.floatTensor("\(name)_y"))
                : split(try Fixtures.safetensors("eval/clip_io.safetensors").floatTensor("features"), n1, n2)
            XCTAssertEqual([x.shape[0], y.shape[0]], [n1, n2], name)
            let r = try CMMD.compute(x, y)
            let f64 = try XCTUnwrap(c["cmmd_official_float64"] as? Double), f32 = try XCTUnwrap(c["cmmd_official_float32"] as? Double)
            XCTAssertLessThanOrEqual(abs(r.value - f64) / abs(f64), 1e-9, "\(name): CMMD \(r.value) vs official float64 \(f64)")
            XCTAssertLessThanOrEqual(abs(r.value - f32), 2e-3, "\(name): CMMD \(r.value) vs official float32 \(f32)")
            for k in ["k_xx", "k_yy", "k_xy"] {
                let want = try XCTUnwrap(c[k] as? Double)
                let got = k == "k_xx" ? r.kxx : k == "k_yy" ? r.kyy : r.kxy
                XCTAssertLessThanOrEqual(abs(got - want), 1e-12, "\(name) \(k)")
            }
        }
    }

    func testCMMDOfASetWithItselfIsZeroAndInputsAreChecked() throws {
        let x = Tensor(shape: [3, 2], data: [1, 0, 0, 1, 0.6, 0.8])
        XCTAssertEqual(try CMMD.compute(x, x).value, 0, accuracy: 1e-12)
        XCTAssertThrowsError(try CMMD.compute(x, Tensor(shape: [2, 3], data: [1, 0, 0, 0, 1, 0]))) {
            XCTAssertTrue("\($0)".contains("widths differ"))
        }
        XCTAssertThrowsError(try CMMD.compute(x, Tensor(shape: [1, 2], data: [.nan, 0]))) { XCTAssertTrue("\($0)".contains("NaN")) }
        XCTAssertThrowsError(try CMMD.compute(x, Tensor(shape: [0, 2], data: [])))
    }
}

extension SafetensorsFile {
    /// A float64 tensor's values as Double (float32 would round them).
    func floatTensor64(_ key: String) throws -> [Double] {
        let info = try requireInfo(key)
        XCTAssertEqual(info.dtype, .f64, key)
        let raw = try rawBytes(key)
        return raw.withUnsafeBytes { p in (0..<info.count).map { p.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self) } }
    }
}
