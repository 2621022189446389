import Foundation
import Tensor
import XCTest

/// A sample's result must not depend on the other samples it shares a product with (issue: OpenBLAS sums a row in
/// another order depending on the row count and the row's place in the call). Checked under every OpenBLAS kernel
/// this CPU can run, for the shapes the models use: one row per sample (conditioning MLPs), a few tokens (VAR's
/// first scales), many tokens, and widths on both sides of the tiling thresholds.
final class BatchInvarianceTests: XCTestCase {
    var rng = PhiloxRandom(seed: 99, stream: 3)

    func rand(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.normal() })
    }

    /// (tokens per sample, in, out): 0 tokens means a rank-2 input [B, in].
    static let shapes: [(Int, Int, Int)] = [
        (0, 64, 32), (0, 1152, 6912), (0, 256, 1024), (1, 1024, 3072), (4, 64, 256), (9, 96, 96), (17, 128, 512),
        (36, 256, 1024), (100, 200, 72), (256, 64, 64), (256, 1024, 256), (169, 512, 2048),
    ]

    override func tearDown() {
        // Back to the kernel varlab picks for this CPU, whatever a test selected.
        if let best = CPUInfo.current.bestOpenBLASCore { BLAS.selectKernel(best) }
        Parallel.threads = ProcessInfo.processInfo.activeProcessorCount
    }

    func testLinearRowsDoNotDependOnTheBatch() throws {
        let kernels = CPUInfo.current.runnableOpenBLASCores
        XCTAssertFalse(kernels.isEmpty)
        var checked = 0
        for kernel in kernels {
            guard BLAS.selectKernel(kernel) else { continue }
            checked += 1
            for (tokens, inF, outF) in Self.shapes {
                let lin = Linear(weight: rand([outF, inF]), bias: rand([outF]))
                let batch = 8
                let x = tokens == 0 ? rand([batch, inF]) : rand([batch, tokens, inF])
                let per = x.count / batch
                let whole = lin(x)
                let outPer = whole.count / batch
                for (threads, size) in [(1, 1), (2, 3), (2, 4), (1, 7)] {
                    Parallel.threads = threads
                    for start in stride(from: 0, to: batch, by: size) {
                        let n = min(size, batch - start)
                        let part = Tensor(
                            shape: [n] + Array(x.shape.dropFirst()),
                            data: Array(x.data[(start * per)..<((start + n) * per)]))
                        let y = lin(part)
                        let want = whole.data[(start * outPer)..<((start + n) * outPer)]
                        XCTAssertTrue(
                            zip(y.data, want).allSatisfy { $0.bitPattern == $1.bitPattern },
                            "\(kernel): [\(tokens) x \(inF) -> \(outF)] samples \(start)..<\(start + n) of \(batch) differ from the whole batch"
                        )
                    }
                }
                Parallel.threads = 2
            }
        }
        XCTAssertGreaterThan(checked, 0, "no OpenBLAS kernel could be selected")
    }

    /// The same without the grouping: proof that the check above can fail on this CPU (else it would be vacuous).
    func testUngroupedSgemmDoesDependOnTheBatch() throws {
        let (m1, n, k, batch) = (9, 96, 96, 7)
        let a = rand([batch * m1, k]), w = rand([n, k])
        func product(_ rows: Int, offset: Int) -> [Float] {
            var out = [Float](repeating: 0, count: rows * n)
            a.data.withUnsafeBufferPointer { pa in
                w.data.withUnsafeBufferPointer { pw in
                    out.withUnsafeMutableBufferPointer { po in
                        BLAS.sgemm(
                            transB: true, m: rows, n: n, k: k, a: pa.baseAddress! + offset * k, lda: k, b: pw.baseAddress!, ldb: k,
                            c: po.baseAddress!, ldc: n)
                    }
                }
            }
            return out
        }
        let whole = product(batch * m1, offset: 0)
        var differs = false
        for s in 0..<batch where product(m1, offset: s * m1) != Array(whole[(s * m1 * n)..<((s + 1) * m1 * n)]) { differs = true }
        if !differs { throw XCTSkip("this OpenBLAS kernel happens to sum rows alike in any call (\(BLAS.corename()))") }
    }
}
