import Foundation
import Tensor
import XCTest

/// Finite-difference checking in float64. Inputs are float32 values (exactly representable in Double); the test
/// writes the op's forward again in Double (`ref`) and takes central differences of L = Σ G ⊙ f(x) with step 1e-5,
/// whose truncation error (~1e-10 relative) is far below float32 rounding. The analytic float32 gradient then
/// differs from the Double reference only by float32 rounding of a few accumulations: a relative L2 error
/// below 1e-4 (about 1000 ulps of accumulated rounding for these sizes) is the bar.
enum GradCheck {
    static let tolerance = 1e-4

    static func random(_ shape: [Int], seed: UInt64, stream: UInt64 = 0, scale: Float = 1) -> Tensor {
        var rng = PhiloxRandom(seed: seed, stream: stream)
        return Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.normal() * scale })
    }

    /// Central-difference gradient of `f` at `x`.
    static func numeric(_ x: [Double], _ f: ([Double]) -> Double, h: Double = 1e-5) -> [Double] {
        var g = [Double](repeating: 0, count: x.count)
        var xp = x
        for i in 0..<x.count {
            let v = x[i]
            xp[i] = v + h; let fp = f(xp)
            xp[i] = v - h; let fm = f(xp)
            xp[i] = v
            g[i] = (fp - fm) / (2 * h)
        }
        return g
    }

    static func relErr(_ a: [Float], _ ref: [Double]) -> Double {
        precondition(a.count == ref.count, "gradient sizes \(a.count) vs \(ref.count)")
        var num = 0.0, den = 0.0
        for i in 0..<a.count { let d = Double(a[i]) - ref[i]; num += d * d; den += ref[i] * ref[i] }
        return (num / max(den, 1e-30)).squareRoot()
    }

    /// Checks `analytic` against the finite-difference gradient of L(x) = Σ g ⊙ ref(x).
    static func check(
        _ name: String, _ x: Tensor, analytic: Tensor, g: Tensor, ref: ([Double]) -> [Double],
        file: StaticString = #filePath, line: UInt = #line
    ) {
        let gd = g.data.map(Double.init)
        let num = numeric(x.data.map(Double.init)) { xv in
            let y = ref(xv)
            var s = 0.0
            for i in 0..<y.count { s += gd[i] * y[i] }
            return s
        }
        XCTAssertEqual(analytic.count, num.count, "\(name): gradient size", file: file, line: line)
        let e = relErr(analytic.data, num)
        XCTAssertLessThan(e, tolerance, "\(name): relative error \(e)", file: file, line: line)
        XCTAssertGreaterThan(num.map { abs($0) }.max() ?? 0, 0, "\(name): reference gradient is all zero", file: file, line: line)
    }

    /// Scalar-loss variant: analytic gradient of a scalar L(x) written in Double.
    static func checkScalar(
        _ name: String, _ x: Tensor, analytic: Tensor, loss: ([Double]) -> Double,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        let num = numeric(x.data.map(Double.init), loss)
        let e = relErr(analytic.data, num)
        XCTAssertLessThan(e, tolerance, "\(name): relative error \(e)", file: file, line: line)
    }
}

/// Plain Double forwards of the ops (the references).
enum Ref {
    /// C = op(A) op(B), batched; B shared when 2-D.
    static func matmul(_ a: [Double], _ aShape: [Int], _ b: [Double], _ bShape: [Int], ta: Bool, tb: Bool) -> [Double] {
        let (ar, ac) = (aShape[aShape.count - 2], aShape[aShape.count - 1])
        let (br, bc) = (bShape[bShape.count - 2], bShape[bShape.count - 1])
        let m = ta ? ac : ar, k = ta ? ar : ac, n = tb ? br : bc
        let batch = a.count / (ar * ac), shared = b.count == br * bc
        var c = [Double](repeating: 0, count: batch * m * n)
        for bi in 0..<batch {
            let ao = bi * ar * ac, bo = shared ? 0 : bi * br * bc
            for i in 0..<m {
                for j in 0..<n {
                    var s = 0.0
                    for t in 0..<k {
                        let av = ta ? a[ao + t * ac + i] : a[ao + i * ac + t]
                        let bv = tb ? b[bo + j * bc + t] : b[bo + t * bc + j]
                        s += av * bv
                    }
                    c[bi * m * n + i * n + j] = s
                }
            }
        }
        return c
    }

    static func conv(
        _ x: [Double], _ xs: [Int], _ w: [Double], _ ws: [Int], _ b: [Double]?, stride: Int,
        pads: (Int, Int, Int, Int)
    ) -> [Double] {
        let (n, cin, h, wd) = (xs[0], xs[1], xs[2], xs[3]), (co, kh, kw) = (ws[0], ws[2], ws[3])
        let ho = (h + pads.2 + pads.3 - kh) / stride + 1, wo = (wd + pads.0 + pads.1 - kw) / stride + 1
        var y = [Double](repeating: 0, count: n * co * ho * wo)
        for bi in 0..<n {
            for o in 0..<co {
                for oy in 0..<ho {
                    for ox in 0..<wo {
                        var s = b?[o] ?? 0
                        for c in 0..<cin {
                            for ky in 0..<kh {
                                for kx in 0..<kw {
                                    let iy = oy * stride + ky - pads.2, ix = ox * stride + kx - pads.0
                                    if iy < 0 || iy >= h || ix < 0 || ix >= wd { continue }
                                    s += x[((bi * cin + c) * h + iy) * wd + ix] * w[((o * cin + c) * kh + ky) * kw + kx]
                                }
                            }
                        }
                        y[((bi * co + o) * ho + oy) * wo + ox] = s
                    }
                }
            }
        }
        return y
    }

