import Foundation
import Samplers
import Tensor
import XCTest

/// Top-k / top-p masks against hand-computed cases (official sample_with_top_k_top_p_ semantics).
final class TokenSamplingTests: XCTestCase {
    func masked(_ row: [Float], k: Int, p: Double) -> [Bool] {
        var r = row
        r.withUnsafeMutableBufferPointer { TokenSampling.mask($0.baseAddress!, count: $0.count, topK: k, topP: p) }
        return r.map { $0 != -.infinity }
    }

    func testTopKKeepsTies() {
        // 3rd largest is 2; both 2s survive.
        XCTAssertEqual(masked([1, 3, 2, 5, 2, 0], k: 3, p: 0), [false, true, true, true, true, false])
        XCTAssertEqual(masked([1, 3, 2], k: 0, p: 0), [true, true, true])
        XCTAssertEqual(masked([1, 3, 2], k: 10, p: 0), [true, true, true])
        XCTAssertEqual(masked([4, 4, 1], k: 1, p: 0), [true, true, false])
    }

    /// The selection gives the full sort's k-th largest for every k, on random rows, rows of heavy ties (a few
    /// distinct values), sorted and reversed rows, and rows with infinities; a row with NaN takes the sort.
    func testKthLargestIsTheSortedValue() {
        var rng = PhiloxRandom(seed: 11, stream: 0)
        var rows: [[Float]] = []
        for n in [1, 2, 3, 7, 64, 513] {
            rows.append((0..<n).map { _ in rng.normal() })
            rows.append((0..<n).map { _ in Float(rng.nextUInt32() % 3) })
            rows.append((0..<n).map { Float($0) })
            rows.append((0..<n).map { Float(-$0) })
            rows.append((0..<n).map { i in i % 5 == 0 ? (i % 2 == 0 ? Float.infinity : -.infinity) : rng.normal() })
        }
        for row in rows {
            let sorted = row.sorted()
            for k in 1...row.count {
                let got = row.withUnsafeBufferPointer { TokenSampling.kthLargest($0.baseAddress!, count: row.count, k: k) }
                XCTAssertEqual(got, sorted[row.count - k], "k \(k) of \(row.count)")
            }
        }
        let withNaN: [Float] = [3, .nan, 1, 2]
        XCTAssertFalse(withNaN.withUnsafeBufferPointer { TokenSampling.kthLargest($0.baseAddress!, count: 4, k: 2) }.isNaN)
    }

    func testTopP() {
        // probabilities of log([0.5, 0.3, 0.15, 0.05]): ascending cumsum 0.05, 0.20, 0.50, 1.0.
        let row: [Float] = [0.5, 0.3, 0.15, 0.05].map { logf($0) }
        // top_p 0.8: remove cumsum <= 0.2 -> 0.05 and 0.15 removed.
        XCTAssertEqual(masked(row, k: 0, p: 0.8), [true, true, false, false])
        // top_p 0.9: remove cumsum <= 0.1 -> only 0.05.
        XCTAssertEqual(masked(row, k: 0, p: 0.9), [true, true, true, false])
        // tiny top_p: everything but the largest removed.
        XCTAssertEqual(masked(row, k: 0, p: 1e-6), [true, false, false, false])
        // top_p 1: nothing with positive probability removed.
        XCTAssertEqual(masked(row, k: 0, p: 1), [true, true, true, true])
    }

    func testTopPAfterTopK() {
        // top-k 3 removes 0.05; renormalised over the rest: 0.5/0.95, 0.3/0.95, 0.15/0.95 -> cumsum asc 0.158, 0.474, 1.
        let row: [Float] = [0.5, 0.3, 0.15, 0.05].map { logf($0) }
        XCTAssertEqual(masked(row, k: 3, p: 0.8), [true, true, false, false])  // remove <= 0.2: the 0.158
        XCTAssertEqual(masked(row, k: 3, p: 0.85), [true, true, true, false])  // remove <= 0.15: none of the kept
    }

    func testGreedyDrawIsArgmax() {
        var rng = PhiloxRandom(seed: 1, stream: 0)
        var row: [Float] = [0.1, 2, -1, 1.9]
        row.withUnsafeMutableBufferPointer { TokenSampling.mask($0.baseAddress!, count: 4, topK: 1, topP: 0) }
        for _ in 0..<20 { XCTAssertEqual(row.withUnsafeBufferPointer { TokenSampling.draw($0.baseAddress!, count: 4, rng: &rng) }, 1) }
    }

    func testDrawFrequencies() {
        var rng = PhiloxRandom(seed: 3, stream: 5)
        let row: [Float] = [0.7, 0.2, 0.1].map { logf($0) }
        var counts = [0, 0, 0]
        for _ in 0..<20000 { counts[row.withUnsafeBufferPointer { TokenSampling.draw($0.baseAddress!, count: 3, rng: &rng) }] += 1 }
        XCTAssertEqual(Double(counts[0]) / 20000, 0.7, accuracy: 0.02)
        XCTAssertEqual(Double(counts[2]) / 20000, 0.1, accuracy: 0.01)
    }

    func testGuidanceRamp() {
        XCTAssertEqual(TokenSampling.guidanceWeight(cfg: 1.5, scale: 0, scales: 10), 0)
        XCTAssertEqual(TokenSampling.guidanceWeight(cfg: 1.5, scale: 9, scales: 10), 1.5)
        XCTAssertEqual(TokenSampling.guidanceWeight(cfg: 1.5, scale: 3, scales: 10), 1.5 * (3.0 / 9.0))
        // The constant schedule guides every step, the first included; linear is the default.
        for si in [0, 3, 9] { XCTAssertEqual(TokenSampling.guidanceWeight(cfg: 1.5, scale: si, scales: 10, schedule: .constant), 1.5) }
        XCTAssertEqual(TokenSamplingOptions().guidanceSchedule, .linear)
    }

    func testOptionValidation() {
        XCTAssertThrowsError(try TokenSamplingOptions(topK: -1).validate())
        XCTAssertThrowsError(try TokenSamplingOptions(topP: 1.5).validate())
        XCTAssertThrowsError(try TokenSamplingOptions(topP: -0.1).validate())
        XCTAssertNoThrow(try TokenSamplingOptions().validate())
    }
}
