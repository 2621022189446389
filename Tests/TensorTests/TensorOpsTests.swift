import Foundation
import Tensor
import XCTest

/// Every op against a straightforward float64 reference on random inputs of odd sizes. Tolerances are
/// relative to max(1, max |reference|) and sized for float32 rounding of the op's reductions
/// (about sqrt(terms) * 2^-24 per output, with a margin).
final class TensorOpsTests: XCTestCase {
    var rng = PhiloxRandom(seed: 20240611, stream: 7)

    func rand(_ shape: [Int], scale: Float = 1, offset: Float = 0) -> Tensor {
        Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.normal() * scale + offset })
    }

    func assertClose(
        _ a: Tensor, _ ref: [Double], shape: [Int], tol: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(a.shape, shape, what, file: file, line: line)
        guard a.count == ref.count else { return XCTFail("\(what): \(a.count) vs \(ref.count) elements", file: file, line: line) }
        let scale = max(1, ref.map(abs).max() ?? 0)
        var worst = 0.0
        for i in 0..<ref.count {
            let d = abs(Double(a.data[i]) - ref[i])
            if d.isNaN || !(d <= tol * scale) { worst = max(worst, d.isNaN ? .infinity : d) }
        }
        XCTAssertEqual(worst, 0, "\(what): max error \(worst) exceeds \(tol) x \(scale)", file: file, line: line)
    }

    // MARK: matmul, Linear

    /// Reference C = op(A) op(B) for one batch element.
    func refMatmul(_ a: [Float], _ ar: Int, _ ac: Int, _ ta: Bool, _ b: [Float], _ br: Int, _ bc: Int, _ tb: Bool) -> [Double] {
        let m = ta ? ac : ar, k = ta ? ar : ac, n = tb ? br : bc
        var out = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k {
                    let av = ta ? a[p * ac + i] : a[i * ac + p]
                    let bv = tb ? b[j * bc + p] : b[p * bc + j]
                    s += Double(av) * Double(bv)
                }
                out[i * n + j] = s
            }
        }
        return out
    }

    func testMatmulBatchedAndTransposed() {
        let (batch, m, k, n) = (3, 5, 7, 9)
        for ta in [false, true] {
            for tb in [false, true] {
                let a = rand(ta ? [batch, k, m] : [batch, m, k])
                let b = rand(tb ? [batch, n, k] : [batch, k, n])
                let c = a.matmul(b, transposeSelf: ta, transposeOther: tb)
                var ref: [Double] = []
                for bi in 0..<batch {
                    ref += refMatmul(
                        Array(a.data[(bi * m * k)..<((bi + 1) * m * k)]), a.shape[1], a.shape[2], ta,
                        Array(b.data[(bi * n * k)..<((bi + 1) * n * k)]), b.shape[1], b.shape[2], tb)
                }
                assertClose(c, ref, shape: [batch, m, n], tol: 1e-6, "matmul ta=\(ta) tb=\(tb)")
            }
        }
        // broadcast a 2-D right operand over the batch
        let a = rand([2, 4, 6]), w = rand([6, 3])
        var ref: [Double] = []
        for bi in 0..<2 { ref += refMatmul(Array(a.data[(bi * 24)..<((bi + 1) * 24)]), 4, 6, false, w.data, 6, 3, false) }
        assertClose(a.matmul(w), ref, shape: [2, 4, 3], tol: 1e-6, "matmul broadcast")
        // large enough for the blocked, threaded path (both split directions and transposes)
        for (mm, nn, kk, ta, tb) in [(301, 67, 515, false, true), (67, 301, 515, true, false), (257, 259, 131, true, true)] {
            let a = rand(ta ? [kk, mm] : [mm, kk]), b = rand(tb ? [nn, kk] : [kk, nn])
            let c = a.matmul(b, transposeSelf: ta, transposeOther: tb)
            assertClose(
                c, refMatmul(a.data, a.shape[0], a.shape[1], ta, b.data, b.shape[0], b.shape[1], tb),
                shape: [mm, nn], tol: 1e-5, "blocked matmul \(mm)x\(nn)x\(kk)")
        }
    }

    func testSgemmIsThreadCountInvariant() {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        for (m, n, k, ta, tb) in [
            (333, 97, 411, false, false), (97, 333, 411, false, true), (513, 515, 257, true, false), (5, 7, 3, false, false),
        ] {
            let a = rand(ta ? [k, m] : [m, k]), b = rand(tb ? [n, k] : [k, n])
            var results: [[Float]] = []
            for t in [1, 2, 3] {
                Parallel.threads = t
                var c = [Float](repeating: 0.5, count: m * n)
                a.data.withUnsafeBufferPointer { pa in
                    b.data.withUnsafeBufferPointer { pb in
                        c.withUnsafeMutableBufferPointer { pc in
                            BLAS.sgemm(
                                transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.75, a: pa.baseAddress!, lda: ta ? m : k,
                                b: pb.baseAddress!, ldb: tb ? k : n, beta: 0.25, c: pc.baseAddress!, ldc: n)
                        }
                    }
                }
                results.append(c)
            }
            XCTAssertTrue(
                results[0].elementsEqual(results[1]) { $0.bitPattern == $1.bitPattern }, "threads 1 vs 2 differ for \(m)x\(n)x\(k)")
            XCTAssertTrue(
                results[0].elementsEqual(results[2]) { $0.bitPattern == $1.bitPattern }, "threads 1 vs 3 differ for \(m)x\(n)x\(k)")
            let ref = refMatmul(a.data, a.shape[0], a.shape[1], ta, b.data, b.shape[0], b.shape[1], tb).map { 0.75 * $0 + 0.25 * 0.5 }
            assertClose(Tensor(shape: [m, n], data: results[0]), ref, shape: [m, n], tol: 1e-5, "sgemm alpha/beta")
        }
    }

    /// Small and large products, both paths: OpenBLAS tiles, and the fixed-order few-rows kernel (<= 16 tokens per
    /// sample against a weight of >= 16K entries), with inner sizes off the kernel's 8-lane blocks.
    func testLinear() {
        for (batch, tokens, inF, outF) in [(2, 3, 13, 9), (3, 1, 1029, 37), (2, 5, 515, 131), (1, 16, 200, 90), (2, 40, 77, 300)] {
            let x = rand([batch, tokens, inF]), w = rand([outF, inF]), b = rand([outF])
            let rows = batch * tokens
            for bias in [b, nil] {
                let y = Linear(weight: w, bias: bias)(x)
                var ref = [Double](repeating: 0, count: rows * outF)
                for r in 0..<rows {
                    for o in 0..<outF {
                        var s = Double(bias?.data[o] ?? 0)
                        for i in 0..<inF { s += Double(x.data[r * inF + i]) * Double(w.data[o * inF + i]) }
                        ref[r * outF + o] = s
                    }
                }
                // float32 sums of inF terms of unit-variance products: about sqrt(inF) * 2^-24 * max, with margin.
                assertClose(
                    y, ref, shape: [batch, tokens, outF], tol: 4e-7 * Double(inF).squareRoot() + 1e-6,
                    "Linear \([batch, tokens, inF]) -> \(outF) bias=\(bias != nil)")
            }
        }
    }

    // MARK: conv2d

    func refConv(_ x: Tensor, _ w: Tensor, _ b: Tensor?, stride: Int, pads: (Int, Int, Int, Int)) -> ([Double], [Int]) {
        let (n, cin, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (cout, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
        let (l, r, t, bo) = pads
        let ho = (h + t + bo - kh) / stride + 1, wo = (wd + l + r - kw) / stride + 1
        var out = [Double](repeating: 0, count: n * cout * ho * wo)
        for bi in 0..<n {
            for co in 0..<cout {
                for oy in 0..<ho {
                    for ox in 0..<wo {
                        var s = Double(b?.data[co] ?? 0)
                        for ci in 0..<cin {
                            for ky in 0..<kh {
                                for kx in 0..<kw {
                                    let iy = oy * stride + ky - t, ix = ox * stride + kx - l
                                    if iy < 0 || iy >= h || ix < 0 || ix >= wd { continue }
                                    s +=
                                        Double(x.data[((bi * cin + ci) * h + iy) * wd + ix])
                                        * Double(w.data[((co * cin + ci) * kh + ky) * kw + kx])
                                }
                            }
                        }
                        out[((bi * cout + co) * ho + oy) * wo + ox] = s
                    }
                }
            }
        }
        return (out, [n, cout, ho, wo])
    }

    func testConv2d() {
        let x = rand([2, 3, 9, 7])
        for k in [1, 3, 4] {
            for stride in [1, 2] {
                for pads in [(0, 0, 0, 0), (1, 1, 1, 1), (0, 1, 0, 1), (2, 1, 0, 3)] {
                    let w = rand([5, 3, k, k], scale: 0.3), b = rand([5])
                    for bias in [b, nil] {
                        let y = Conv2d(weight: w, bias: bias, stride: stride, pads: pads)(x)
                        let (ref, shape) = refConv(x, w, bias, stride: stride, pads: pads)
                        assertClose(y, ref, shape: shape, tol: 1e-6, "conv k=\(k) s=\(stride) pads=\(pads) bias=\(bias != nil)")
                    }
                }
            }
        }
        // non-square kernel and the symmetric-padding initialiser
        let w = rand([4, 3, 3, 2])
        let (ref, shape) = refConv(x, w, nil, stride: 2, pads: (1, 1, 1, 1))
        assertClose(Conv2d(weight: w, bias: nil, stride: 2, padding: 1)(x), ref, shape: shape, tol: 1e-6, "conv 3x2")
        // enough work for the threaded im2col / sgemm path
        let xb = rand([1, 37, 23, 21]), wb = rand([45, 37, 3, 3], scale: 0.1)
        let (rb, sb) = refConv(xb, wb, nil, stride: 1, pads: (1, 1, 1, 1))
        assertClose(Conv2d(weight: wb, bias: nil, stride: 1, padding: 1)(xb), rb, shape: sb, tol: 1e-5, "conv large")
    }

    /// 3x3 stride-1 convolutions take Winograd F(4x4, 3x3): against the float64 reference at odd sizes (partial
    /// tiles at the right and bottom), asymmetric pads, with and without bias, and against the im2col route.
    /// Tolerance: the transforms scale values by up to 10 (B^T's rows) and 19 (A^T's) per dimension before the
    /// rounding of the sums, so the error is that many times the direct route's (1e-5 of the largest output here).
    func testWinogradConvMatchesReference() {
        for (cin, cout, h, w) in [(8, 8, 4, 4), (13, 9, 11, 7), (37, 45, 23, 21), (16, 24, 9, 30)] {
            let x = rand([2, cin, h, w])
            for pads in [(1, 1, 1, 1), (0, 0, 0, 0), (2, 1, 0, 3)] {
                let wt = rand([cout, cin, 3, 3], scale: 0.1), b = rand([cout])
                for bias in [b, nil] {
                    let conv = Conv2d(weight: wt, bias: bias, stride: 1, pads: pads)
                    let y = conv(x)
                    let (ref, shape) = refConv(x, wt, bias, stride: 1, pads: pads)
                    let what = "winograd \(cin)->\(cout) \(h)x\(w) pads=\(pads) bias=\(bias != nil)"
                    assertClose(y, ref, shape: shape, tol: 2e-5, what)
                    Conv2d.algorithm = .im2col
                    let direct = conv(x)
                    Conv2d.algorithm = .automatic
                    assertClose(direct, ref, shape: shape, tol: 1e-5, what + " (im2col)")
                }
            }
        }
    }

    /// A Winograd conv's output depends only on its own image: the same bits for any thread count and batch.
    func testWinogradConvIsBatchAndThreadInvariant() {
        let x = rand([3, 24, 37, 29])
        let conv = Conv2d(weight: rand([32, 24, 3, 3], scale: 0.1), bias: rand([32]), stride: 1, padding: 1)
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        Parallel.threads = 1
        let one = conv(x)
        Parallel.threads = 3
        let three = conv(x)
        XCTAssertEqual(one.data, three.data, "threads 1 vs 3")
        let plane = 24 * 37 * 29, outPlane = 32 * 37 * 29
        for i in 0..<3 {
            let alone = conv(Tensor(shape: [1, 24, 37, 29], data: Array(x.data[(i * plane)..<((i + 1) * plane)])))
            XCTAssertEqual(alone.data, Array(three.data[(i * outPlane)..<((i + 1) * outPlane)]), "image \(i) alone vs in the batch")
        }
    }

    // MARK: normalisation

    func testGroupNorm() {
        let (n, c, h, w, g) = (2, 6, 5, 3, 3)
        let x = rand([n, c, h, w], scale: 2, offset: 10)  // a large mean tests the variance computation
        let weight = rand([c]), bias = rand([c])
        for affine in [true, false] {
            let y = GroupNorm(groups: g, eps: 1e-5, weight: affine ? weight : nil, bias: affine ? bias : nil)(x)
            var ref = [Double](repeating: 0, count: x.count)
            let per = c / g * h * w
            for bi in 0..<n {
                for gi in 0..<g {
                    let base = (bi * c + gi * (c / g)) * h * w
                    let vals = (0..<per).map { Double(x.data[base + $0]) }
                    let mean = vals.reduce(0, +) / Double(per)
                    let v = vals.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(per)
                    for i in 0..<per {
                        let ch = gi * (c / g) + i / (h * w)
                        let z = (vals[i] - mean) / (v + 1e-5).squareRoot()
                        ref[base + i] = affine ? z * Double(weight.data[ch]) + Double(bias.data[ch]) : z
                    }
                }
            }
            assertClose(y, ref, shape: x.shape, tol: 2e-6, "GroupNorm affine=\(affine)")
        }
    }

    func testLayerNorm() {
        let x = rand([3, 4, 37], scale: 3, offset: -5), w = rand([37]), b = rand([37])
        for (weight, bias) in [(w, b), (w, nil), (nil, nil)] as [(Tensor?, Tensor?)] {
            let y = LayerNorm(eps: 1e-6, weight: weight, bias: bias)(x)
            var ref = [Double](repeating: 0, count: x.count)
            for r in 0..<12 {
                let v = (0..<37).map { Double(x.data[r * 37 + $0]) }
                let mean = v.reduce(0, +) / 37
                let va = v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 37
                for i in 0..<37 {
                    var z = (v[i] - mean) / (va + 1e-6).squareRoot()
                    if let weight { z *= Double(weight.data[i]) }
                    if let bias { z += Double(bias.data[i]) }
                    ref[r * 37 + i] = z
                }
            }
            assertClose(y, ref, shape: x.shape, tol: 2e-6, "LayerNorm w=\(weight != nil) b=\(bias != nil)")
        }
    }

    func testBatchNorm() {
        let x = rand([2, 5, 3, 7]), w = rand([5]), b = rand([5]), mean = rand([5])
        let variance = Tensor(shape: [5], data: (0..<5).map { _ in 0.2 + rng.uniform() * 3 })
        let y = BatchNorm(eps: 1e-5, weight: w, bias: b, runningMean: mean, runningVar: variance)(x)
        var ref = [Double](repeating: 0, count: x.count)
        for i in 0..<x.count {
            let c = (i / 21) % 5
            ref[i] =
                (Double(x.data[i]) - Double(mean.data[c])) / (Double(variance.data[c]) + 1e-5).squareRoot() * Double(w.data[c])
                + Double(b.data[c])
        }
        assertClose(y, ref, shape: x.shape, tol: 2e-6, "BatchNorm")
    }

    // MARK: softmax, attention

    func refSoftmax(_ v: [Double]) -> [Double] {
        let m = v.max()!
        let e = v.map { Foundation.exp($0 - m) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    func testSoftmax() {
        let x = rand([3, 5, 11], scale: 4, offset: 100)  // large logits: must subtract the max
        var ref: [Double] = []
        for r in 0..<15 { ref += refSoftmax((0..<11).map { Double(x.data[r * 11 + $0]) }) }
        assertClose(x.softmaxLastAxis(), ref, shape: x.shape, tol: 1e-6, "softmax")
        // -inf entries get probability 0
        let y = Tensor(shape: [1, 3], data: [0, -.infinity, 0]).softmaxLastAxis()
        XCTAssertEqual(y.data, [0.5, 0, 0.5])
    }

    func refAttention(_ q: Tensor, _ k: Tensor, _ v: Tensor, scale: Double, mask: Tensor?) -> [Double] {
        let (b, h, lq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let lk = k.shape[2], dv = v.shape[3]
        var out = [Double](repeating: 0, count: b * h * lq * dv)
        for bh in 0..<(b * h) {
            for i in 0..<lq {
                var s = [Double](repeating: 0, count: lk)
                for j in 0..<lk {
                    var dot = 0.0
                    for p in 0..<d { dot += Double(q.data[(bh * lq + i) * d + p]) * Double(k.data[(bh * lk + j) * d + p]) }
                    s[j] = dot * scale + Double(mask?.data[i * lk + j] ?? 0)
                }
                let pr = refSoftmax(s)
                for c in 0..<dv {
                    var acc = 0.0
                    for j in 0..<lk where pr[j] > 0 { acc += pr[j] * Double(v.data[(bh * lk + j) * dv + c]) }
                    out[(bh * lq + i) * dv + c] = acc
                }
            }
        }
        return out
    }

    func testAttentionWithMask() {
        let (b, h, lq, lk, d) = (2, 3, 5, 7, 4)
        let q = rand([b, h, lq, d]), k = rand([b, h, lk, d]), v = rand([b, h, lk, 6])
        var m = rand([lq, lk], scale: 0.5)
        for i in 0..<lq { m.data[i * lk + (i + 2) % lk] = -.infinity }  // forbidden positions
        let scale = 1 / Float(d).squareRoot()
        for mask in [m, nil] {
            let y = scaledDotProductAttention(q: q, k: k, v: v, scale: scale, mask: mask)
            assertClose(
                y, refAttention(q, k, v, scale: Double(scale), mask: mask), shape: [b, h, lq, 6], tol: 2e-6, "attention mask=\(mask != nil)"
            )
        }
    }

    func testKVCacheIncrementalEqualsFull() {
        let (b, h, l, d) = (2, 3, 6, 5)
        let q = rand([b, h, l, d]), k = rand([b, h, l, d]), v = rand([b, h, l, d])
        let scale: Float = 0.37
        var causal = Tensor(zeros: [l, l])
        for i in 0..<l { for j in (i + 1)..<l { causal.data[i * l + j] = -.infinity } }
        let full = scaledDotProductAttention(q: q, k: k, v: v, scale: scale, mask: causal)
        /// [b, h, L, d] -> position t as [b, h, 1, d]
        func at(_ x: Tensor, _ t: Int) -> Tensor {
            var out = [Float]()
            for bh in 0..<(b * h) { out += x.data[((bh * l + t) * d)..<((bh * l + t + 1) * d)] }
            return Tensor(shape: [b, h, 1, d], data: out)
        }
        var cache = KVCache()
        for t in 0..<l {
            let (ks, vs) = cache.append(k: at(k, t), v: at(v, t))
            XCTAssertEqual(cache.length, t + 1)
            let step = scaledDotProductAttention(q: at(q, t), k: ks, v: vs, scale: scale)
            let want = at(full, t)
            XCTAssertLessThanOrEqual(step.maxAbsDiff(want), 1e-6 * max(1, want.maxAbs()), "step \(t)")
        }
        cache.reset()
        XCTAssertEqual(cache.length, 0)
    }

    // MARK: elementwise, embedding, argmax, top-k

    func testActivations() {
        let x = Tensor(shape: [401], data: (0..<401).map { Float($0 - 200) * 0.05 })
        func check(_ y: Tensor, _ f: (Double) -> Double, _ name: String) {
            assertClose(y, x.data.map { f(Double($0)) }, shape: x.shape, tol: 1e-6, name)
        }
        check(x.gelu(), { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) }, "gelu")
        check(x.geluTanh(), { 0.5 * $0 * (1 + tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0))) }, "gelu tanh")
        check(x.silu(), { $0 / (1 + exp(-$0)) }, "silu")
        check(x.sigmoid(), { 1 / (1 + exp(-$0)) }, "sigmoid")
        check(x.relu(), { max($0, 0) }, "relu")
        // the two GELUs differ (by up to ~5e-4), so each test can tell them apart
        XCTAssertGreaterThan(x.gelu().maxAbsDiff(x.geluTanh()), 1e-4)
    }

    /// SiLU's and GELU's vectorised exp: within a few ulp of the float64 value over the whole float range that matters (the
    /// vector lanes and the scalar tail run the same operations: any length gives the same bits per element), NaN
    /// stays NaN, and GroupNorm's fused SiLU equals GroupNorm then SiLU bit for bit.
    func testSiLUKernel() {
        let values = (0..<20001).map { Float($0 - 12000) * 0.01 } + [0, -0.0, 1e-30, -1e-30, 88, -87]
        let y = Tensor(shape: [values.count], data: values).silu()
        for (v, out) in zip(values, y.data) {
            let ref = Double(v) / (1 + exp(-Double(v)))
            // Below -80 the true value is under 1e-33 and the exp is clamped: only the absolute error counts there.
            let tol = v < -80 ? 1e-30 : 4 * Double(Float(ref).ulp)
            XCTAssertLessThanOrEqual(abs(Double(out) - ref), tol, "silu(\(v)) = \(out), reference \(ref)")
        }
        for length in [1, 7, 9, 33] {  // each element alone vs inside a vector
            let part = Tensor(shape: [length], data: Array(values[1000..<(1000 + length)])).silu()
            XCTAssertEqual(part.data, Array(y.data[1000..<(1000 + length)]), "length \(length)")
        }
        XCTAssertTrue(Tensor(shape: [9], data: [Float](repeating: .nan, count: 9)).silu().data.allSatisfy(\.isNaN))
        // GELU (tanh form) shares the exp: the float64 formula within a few ulp times |2u|.
        let g = Tensor(shape: [values.count], data: values).geluTanh()
        for (v, out) in zip(values, g.data) where abs(v) < 60 {
            let x = Double(v), u = (2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)
            let ref = x / (1 + exp(-2 * u))  // = 0.5 x (1 + tanh u), without its cancellation for large negative x
            // exp(-2u) inherits u's float rounding times |2u| (as with libm's expf): the bound scales with it.
            let tol = max(1e-35, 8 * Double(Float(ref).ulp) * max(1, abs(2 * u)))
            XCTAssertLessThanOrEqual(abs(Double(out) - ref), tol, "geluTanh(\(v)) = \(out), reference \(ref)")
        }
        XCTAssertTrue(Tensor(shape: [9], data: [Float](repeating: .nan, count: 9)).geluTanh().data.allSatisfy(\.isNaN))
        let x = rand([2, 8, 5, 7], scale: 3)
        let gn = GroupNorm(groups: 4, eps: 1e-6, weight: rand([8]), bias: rand([8]))
        XCTAssertEqual(gn(x, thenSiLU: true).data, gn(x).silu().data)
    }

    /// Attention's softmax kernel: against float64 at lengths around the 8-lane blocks, a masked (-inf) tail gives
    /// the bits of the visible prefix's softmax followed by zeros (what the causal training path computes), and a
    /// fully masked or NaN row is NaN.
    func testAttentionSoftmax() {
        for n in [1, 7, 8, 9, 31, 680] {
            let row = rand([n], scale: 4).data
            var out = row
            out.withUnsafeMutableBufferPointer { attentionSoftmax($0.baseAddress!, n) }
            let m = Double(row.max()!), e = row.map { Foundation.exp(Double($0) - m) }, s = e.reduce(0, +)
            for i in 0..<n { XCTAssertEqual(Double(out[i]), e[i] / s, accuracy: 1e-6 * max(1, e[i] / s), "n \(n) element \(i)") }
            for visible in [1, n / 2, n] where visible >= 1 {
                var masked = row, prefix = row
                for i in visible..<n { masked[i] = -.infinity }
                masked.withUnsafeMutableBufferPointer { attentionSoftmax($0.baseAddress!, n) }
                prefix.withUnsafeMutableBufferPointer { attentionSoftmax($0.baseAddress!, visible) }
                for i in visible..<n { prefix[i] = 0 }
                XCTAssertEqual(masked, prefix, "n \(n), \(visible) visible")
            }
        }
        var masked = [Float](repeating: -.infinity, count: 11), withNaN: [Float] = [1, 2, .nan, 3]
        masked.withUnsafeMutableBufferPointer { attentionSoftmax($0.baseAddress!, 11) }
        withNaN.withUnsafeMutableBufferPointer { attentionSoftmax($0.baseAddress!, 4) }
        XCTAssertTrue(masked.allSatisfy(\.isNaN) && withNaN.allSatisfy(\.isNaN))
    }

    func testEmbeddingArgmaxTopK() {
        let table = rand([7, 5])
        let e = Embedding(weight: table)([3, 0, 6, 3])
        XCTAssertEqual(e.shape, [4, 5])
        for (i, id) in [3, 0, 6, 3].enumerated() {
            XCTAssertEqual(Array(e.data[(i * 5)..<(i * 5 + 5)]), Array(table.data[(id * 5)..<(id * 5 + 5)]))
        }

        let x = rand([4, 9])
        let am = x.argmaxLastAxis()
        for r in 0..<4 {
            let row = Array(x.data[(r * 9)..<(r * 9 + 9)])
            XCTAssertEqual(am[r], row.firstIndex(of: row.max()!)!)
            let top = x.topKLastAxis(4)[r]
            XCTAssertEqual(top, Array(row.indices.sorted { row[$0] > row[$1] }.prefix(4)))
        }
        // ties: first index wins for argmax, lower index first in top-k
        let t = Tensor(shape: [1, 5], data: [1, 3, 2, 3, 0])
        XCTAssertEqual(t.argmaxLastAxis(), [1])
        XCTAssertEqual(t.topKLastAxis(3), [[1, 3, 2]])
        XCTAssertEqual(t.topKLastAxis(9), [[1, 3, 2, 0, 4]])
    }

    // MARK: random numbers

    func testPhiloxKnownAnswers() {
        // Random123 kat_vectors for philox4x32-10 (counter words, key words -> output words)
        let zero = PhiloxRandom.block(key: (0, 0), counter: 0, stream: 0)
        XCTAssertEqual([zero.0, zero.1, zero.2, zero.3], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8])
        let ones = PhiloxRandom.block(key: (0xffffffff, 0xffffffff), counter: .max, stream: .max)
        XCTAssertEqual([ones.0, ones.1, ones.2, ones.3], [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd])
        let pi = PhiloxRandom.block(key: (0xa4093822, 0x299f31d0), counter: 0x85a308d3_243f6a88, stream: 0x03707344_13198a2e)
        XCTAssertEqual([pi.0, pi.1, pi.2, pi.3], [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1])
    }

    func testRandomDeterminismAndMoments() {
        var a = PhiloxRandom(seed: 42, stream: 3), b = PhiloxRandom(seed: 42, stream: 3)
        XCTAssertEqual(a.uniforms(1000), b.uniforms(1000))
        XCTAssertEqual(a.normals(999), b.normals(999))
        var c = PhiloxRandom(seed: 42, stream: 4), d = PhiloxRandom(seed: 43, stream: 3)
        var a2 = PhiloxRandom(seed: 42, stream: 3)
        let base = a2.uniforms(1000)
        XCTAssertNotEqual(c.uniforms(1000), base)
        XCTAssertNotEqual(d.uniforms(1000), base)

        let n = 200_000
        func moments(_ xs: [Double]) -> (Double, Double) {
            let m = xs.reduce(0, +) / Double(xs.count)
            return (m, xs.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(xs.count - 1))
        }
        var r = PhiloxRandom(seed: 7, stream: 0)
        let u = (0..<n).map { _ in Double(r.uniform()) }
        XCTAssertTrue(u.allSatisfy { $0 >= 0 && $0 < 1 })
        let (um, uv) = moments(u)
        // 5 standard errors: sd(mean) = sqrt(var / n); sd(var) ~ sqrt(mu4 - var^2) / sqrt(n)
        XCTAssertEqual(um, 0.5, accuracy: 5 * (1.0 / 12 / Double(n)).squareRoot())
        XCTAssertEqual(uv, 1.0 / 12, accuracy: 5 * (1.0 / 80 - 1.0 / 144).squareRoot() / Double(n).squareRoot())
        let z = (0..<n).map { _ in Double(r.normal()) }
        let (zm, zv) = moments(z)
        XCTAssertEqual(zm, 0, accuracy: 5 / Double(n).squareRoot())
        XCTAssertEqual(zv, 1, accuracy: 5 * 2.0.squareRoot() / Double(n).squareRoot())
        let e = (0..<n).map { _ in Double(r.exponential()) }
        XCTAssertTrue(e.allSatisfy { $0 > 0 && $0.isFinite })
        let (em, ev) = moments(e)
        XCTAssertEqual(em, 1, accuracy: 5 / Double(n).squareRoot())
        XCTAssertEqual(ev, 1, accuracy: 5 * 8.0.squareRoot() / Double(n).squareRoot())

        // stream independence: samples of neighbouring streams are uncorrelated
        var s0 = PhiloxRandom(seed: 7, stream: 0), s1 = PhiloxRandom(seed: 7, stream: 1)
        let x0 = (0..<n).map { _ in Double(s0.normal()) }, x1 = (0..<n).map { _ in Double(s1.normal()) }
        let corr = zip(x0, x1).map { $0 * $1 }.reduce(0, +) / Double(n)
        XCTAssertEqual(corr, 0, accuracy: 5 / Double(n).squareRoot())

        // categorical follows its weights
        let w: [Float] = [1, 0, 3, 6]
        var counts = [0, 0, 0, 0]
        var rc = PhiloxRandom(seed: 9, stream: 2)
        w.withUnsafeBufferPointer { p in for _ in 0..<50_000 { counts[rc.categorical(p)] += 1 } }
        XCTAssertEqual(counts[1], 0)
        for (i, p) in [0.1, 0.0, 0.3, 0.6].enumerated() where p > 0 {
            XCTAssertEqual(Double(counts[i]) / 50_000, p, accuracy: 5 * (p * (1 - p) / 50_000).squareRoot(), "category \(i)")
        }
    }

    // MARK: shape ops

    func testShapeOps() {
        let x = rand([2, 3, 4])
        let p = x.permuted([2, 0, 1])
        XCTAssertEqual(p.shape, [4, 2, 3])
        for i in 0..<2 { for j in 0..<3 { for k in 0..<4 { XCTAssertEqual(p.data[(k * 2 + i) * 3 + j], x.data[(i * 3 + j) * 4 + k]) } } }
        let parts = x.split([1, 2], dim: 1)
        XCTAssertEqual(parts.map(\.shape), [[2, 1, 4], [2, 2, 4]])
        XCTAssertEqual(Tensor.cat(parts, dim: 1), x)
        XCTAssertEqual(x.transposedLast2().transposedLast2(), x)
        XCTAssertEqual(x.reshaped([6, 4]).data, x.data)
    }
}
