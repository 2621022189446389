import Foundation
import Layers
import Tensor
import Training
import XCTest

final class OptimTests: XCTestCase {
    /// AdamW on a convex quadratic f(w) = ½ Σ aᵢ (wᵢ - cᵢ)² without decay reaches the minimum.
    func testAdamWConvergesOnQuadratic() {
        let a: [Float] = [1, 4, 0.5, 2, 8], c: [Float] = [1, -2, 0.5, 3, -1]
        let p = Parameter("w", Tensor(zeros: [5]), decay: false)
        let opt = AdamW([p], weightDecay: 0.1)
        let sched = LRSchedule(peak: 0.05, warmupSteps: 20, totalSteps: 2000, decay: .cosine)
        for step in 0..<2000 {
            p.grad = Tensor(shape: [5], data: (0..<5).map { a[$0] * (p.value.data[$0] - c[$0]) })
            opt.update(lr: sched.lr(step))
        }
        for i in 0..<5 { XCTAssertEqual(p.value.data[i], c[i], accuracy: 1e-3, "w[\(i)]") }
    }

    /// Decoupled decay: with a zero gradient only the decay group shrinks, by exactly (1 - lr·wd) per step.
    func testDecoupledWeightDecayGroups() {
        let dec = Parameter("conv.weight", Tensor(repeating: 2, shape: [3]), decay: true)
        let nod = Parameter("conv.bias", Tensor(repeating: 2, shape: [3]), decay: false)
        let opt = AdamW([dec, nod], weightDecay: 0.5)
        for _ in 0..<3 { opt.update(lr: 0.1) }
        XCTAssertEqual(dec.value.data[0], 2 * powf(0.95, 3), accuracy: 1e-6)
        XCTAssertEqual(nod.value.data[0], 2)
    }

    /// One step against the PyTorch formula written out in Double.
    func testAdamWStepMatchesFormula() {
        let p = Parameter("w", Tensor(shape: [2], data: [1, -1]), decay: true)
        let opt = AdamW([p], beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.05)
        var w = [1.0, -1.0], m = [0.0, 0.0], v = [0.0, 0.0]
        let grads: [[Float]] = [[0.5, -2], [0.25, 1], [-1, 0.5]]
        for (t, g) in grads.enumerated() {
            p.grad = Tensor(shape: [2], data: g)
            opt.update(lr: 0.01)
            for i in 0..<2 {
                w[i] *= 1 - 0.01 * 0.05
                m[i] = 0.9 * m[i] + 0.1 * Double(g[i]); v[i] = 0.95 * v[i] + 0.05 * Double(g[i]) * Double(g[i])
                let mh = m[i] / (1 - pow(0.9, Double(t + 1))), vh = v[i] / (1 - pow(0.95, Double(t + 1)))
                w[i] -= 0.01 * mh / (vh.squareRoot() + 1e-8)
            }
        }
        for i in 0..<2 { XCTAssertEqual(Double(p.value.data[i]), w[i], accuracy: 1e-6) }
    }

    func testClipGradNorm() {
        let p1 = Parameter("a", Tensor(zeros: [2]), decay: true), p2 = Parameter("b", Tensor(zeros: [1]), decay: false)
        p1.grad = Tensor(shape: [2], data: [3, 0]); p2.grad = Tensor(shape: [1], data: [4])
        let n = clipGradNorm([p1, p2], maxNorm: 1)
        XCTAssertEqual(n, 5, accuracy: 1e-9)
        let after = (p1.grad.data + p2.grad.data).reduce(0.0) { $0 + Double($1 * $1) }.squareRoot()
        XCTAssertEqual(after, 1, accuracy: 1e-5)
        XCTAssertEqual(Double(p1.grad.data[0] / p2.grad.data[0]), 0.75, accuracy: 1e-6, "direction kept")
        // Below the threshold nothing changes.
        XCTAssertEqual(clipGradNorm([p1, p2], maxNorm: 10), 1, accuracy: 1e-5)
        XCTAssertEqual(p2.grad.data[0], 0.8, accuracy: 1e-5)
        p2.grad = Tensor(shape: [1], data: [.nan])
        XCTAssertTrue(clipGradNorm([p1, p2], maxNorm: 1).isNaN)
    }

    func testScheduleWarmupAndDecay() {
        let s = LRSchedule(peak: 1, warmupSteps: 10, totalSteps: 110, decay: .cosine, warmupStart: 0, finalRatio: 0.1)
        XCTAssertEqual(s.lr(0), 0)
        XCTAssertEqual(s.lr(5), 0.5, accuracy: 1e-6)
        XCTAssertEqual(s.lr(10), 1, accuracy: 1e-6)
        XCTAssertEqual(s.lr(60), 0.55, accuracy: 1e-6)  // half way: 0.1 + 0.9 * 0.5
        XCTAssertEqual(s.lr(110), 0.1, accuracy: 1e-6)
        XCTAssertEqual(s.lr(500), 0.1, accuracy: 1e-6)
        let l = LRSchedule(peak: 2, warmupSteps: 0, totalSteps: 100, decay: .linear, finalRatio: 0)
        XCTAssertEqual(l.lr(50), 1, accuracy: 1e-6)
        for i in 11..<110 { XCTAssertLessThanOrEqual(s.lr(i + 1), s.lr(i)) }
    }
}

/// The gradient checker itself must be able to fail: a 1% wrong gradient and a transposed one are rejected.
final class GradCheckSelfTests: XCTestCase {
    func testCheckerRejectsWrongGradients() {
        let x = GradCheck.random([3, 5], seed: 1), w = GradCheck.random([4, 5], seed: 2)
        let g = GradCheck.random([3, 4], seed: 3)
        let (dx, _, _) = LinearGrad.linearBackward(x: x, weight: w, dy: g)
        let wd = w.data.map(Double.init), gd = g.data.map(Double.init)
        let num = GradCheck.numeric(x.data.map(Double.init)) { xv in
            let y = Ref.matmul(xv, [3, 5], wd, [4, 5], ta: false, tb: true)
            return zip(y, gd).reduce(0.0) { $0 + $1.0 * $1.1 }
        }
        XCTAssertLessThan(GradCheck.relErr(dx.data, num), GradCheck.tolerance)
        XCTAssertGreaterThan(GradCheck.relErr(dx.data.map { $0 * 1.01 }, num), GradCheck.tolerance)
        XCTAssertGreaterThan(GradCheck.relErr(dx.data.reversed(), num), GradCheck.tolerance)
    }
}
