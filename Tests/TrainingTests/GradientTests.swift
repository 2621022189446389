import Foundation
import Layers
import Tensor
import Training
import XCTest

/// Every backward function against central finite differences of a Double forward (see GradCheck).
/// Small odd sizes so that no dimension coincides with another and every index mapping is exercised.
final class GradientTests: XCTestCase {
    typealias R = GradCheck
    func d(_ t: Tensor) -> [Double] { t.data.map(Double.init) }

    func testMatmulAllTransposesBatchedAndShared() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            for shared in [false, true] {
                let (m, k, n) = (3, 5, 7)
                let a = R.random([2, ta ? k : m, ta ? m : k], seed: 1)
                let b = R.random(shared ? [tb ? n : k, tb ? k : n] : [2, tb ? n : k, tb ? k : n], seed: 2)
                let y = a.matmul(b, transposeSelf: ta, transposeOther: tb)
                let g = R.random(y.shape, seed: 3)
                let (dA, dB) = LinearGrad.matmulBackward(a, b, transposeA: ta, transposeB: tb, dC: g)
                let name = "matmul ta=\(ta) tb=\(tb) shared=\(shared)"
                R.check(name + " dA", a, analytic: dA, g: g) { Ref.matmul($0, a.shape, self.d(b), b.shape, ta: ta, tb: tb) }
                R.check(name + " dB", b, analytic: dB, g: g) { Ref.matmul(self.d(a), a.shape, $0, b.shape, ta: ta, tb: tb) }
            }
        }
    }

    func testLinear() {
        let x = R.random([3, 5, 7], seed: 4), w = R.random([9, 7], seed: 5, scale: 0.3), b = R.random([9], seed: 6)
        let y = Linear(weight: w, bias: b)(x)
        let g = R.random(y.shape, seed: 7)
        let (dx, dW, db) = LinearGrad.linearBackward(x: x, weight: w, dy: g)
        func ref(_ xv: [Double], _ wv: [Double], _ bv: [Double]) -> [Double] {
            let mm = Ref.matmul(xv, [15, 7], wv, [9, 7], ta: false, tb: true)
            return mm.enumerated().map { $0.element + bv[$0.offset % 9] }
        }
        R.check("linear dx", x, analytic: dx, g: g) { ref($0, self.d(w), self.d(b)) }
        R.check("linear dW", w, analytic: dW, g: g) { ref(self.d(x), $0, self.d(b)) }
        R.check("linear db", b, analytic: db, g: g) { ref(self.d(x), self.d(w), $0) }
    }

    func testEmbedding() {
        let table = R.random([7, 5], seed: 8)
        let ids = [3, 0, 6, 3, 3, 1]  // repeated ids must accumulate
        let y = Embedding(weight: table)(ids)
        let g = R.random(y.shape, seed: 9)
        let dT = LinearGrad.embeddingBackward(ids: ids, tableShape: table.shape, dy: g)
        R.check("embedding", table, analytic: dT, g: g) { t in ids.flatMap { id in (0..<5).map { t[id * 5 + $0] } } }
    }

    func checkConv(stride: Int, pads: (Int, Int, Int, Int), xShape: [Int], wShape: [Int], seed: UInt64) {
        let x = R.random(xShape, seed: seed), w = R.random(wShape, seed: seed + 1, scale: 0.3)
        let b = R.random([wShape[0]], seed: seed + 2)
        let y = Conv2d(weight: w, bias: b, stride: stride, pads: pads)(x)
        let g = R.random(y.shape, seed: seed + 3)
        let (dx, dW, db) = ConvGrad.backward(x: x, weight: w, stride: stride, pads: pads, dy: g)
        let name = "conv stride \(stride) pads \(pads)"
        R.check(name + " dx", x, analytic: dx, g: g) { Ref.conv($0, xShape, self.d(w), wShape, self.d(b), stride: stride, pads: pads) }
        R.check(name + " dW", w, analytic: dW, g: g) { Ref.conv(self.d(x), xShape, $0, wShape, self.d(b), stride: stride, pads: pads) }
        R.check(name + " db", b, analytic: db, g: g) { Ref.conv(self.d(x), xShape, self.d(w), wShape, $0, stride: stride, pads: pads) }
    }

    func testConv3x3Pad1() { checkConv(stride: 1, pads: (1, 1, 1, 1), xShape: [2, 3, 7, 5], wShape: [5, 3, 3, 3], seed: 10) }
    func testConvStride2AsymmetricPad() { checkConv(stride: 2, pads: (0, 1, 0, 1), xShape: [2, 3, 9, 7], wShape: [4, 3, 3, 3], seed: 20) }
    func testConvStride2Pad1() { checkConv(stride: 2, pads: (1, 1, 1, 1), xShape: [1, 2, 7, 7], wShape: [3, 2, 3, 3], seed: 25) }
    /// Stride 1 takes the transposed-convolution path: asymmetric pads, a non-square kernel, and a pad beyond
    /// k - 1 (which falls back to col2im).
    func testConvStride1AsymmetricAndOversizedPads() {
        checkConv(stride: 1, pads: (0, 1, 2, 0), xShape: [2, 3, 6, 5], wShape: [4, 3, 3, 2], seed: 35)
        checkConv(stride: 1, pads: (2, 0, 1, 1), xShape: [1, 2, 5, 4], wShape: [3, 2, 3, 2], seed: 36)
    }
    func testConv1x1() { checkConv(stride: 1, pads: (0, 0, 0, 0), xShape: [2, 5, 3, 5], wShape: [3, 5, 1, 1], seed: 30) }

    func testGroupNormAffineAndPlain() {
        let x = R.random([2, 6, 3, 5], seed: 40, scale: 2) + 0.5
        let w = R.random([6], seed: 41), b = R.random([6], seed: 42)
        for affine in [true, false] {
            let gn = GroupNorm(groups: 3, eps: 1e-5, weight: affine ? w : nil, bias: affine ? b : nil)
            let y = gn(x)
            let g = R.random(y.shape, seed: 43)
            let (dx, dW, db) = NormGrad.groupNormBackward(x: x, groups: 3, eps: 1e-5, weight: affine ? w : nil, dy: g)
            R.check("groupnorm affine=\(affine) dx", x, analytic: dx, g: g) {
                Ref.groupNorm($0, x.shape, groups: 3, eps: 1e-5, w: affine ? self.d(w) : nil, b: affine ? self.d(b) : nil)
            }
            if affine {
                R.check("groupnorm dW", w, analytic: dW, g: g) {
                    Ref.groupNorm(self.d(x), x.shape, groups: 3, eps: 1e-5, w: $0, b: self.d(b))
                }
                R.check("groupnorm db", b, analytic: db, g: g) {
                    Ref.groupNorm(self.d(x), x.shape, groups: 3, eps: 1e-5, w: self.d(w), b: $0)
                }
            }
        }
    }

    func testLayerNormAffineAndPlain() {
        let x = R.random([3, 5, 7], seed: 50, scale: 1.5)
        let w = R.random([7], seed: 51), b = R.random([7], seed: 52)
        for affine in [true, false] {
            let y = LayerNorm(eps: 1e-6, weight: affine ? w : nil, bias: affine ? b : nil)(x)
            let g = R.random(y.shape, seed: 53)
            let (dx, dW, db) = NormGrad.layerNormBackward(x: x, eps: 1e-6, weight: affine ? w : nil, dy: g)
            R.check("layernorm affine=\(affine) dx", x, analytic: dx, g: g) {
                Ref.layerNorm($0, d: 7, eps: 1e-6, w: affine ? self.d(w) : nil, b: affine ? self.d(b) : nil)
            }
            if affine {
                R.check("layernorm dW", w, analytic: dW, g: g) { Ref.layerNorm(self.d(x), d: 7, eps: 1e-6, w: $0, b: self.d(b)) }
                R.check("layernorm db", b, analytic: db, g: g) { Ref.layerNorm(self.d(x), d: 7, eps: 1e-6, w: self.d(w), b: $0) }
            }
        }
    }

    /// The row-parallel reductions (LayerNorm dW / db, cross-entropy loss and hit count, Linear db) cut their rows
    /// into fixed pieces: on inputs of several pieces they must equal a plain Double sum, bit for bit across thread
    /// counts.
    func testRowParallelReductionsAcrossPieces() {
        let d = 24, rows = 3 * Parallel.grain(rowWidth: d) + 5
        let x = R.random([rows, d], seed: 54, scale: 1.5), w = R.random([d], seed: 55), g = R.random([rows, d], seed: 56)
        let labels = (0..<rows).map { ($0 * 7) % d }
        func run(_ threads: Int) -> [[Float]] {
            let saved = Parallel.threads
            Parallel.threads = threads
            defer { Parallel.threads = saved }
            let (dx, dW, db) = NormGrad.layerNormBackward(x: x, eps: 1e-6, weight: w, dy: g)
            let (loss, grad, correct) = Losses.softmaxCrossEntropy(logits: x, labels: labels)
            let lin = LinearGrad.linearBackward(x: x, weight: R.random([d, d], seed: 57), dy: g)
            return [dx.data, dW.data, db.data, [Float(loss), Float(correct)], grad.data, lin.db.data]
        }
        let one = run(1), two = run(2)
        XCTAssertEqual(one, two, "same bits with 1 and 2 threads")
        // References: dW = Σ_r dy x̂, db = Σ_r dy, Linear db = Σ_r dy; CE = mean(lse - x[label]), hits = argmax == label.
        var refW = [Double](repeating: 0, count: d), refB = refW
        var ce = 0.0, hits = 0
        for r in 0..<rows {
            let row = (0..<d).map { Double(x.data[r * d + $0]) }
            let mean = row.reduce(0, +) / Double(d)
            let inv = 1 / (row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(d) + 1e-6).squareRoot()
            for i in 0..<d { refW[i] += Double(g.data[r * d + i]) * (row[i] - mean) * inv; refB[i] += Double(g.data[r * d + i]) }
            let mx = row.max()!
            ce += (mx + log(row.reduce(0) { $0 + exp($1 - mx) }) - row[labels[r]]) / Double(rows)
            if row.firstIndex(of: mx) == labels[r] { hits += 1 }
        }
        for i in 0..<d {
            XCTAssertEqual(Double(one[1][i]), refW[i], accuracy: 1e-5 * max(1, abs(refW[i])), "layernorm dW[\(i)]")
            XCTAssertEqual(Double(one[2][i]), refB[i], accuracy: 1e-5 * max(1, abs(refB[i])), "layernorm db[\(i)]")
            XCTAssertEqual(Double(one[5][i]), refB[i], accuracy: 1e-5 * max(1, abs(refB[i])), "linear db[\(i)]")
        }
        XCTAssertEqual(Double(one[3][0]), ce, accuracy: 1e-5 * ce, "cross-entropy over all pieces")
        XCTAssertEqual(Int(one[3][1]), hits, "hits counted in every piece")
    }

    func testAttentionWithAdditiveMask() {
        let (b, h, lq, lk, dd, dv) = (2, 3, 5, 7, 4, 3)
        let q = R.random([b, h, lq, dd], seed: 60), k = R.random([b, h, lk, dd], seed: 61), v = R.random([b, h, lk, dv], seed: 62)
        // A block-causal style mask with -inf entries and a finite bias.
        var m = [Float](repeating: 0, count: lq * lk)
        for i in 0..<lq { for j in 0..<lk { m[i * lk + j] = j > i + 2 ? -.infinity : Float((i + j) % 3) * 0.25 } }
        let mask = Tensor(shape: [lq, lk], data: m)
        let scale: Float = 0.5
        let (out, saved) = AttentionGrad.forward(q: q, k: k, v: v, scale: scale, mask: mask)
        let lib = scaledDotProductAttention(q: q, k: k, v: v, scale: scale, mask: mask)
        XCTAssertLessThan(out.maxAbsDiff(lib), 1e-5, "training forward agrees with the inference attention")
        let g = R.random(out.shape, seed: 63)
        let (dq, dk, dvv) = AttentionGrad.backward(q: q, k: k, v: v, scale: scale, saved: saved, dOut: g)
        let md = m.map(Double.init)
        func ref(_ qv: [Double], _ kv: [Double], _ vv: [Double]) -> [Double] {
            Ref.attention(q: qv, k: kv, v: vv, bh: b * h, lq: lq, lk: lk, d: dd, dv: dv, scale: Double(scale), mask: md)
        }
        R.check("attention dq", q, analytic: dq, g: g) { ref($0, self.d(k), self.d(v)) }
        R.check("attention dk", k, analytic: dk, g: g) { ref(self.d(q), $0, self.d(v)) }
        R.check("attention dv", v, analytic: dvv, g: g) { ref(self.d(q), self.d(k), $0) }
    }

    func testActivations() {
        // Keep inputs away from ReLU's kink so the finite difference is well defined.
        var x = R.random([3, 5, 7], seed: 70, scale: 2)
        x = x.map { abs($0) < 0.01 ? 0.5 : $0 }
        let g = R.random(x.shape, seed: 71)
        R.check("silu", x, analytic: ActivationGrad.silu(x: x, dy: g), g: g) { $0.map { $0 / (1 + exp(-$0)) } }
        R.check("relu", x, analytic: ActivationGrad.relu(x: x, dy: g), g: g) { $0.map { max($0, 0) } }
        let c = (2 / Double.pi).squareRoot()
        let gelu = GELUTanhLayer()
        let geluOut = gelu.forward(x)
        XCTAssertEqual(geluOut.data, x.geluTanh().data, "the trainers' GELU forward is the inference op, bit for bit")
        R.check("gelu tanh", x, analytic: gelu.backward(g), g: g) {
            $0.map { 0.5 * $0 * (1 + tanh(c * ($0 + 0.044715 * $0 * $0 * $0))) }
        }
        // The forward the trainers use is the library's.
        XCTAssertLessThan(
            x.geluTanh().maxAbsDiff(
                Tensor(
                    shape: x.shape,
                    data: x.data.map {
                        Float(0.5 * Double($0) * (1 + tanh(c * (Double($0) + 0.044715 * pow(Double($0), 3)))))
                    })), 1e-5)
    }

    func testSoftmaxCrossEntropyMeanAndWeighted() {
        let logits = R.random([5, 7], seed: 80, scale: 2)
        let labels = [3, 0, 6, 2, 2]
        func ce(_ l: [Double], _ w: [Double]?) -> Double {
            var s = 0.0
            for r in 0..<5 {
                let row = Array(l[(r * 7)..<(r * 7 + 7)]), mx = row.max()!
                let lse = mx + log(row.reduce(0.0) { $0 + exp($1 - mx) })
                s += (w?[r] ?? 0.2) * (lse - row[labels[r]])
            }
            return s
        }
        let (loss, grad, _) = Losses.softmaxCrossEntropy(logits: logits, labels: labels)
        XCTAssertEqual(loss, ce(d(logits), nil), accuracy: 1e-6)
        R.checkScalar("cross-entropy mean", logits, analytic: grad) { ce($0, nil) }
        let w: [Float] = [0.5, 0.1, 0.25, 1, 0.125]
        let (_, gw, _) = Losses.softmaxCrossEntropy(logits: logits, labels: labels, weights: w)
        R.checkScalar("cross-entropy weighted", logits, analytic: gw) { ce($0, w.map(Double.init)) }
    }

    func testMSE() {
        let a = R.random([3, 5], seed: 90), b = R.random([3, 5], seed: 91)
        let (_, g) = Losses.mse(a, b)
        let bd = d(b)
        R.checkScalar("mse", a, analytic: g) { av in zip(av, bd).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / 15 }
    }

    func testWeightedMSE() {
        let a = R.random([3, 5], seed: 92), b = R.random([3, 5], seed: 93)
        let w: [Float] = [0.25, 1, 0.5]
        let (loss, g) = Losses.weightedMSE(a, b, sampleWeights: w)
        let bd = d(b)
        func f(_ av: [Double]) -> Double {
            (0..<15).reduce(0.0) { $0 + Double(w[$1 / 5]) * (av[$1] - bd[$1]) * (av[$1] - bd[$1]) } / 15
        }
        XCTAssertEqual(loss, f(d(a)), accuracy: 1e-9)
        R.checkScalar("weighted mse", a, analytic: g) { f($0) }
        // All weights 1 is the plain mean squared error.
        let (plain, gp) = Losses.mse(a, b)
        let (ones, go) = Losses.weightedMSE(a, b, sampleWeights: [1, 1, 1])
        XCTAssertEqual(plain, ones)
        XCTAssertEqual(gp.data, go.data)
    }

    func checkInterpolate(_ mode: InterpolationMode, h: Int, w: Int, oh: Int, ow: Int, seed: UInt64) {
        let x = R.random([2, 3, h, w], seed: seed)
        let y = x.interpolated(height: oh, width: ow, mode: mode)
        // The Double reference is also a check of the forward itself.
        let yr = Ref.interpolate(d(x), planes: 6, h: h, w: w, oh: oh, ow: ow, mode: mode)
        XCTAssertLessThan(R.relErr(y.data, yr), 1e-6, "\(mode) forward \(h)x\(w) -> \(oh)x\(ow)")
        let g = R.random(y.shape, seed: seed + 1)
        let dx = InterpolateGrad.backward(inputShape: x.shape, mode: mode, dy: g)
        R.check("\(mode) \(h)x\(w) -> \(oh)x\(ow)", x, analytic: dx, g: g) {
            Ref.interpolate($0, planes: 6, h: h, w: w, oh: oh, ow: ow, mode: mode)
        }
    }

    func testInterpolateAreaDownAndUp() {
        checkInterpolate(.area, h: 7, w: 9, oh: 3, ow: 4, seed: 100)  // overlapping windows (sizes do not divide)
        checkInterpolate(.area, h: 9, w: 9, oh: 3, ow: 3, seed: 102)
        checkInterpolate(.area, h: 3, w: 2, oh: 5, ow: 7, seed: 104)
    }

    func testInterpolateBicubicUpAndDown() {
        checkInterpolate(.bicubic, h: 3, w: 5, oh: 7, ow: 9, seed: 110)  // clamped border taps
        checkInterpolate(.bicubic, h: 9, w: 7, oh: 5, ow: 3, seed: 112)
        checkInterpolate(.bicubic, h: 1, w: 1, oh: 3, ow: 3, seed: 114)  // VAR's first scale: 1x1 -> n x n
    }

    func testStraightThroughAndVQLoss() {
        let f = R.random([2, 3, 5], seed: 120)
        let q = f.map { ($0 * 2).rounded() / 2 }  // a toy quantiser
        XCTAssertEqual(StraightThrough.forward(input: f, quantized: q).data, q.data)
        let g = R.random(f.shape, seed: 121)
        XCTAssertEqual(StraightThrough.backward(dOut: g).data, g.data, "gradient passes through unchanged")
        // vqLoss: finite differences in f with f̂ held fixed for the β term, and in f̂ with f fixed for the other.
        let beta: Float = 0.25
        let (loss, dF, dFHat) = StraightThrough.vqLoss(f: f, fHat: q, beta: beta)
        let fd = d(f), qd = d(q), n = Double(f.count)
        func mse(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / n }
        XCTAssertEqual(loss, Double(1 + beta) * mse(qd, fd), accuracy: 1e-6)
        R.checkScalar("vq commitment dF", f, analytic: dF) { Double(beta) * mse(qd, $0) }
        R.checkScalar("vq codebook dFHat", q, analytic: dFHat) { mse($0, fd) }
    }
}