    static func groupNorm(_ x: [Double], _ xs: [Int], groups: Int, eps: Double, w: [Double]?, b: [Double]?) -> [Double] {
        let n = xs[0], c = xs[1], sp = x.count / (n * c), per = c / groups, size = per * sp
        var y = x
        for ng in 0..<(n * groups) {
            let base = ng * size
            let mean = (0..<size).reduce(0.0) { $0 + x[base + $1] } / Double(size)
            let v = (0..<size).reduce(0.0) { $0 + (x[base + $1] - mean) * (x[base + $1] - mean) } / Double(size)
            let inv = 1 / (v + eps).squareRoot()
            for j in 0..<size {
                let ch = (ng % groups) * per + j / sp
                y[base + j] = (x[base + j] - mean) * inv * (w?[ch] ?? 1) + (b?[ch] ?? 0)
            }
        }
        return y
    }

    static func layerNorm(_ x: [Double], d: Int, eps: Double, w: [Double]?, b: [Double]?) -> [Double] {
        var y = x
        for r in 0..<(x.count / d) {
            let row = Array(x[(r * d)..<((r + 1) * d)])
            let mean = row.reduce(0, +) / Double(d)
            let v = row.reduce(0.0) { $0 + ($1 - mean) * ($1 - mean) } / Double(d)
            let inv = 1 / (v + eps).squareRoot()
            for i in 0..<d { y[r * d + i] = (row[i] - mean) * inv * (w?[i] ?? 1) + (b?[i] ?? 0) }
        }
        return y
    }

    static func attention(
        q: [Double], k: [Double], v: [Double], bh: Int, lq: Int, lk: Int, d: Int, dv: Int,
        scale: Double, mask: [Double]?
    ) -> [Double] {
        var out = [Double](repeating: 0, count: bh * lq * dv)
        for p in 0..<bh {
            for i in 0..<lq {
                var s = (0..<lk).map { j in
                    (0..<d).reduce(0.0) { $0 + q[(p * lq + i) * d + $1] * k[(p * lk + j) * d + $1] } * scale + (mask?[i * lk + j] ?? 0)
                }
                let mx = s.max()!
                s = s.map { exp($0 - mx) }
                let z = s.reduce(0, +)
                for e in 0..<dv { out[(p * lq + i) * dv + e] = (0..<lk).reduce(0.0) { $0 + s[$1] / z * v[(p * lk + $1) * dv + e] } }
            }
        }
        return out
    }

    /// PyTorch-convention interpolation of [planes, h, w] in Double (area = adaptive average pool; bicubic A=-0.75).
    static func interpolate(_ x: [Double], planes: Int, h: Int, w: Int, oh: Int, ow: Int, mode: InterpolationMode) -> [Double] {
        var y = [Double](repeating: 0, count: planes * oh * ow)
        if mode == .area {
            for p in 0..<planes {
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        let y0 = oy * h / oh, y1 = ((oy + 1) * h + oh - 1) / oh, x0 = ox * w / ow, x1 = ((ox + 1) * w + ow - 1) / ow
                        var s = 0.0
                        for yy in y0..<y1 { for xx in x0..<x1 { s += x[(p * h + yy) * w + xx] } }
                        y[(p * oh + oy) * ow + ox] = s / Double((y1 - y0) * (x1 - x0))
                    }
                }
            }
            return y
        }
        func taps(_ inp: Int, _ out: Int) -> [[(Int, Double)]] {
            let a = -0.75, scale = Double(inp) / Double(out)
            func c1(_ t: Double) -> Double { ((a + 2) * t - (a + 3)) * t * t + 1 }
            func c2(_ t: Double) -> Double { ((a * t - 5 * a) * t + 8 * a) * t - 4 * a }
            return (0..<out).map { o in
                let real = scale * (Double(o) + 0.5) - 0.5, i0 = Int(real.rounded(.down)), t = real - Double(i0)
                let ws = [c2(t + 1), c1(t), c1(1 - t), c2(2 - t)]
                return (0..<4).map { j in (max(min(i0 - 1 + j, inp - 1), 0), ws[j]) }
            }
        }
        let ty = taps(h, oh), tx = taps(w, ow)
        for p in 0..<planes {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    var s = 0.0
                    for (iy, wy) in ty[oy] { for (ix, wx) in tx[ox] { s += wy * wx * x[(p * h + iy) * w + ix] } }
                    y[(p * oh + oy) * ow + ox] = s
                }
            }
        }
        return y
    }
}
