import Foundation
import Tensor
import XCTest

/// `--profile`'s accounting: exclusive times (a conv's im2col and sgemm are charged to them, not twice), one call
/// per op, nothing recorded unless started, and the parts never add up to more than the wall time.
final class ProfilerTests: XCTestCase {
    func testNestedOpsAreChargedOnce() throws {
        var rng = PhiloxRandom(seed: 5)
        let x = Tensor.randn([2, 8, 32, 32], rng: &rng), w = Tensor.randn([16, 8, 3, 3], rng: &rng)
        let conv = Conv2d(weight: w, bias: nil, padding: 1)
        Profiler.start()
        _ = Profiler.stop()
        _ = conv(x)
        XCTAssertTrue(Profiler.stop().isEmpty, "nothing recorded while stopped")
        Conv2d.algorithm = .im2col
        Profiler.start()
        _ = conv(x)
        let direct = Dictionary(uniqueKeysWithValues: Profiler.stop().map { ($0.kind, $0.calls) })
        Conv2d.algorithm = .automatic
        XCTAssertEqual(direct[.conv], 1)
        XCTAssertEqual(direct[.im2col], 2, "one im2col per image")
        XCTAssertEqual(direct[.matmul], 2, "one product per image")
        Profiler.start()
        let t0 = Date()
        _ = conv(x).silu()
        let wall = Date().timeIntervalSince(t0)
        let rows = Profiler.stop()
        let calls = Dictionary(uniqueKeysWithValues: rows.map { ($0.kind, $0.calls) })
        XCTAssertEqual(calls[.conv], 1)
        XCTAssertNil(calls[.im2col], "Winograd writes no column matrix")
        XCTAssertEqual(calls[.winograd], 4, "an input and an output transform per image (one chunk each)")
        XCTAssertEqual(calls[.matmul], 2, "one set of 36 products per image")
        XCTAssertEqual(calls[.elementwise], 1)
        XCTAssertLessThanOrEqual(rows.map(\.seconds).reduce(0, +), wall + 1e-6)
        XCTAssertTrue(rows.allSatisfy { $0.seconds >= 0 })
        XCTAssertFalse(Profiler.enabled)
        XCTAssertTrue(Profiler.table(rows, wall: wall).contains("other"))
    }

    /// `bench all` divides the GEMM FLOPs the profiler counts by the wall time: the count must be exactly 2 m n k per
    /// product, including the products convolutions and attention run on worker threads.
    func testGEMMFLOPsAreCountedExactly() throws {
        var rng = PhiloxRandom(seed: 6)
        let a = Tensor.randn([37, 64], rng: &rng), b = Tensor.randn([64, 50], rng: &rng)
        let x = Tensor.randn([3, 8, 20, 20], rng: &rng), w = Tensor.randn([16, 8, 3, 3], rng: &rng)
        let conv = Conv2d(weight: w, bias: nil, stride: 1, padding: 1)
        Profiler.start()
        _ = Profiler.stop()
        _ = a.matmul(b)
        XCTAssertEqual(Profiler.countedGEMMFLOPs, 0, "nothing counted while stopped")
        Profiler.start()
        _ = a.matmul(b)
        Conv2d.algorithm = .im2col
        _ = conv(x)
        Conv2d.algorithm = .automatic
        _ = Profiler.stop()
        let matmulFLOPs: Double = 2 * 37 * 64 * 50
        let convFLOPs: Double = 3 * 2 * 16 * (8 * 3 * 3) * (20 * 20)  // per image: Cout x (Cin k k) x output pixels
        XCTAssertEqual(Profiler.countedGEMMFLOPs, matmulFLOPs + convFLOPs)
        // Winograd F(4x4, 3x3): per image 36 products of Cout x Cin against Cin x tiles (5 x 5 tiles of 4 x 4).
        Profiler.start()
        _ = conv(x)
        _ = Profiler.stop()
        XCTAssertEqual(Profiler.countedGEMMFLOPs, 3 * 36 * 2 * 16 * 8 * 25)
        XCTAssertEqual(Profiler.countedDirectFLOPs, convFLOPs, "counted as the direct convolution it replaced")
    }
}