/// Edge cases of the conv index ranges: kernel wider than the padded row on one side, stride 3, 1-pixel input.
final class ConvEdgeGradientTests: XCTestCase {
    func testTinyInputsAndLargeStride() {
        let cases: [([Int], [Int], Int, (Int, Int, Int, Int))] = [
            ([1, 2, 1, 1], [3, 2, 3, 3], 2, (1, 1, 1, 1)),
            ([1, 1, 5, 4], [2, 1, 3, 3], 3, (2, 0, 0, 2)),
            ([2, 1, 2, 3], [1, 1, 2, 2], 1, (0, 1, 1, 0)),
        ]
        for (i, (xs, ws, stride, pads)) in cases.enumerated() {
            let x = GradCheck.random(xs, seed: 200 + UInt64(i)), w = GradCheck.random(ws, seed: 210 + UInt64(i))
            let y = Conv2d(weight: w, bias: nil, stride: stride, pads: pads)(x)
            let g = GradCheck.random(y.shape, seed: 220 + UInt64(i))
            let (dx, dW, _) = ConvGrad.backward(x: x, weight: w, stride: stride, pads: pads, dy: g)
            let wd = w.data.map(Double.init), xd = x.data.map(Double.init)
            GradCheck.check("conv edge \(i) dx", x, analytic: dx, g: g) { Ref.conv($0, xs, wd, ws, nil, stride: stride, pads: pads) }
            GradCheck.check("conv edge \(i) dW", w, analytic: dW, g: g) { Ref.conv(xd, xs, $0, ws, nil, stride: stride, pads: pads) }
        }
    }

    /// The SiLU layer (cached σ) agrees with the library forward and the analytic derivative.
    func testSiLULayer() {
        let x = GradCheck.random([3, 7], seed: 230, scale: 3)
        let layer = SiLULayer()
        XCTAssertEqual(layer.forward(x).data, x.silu().data)
        let g = GradCheck.random([3, 7], seed: 231)
        GradCheck.check("silu layer", x, analytic: layer.backward(g), g: g) { $0.map { $0 / (1 + exp(-$0)) } }
    }
}
