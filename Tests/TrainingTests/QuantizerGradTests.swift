import Autoencoders
import Foundation
import Tensor
import Training
import XCTest

/// The training quantiser's backward (codebook, φ convs, commitment, straight-through) against finite differences
/// of a Double re-implementation with the chosen tokens held fixed (argmin is piecewise constant).
final class QuantizerGradTests: XCTestCase {
    func testQuantizerBackwardMatchesFiniteDifferences() throws {
        let (b, c, v) = (2, 3, 5)
        let pns = [1, 2, 3, 5]
        let q = try MultiScaleQuantizer(vocabSize: v, channels: c, patchNums: pns, phiCount: 2, beta: 0.25, seed: 3)
        // A codebook on the latents' scale so several codes are used.
        q.codebook.value = GradCheck.random([v, c], seed: 4)
        let f = GradCheck.random([b, c, 5, 5], seed: 5)
        let (fHat, loss, saved) = q.trainingForward(f)
        XCTAssertEqual(fHat.shape, f.shape)
        XCTAssertGreaterThan(Set(saved.tokens.flatMap { $0 }).count, 1, "more than one code in use")
        let g = GradCheck.random(f.shape, seed: 6)
        for p in q.parameters { p.zeroGrad() }
        let df = q.backward(dFHat: g, saved: saved)
        let tokens = saved.tokens, sn = Double(pns.count), r = 0.5, beta = 0.25
        let fd = f.data.map(Double.init), gd = g.data.map(Double.init)

        // F_s for all scales in Double, from (E, W_0, b_0, W_1, b_1).
        func partialSums(_ e: [Double], _ w: [[Double]], _ bias: [[Double]]) -> [[Double]] {
            var acc = [Double](repeating: 0, count: f.count)
            var out: [[Double]] = []
            for (si, pn) in pns.enumerated() {
                var u = [Double](repeating: 0, count: b * c * pn * pn)
                for bi in 0..<b {
                    for p in 0..<(pn * pn) {
                        for ch in 0..<c {
                            u[(bi * c + ch) * pn * pn + p] = e[tokens[si][bi * pn * pn + p] * c + ch]
                        }
                    }
                }
                if pn != 5 { u = Ref.interpolate(u, planes: b * c, h: pn, w: pn, oh: 5, ow: 5, mode: .bicubic) }
                let k = q.phiIndexPerScale[si]
                let conv = Ref.conv(u, [b, c, 5, 5], w[k], [c, c, 3, 3], bias[k], stride: 1, pads: (1, 1, 1, 1))
                for i in 0..<acc.count { acc[i] += (1 - r) * u[i] + r * conv[i] }
                out.append(acc)
            }
            return out
        }
        func mse(_ a: [Double], _ x: [Double]) -> Double { zip(a, x).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Double(a.count) }
        let e0 = q.embedding.data.map(Double.init)
        let w0 = q.phis.map { $0.weight.value.data.map(Double.init) }, b0 = q.phis.map { $0.bias.value.data.map(Double.init) }
        let sums0 = partialSums(e0, w0, b0)
        XCTAssertEqual(loss, sums0.reduce(0.0) { $0 + (1 + beta) * mse($1, fd) } / sn, accuracy: 1e-5)
        XCTAssertLessThan(GradCheck.relErr(fHat.data, sums0.last!), 1e-5, "forward value is F")

        // Codebook path: L(E, W, b) = (1/SN) Σ_s mse(F_s, sg(f)).
        func codebookLoss(_ e: [Double], _ w: [[Double]], _ bias: [[Double]]) -> Double {
            partialSums(e, w, bias).reduce(0.0) { $0 + mse($1, fd) } / sn
        }
        GradCheck.checkScalar("quantiser dE", q.codebook.value, analytic: q.codebook.grad) { codebookLoss($0, w0, b0) }
        for k in 0..<2 {
            GradCheck.checkScalar("quantiser dW\(k)", q.phis[k].weight.value, analytic: q.phis[k].weight.grad) { wk in
                var w = w0; w[k] = wk; return codebookLoss(e0, w, b0)
            }
            GradCheck.checkScalar("quantiser db\(k)", q.phis[k].bias.value, analytic: q.phis[k].bias.grad) { bk in
                var bb = b0; bb[k] = bk; return codebookLoss(e0, w0, bb)
            }
        }
        // Encoder path: L(f) = (1/SN) Σ_s β mse(sg(F_s), f) + Σ G ⊙ f (straight-through).
        GradCheck.checkScalar("quantiser df", f, analytic: df) { fv in
            sums0.reduce(0.0) { $0 + beta * mse($1, fv) } / sn + zip(gd, fv).reduce(0.0) { $0 + $1.0 * $1.1 }
        }
    }

    /// Training drives L_vq down on a fixed latent when only the codebook and φ learn.
    func testQuantizerLearnsToReconstruct() throws {
        let q = try MultiScaleQuantizer(vocabSize: 16, channels: 4, patchNums: [1, 2, 4], phiCount: 1, seed: 1)
        let f = GradCheck.random([2, 4, 4, 4], seed: 9)
        let opt = AdamW(q.parameters, weightDecay: 0)
        var first = 0.0, last = 0.0
        for step in 0..<150 {
            for p in q.parameters { p.zeroGrad() }
            let (_, loss, saved) = q.trainingForward(f)
            if step == 0 { first = loss }
            last = loss
            _ = q.backward(dFHat: Tensor(zeros: f.shape), saved: saved)
            opt.update(lr: 0.02)
        }
        XCTAssertLessThan(last, 0.5 * first, "vq loss \(first) -> \(last)")
    }
}
