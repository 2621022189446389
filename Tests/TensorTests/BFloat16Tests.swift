import Foundation
import Tensor
import XCTest

/// The opt-in bf16 product (`--bf16`): exact bf16 rounding of both operands, float32 sums within the float32 error
/// bound, and a result that never depends on the batch, the tiling or the thread count. Skipped on CPUs without
/// AVX512-BF16 (the flag falls back to float32 there, checked by the last test).
final class BFloat16Tests: XCTestCase {
    var rng = PhiloxRandom(seed: 7, stream: 11)

    func rand(_ shape: [Int], scale: Float = 1) -> Tensor {
        Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.normal() * scale })
    }

    override func tearDown() { Parallel.threads = ProcessInfo.processInfo.activeProcessorCount }

    /// Round to nearest even at 8 mantissa bits, the IEEE way (NaN kept), written independently of the C kernel.
    static func bf16(_ f: Float) -> Double {
        if f.isNaN { return .nan }
        let bits = f.bitPattern
        let lower = bits & 0xffff, upper = bits & 0xffff_0000
        var rounded = upper
        if lower > 0x8000 || (lower == 0x8000 && (upper >> 16) & 1 == 1) { rounded &+= 0x1_0000 }
        return Double(Float(bitPattern: rounded))
    }

    func requireKernel() throws {
        try XCTSkipUnless(MatmulPrecision.bfloat16Available, "this CPU has no AVX512-BF16")
    }

    func testProductMatchesFloat64OfRoundedOperands() throws {
        try requireKernel()
        // Odd sizes on every side of the 12-row tile, the 32-column panel, the 16-lane half-panel and odd k.
        for (m, n, k) in [(1, 1, 1), (5, 17, 7), (13, 33, 64), (25, 70, 129), (12, 32, 2), (40, 100, 513)] {
            let x = rand([m, k]), w = rand([n, k], scale: 0.5), bias = rand([n])
            for withBias in [false, true] {
                let y = Linear(weight: w, bias: withBias ? bias : nil, bf16: BFloat16Weights(w))(x)
                XCTAssertEqual(y.shape, [m, n])
                for i in 0..<m {
                    for j in 0..<n {
                        var sum = 0.0, magnitude = 0.0
                        for t in 0..<k {
                            let p = Self.bf16(x.data[i * k + t]) * Self.bf16(w.data[j * k + t])
                            sum += p
                            magnitude += abs(p)
                        }
                        let b = withBias ? Double(bias.data[j]) : 0
                        // k float32 roundings of running sums, plus the bias addition.
                        let bound = Double(k + 1) * 0x1p-24 * (magnitude + abs(b)) + 1e-30
                        let err = abs(Double(y.data[i * n + j]) - (sum + b))
                        XCTAssertLessThanOrEqual(err, bound, "m \(m) n \(n) k \(k) bias \(withBias) at (\(i), \(j))")
                    }
                }
            }
        }
    }

    func testRoundingIsToNearestEven() throws {
        try requireKernel()
        // Values whose float32 bits end exactly halfway between two bf16 numbers, and just around them.
        let values: [Float] = [
            Float(bitPattern: 0x3f80_8000), Float(bitPattern: 0x3f81_8000), Float(bitPattern: 0x3f80_8001),
            Float(bitPattern: 0x3f80_7fff), -Float(bitPattern: 0x3f81_8000), 1e-30, 3.0e38, 0,
        ]
        let w = Tensor(shape: [1, 1], data: [1])
        let lin = Linear(weight: w, bias: nil, bf16: BFloat16Weights(w))
        let y = lin(Tensor(shape: [values.count, 1], data: values))
        for (v, out) in zip(values, y.data) {
            // Subnormal products flush to zero in VDPBF16PS; none here (1e-30 is normal).
            XCTAssertEqual(Double(out), Self.bf16(v), "bf16(\(v))")
        }
    }

    func testRowsDoNotDependOnTheBatchOrThreads() throws {
        try requireKernel()
        for (tokens, inF, outF) in [(1, 1024, 3072), (9, 96, 96), (36, 256, 1000), (169, 512, 2048)] {
            let w = rand([outF, inF], scale: 0.05)
            let lin = Linear(weight: w, bias: rand([outF]), bf16: BFloat16Weights(w))
            let batch = 5
            let x = rand([batch, tokens, inF])
            Parallel.threads = 1
            let one = lin(x)
            Parallel.threads = 3
            let three = lin(x)
            XCTAssertEqual(one.data, three.data, "threads 1 vs 3, \(tokens) x \(inF) -> \(outF)")
            let per = tokens * inF, perOut = tokens * outF
            for s in [0, 3] {
                let alone = lin(Tensor(shape: [1, tokens, inF], data: Array(x.data[(s * per)..<((s + 1) * per)])))
                XCTAssertEqual(
                    alone.data, Array(three.data[(s * perOut)..<((s + 1) * perOut)]), "sample \(s) alone vs in a batch of \(batch)")
            }
        }
    }

    func testRequestFallsBackWithAReasonWithoutTheKernel() {
        let (precision, note) = MatmulPrecision.resolve(bf16: true)
        if MatmulPrecision.bfloat16Available {
            XCTAssertEqual(precision, .bfloat16)
            XCTAssertNil(note)
        } else {
            XCTAssertEqual(precision, .float32)
            XCTAssertTrue(note?.contains("AVX512-BF16") == true, note ?? "no note")
        }
        XCTAssertEqual(MatmulPrecision.resolve(bf16: false).precision, .float32)
    }
}
