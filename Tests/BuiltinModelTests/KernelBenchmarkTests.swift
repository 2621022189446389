import Benchmarks
import Foundation
import TestSupport
import XCTest

/// `varlab bench kernels`: statistics, the regression rule, and baselines (written, read, refused across CPUs).
/// No timing is asserted: a slow or busy machine changes the numbers, not the outcome of these checks.
final class KernelBenchmarkTests: XCTestCase {
    func testStatisticsAndRegressionRule() {
        let s = KernelBenchmark.Stats([5, 1, 3, 2, 4])
        XCTAssertEqual([s.median, s.mad, s.min], [3, 1, 1])
        XCTAssertEqual(KernelBenchmark.Stats([1, 2, 3, 10]).median, 2.5)
        let base = KernelBenchmark.Stats([1.0, 1.0, 1.01])
        XCTAssertFalse(
            KernelBenchmark.isRegression(KernelBenchmark.Stats([1.05, 1.05, 1.06]), against: base, tolerance: 0.1), "within 10%")
        XCTAssertTrue(KernelBenchmark.isRegression(KernelBenchmark.Stats([1.3, 1.3, 1.31]), against: base, tolerance: 0.1))
        XCTAssertFalse(
            KernelBenchmark.isRegression(KernelBenchmark.Stats([1.3, 0.5, 2.1]), against: base, tolerance: 0.1),
            "slower, but within the noise")
        XCTAssertTrue(
            KernelBenchmark.isRegression(KernelBenchmark.Stats([1.3, 1.3, 2.5, 2.6, 3.9]), against: base, tolerance: 0.1),
            "a spread wider than the gap, but even the fastest run is 30% slower")
    }

    func testBaselineRoundTripAndRefusals() throws {
        _ = try VarlabCLI.binary()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kernels-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("base.json").path
        let saved = try VarlabCLI.run(["bench", "kernels", "--only", "layernorm", "--repeats", "3", "--save-baseline", path])
        XCTAssertEqual(saved.status, 0, saved.err)
        var base = try JSONDecoder().decode(KernelBenchmark.Baseline.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(Array(base.kernels.keys), ["layernorm 512x1024"])
        XCTAssertEqual(base.kernels.values.first?.runs, 3)
        let same = try VarlabCLI.run([
            "bench", "kernels", "--only", "layernorm", "--repeats", "3", "--baseline", path, "--tolerance", "100",
        ])
        XCTAssertEqual(same.status, 0, same.err)
        XCTAssertNotNil(same.out.range(of: #"\d\.\d\dx"#, options: .regularExpression), "a ratio against the baseline: \(same.out)")
        // A baseline a thousand times faster with no spread: this run is a regression, exit 1, named.
        base.kernels["layernorm 512x1024"] = KernelBenchmark.Stats([1e-9, 1e-9, 1e-9])
        try JSONEncoder().encode(base).write(to: URL(fileURLWithPath: path))
        // 9 runs; on a busy machine the MAD can exceed the gap, and the slow fastest run still makes it a regression.
        let slow = try VarlabCLI.run(["bench", "kernels", "--only", "layernorm", "--repeats", "9", "--baseline", path])
        XCTAssertEqual(slow.status, 1)
        XCTAssertTrue(slow.out.contains("REGRESSION") && slow.err.contains("layernorm 512x1024"), slow.out + slow.err)
        base.cpu = "another CPU"
        try JSONEncoder().encode(base).write(to: URL(fileURLWithPath: path))
        let other = try VarlabCLI.run(["bench", "kernels", "--baseline", path])
        XCTAssertEqual(other.status, 1)
        XCTAssertTrue(other.err.contains("another CPU"), other.err)
        let none = try VarlabCLI.run(["bench", "kernels", "--only", "nothing-like-this"])
        XCTAssertTrue(none.status != 0 && none.err.contains("--only"), none.err)
    }
}
