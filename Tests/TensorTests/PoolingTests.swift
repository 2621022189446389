import Tensor
import XCTest

/// Pooling against straightforward float64 loops written from PyTorch's definitions, on odd sizes where the
/// padding / partial-window rules matter.
final class PoolingTests: XCTestCase {
    private func random(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = PhiloxRandom(seed: seed)
        return Tensor.randn(shape, rng: &rng)
    }

    /// PyTorch avg_pool2d semantics in float64.
    private func refAvg(_ x: Tensor, k: Int, s: Int, p: Int, includePad: Bool) -> (shape: [Int], data: [Double]) {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let ho = (h + 2 * p - k) / s + 1, wo = (w + 2 * p - k) / s + 1
        var out: [Double] = []
        for b in 0..<n {
            for ch in 0..<c {
                for oy in 0..<ho {
                    for ox in 0..<wo {
                        var acc = 0.0, taps = 0
                        for ky in 0..<k {
                            for kx in 0..<k {
                                let y = oy * s - p + ky, xx = ox * s - p + kx
                                if y >= 0 && y < h && xx >= 0 && xx < w {
                                    acc += Double(x.data[((b * c + ch) * h + y) * w + xx]); taps += 1
                                }
                            }
                        }
                        // include-pad divisor: the window clipped to the padded input
                        let hs = oy * s - p, ws = ox * s - p
                        let padded = (min(hs + k, h + p) - hs) * (min(ws + k, w + p) - ws)
                        out.append(acc / Double(includePad ? padded : taps))
                    }
                }
            }
        }
        return ([n, c, ho, wo], out)
    }

    private func refMax(_ x: Tensor, k: Int, s: Int, p: Int) -> (shape: [Int], data: [Double]) {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let ho = (h + 2 * p - k) / s + 1, wo = (w + 2 * p - k) / s + 1
        var out: [Double] = []
        for b in 0..<n {
            for ch in 0..<c {
                for oy in 0..<ho {
                    for ox in 0..<wo {
                        var m = -Double.infinity
                        for ky in 0..<k {
                            for kx in 0..<k {
                                let y = oy * s - p + ky, xx = ox * s - p + kx
                                if y >= 0 && y < h && xx >= 0 && xx < w { m = max(m, Double(x.data[((b * c + ch) * h + y) * w + xx])) }
                            }
                        }
                        out.append(m)
                    }
                }
            }
        }
        return ([n, c, ho, wo], out)
    }

    private func assertClose(_ a: Tensor, _ ref: (shape: [Int], data: [Double]), tol: Double, _ what: String) {
        XCTAssertEqual(a.shape, ref.shape, what)
        guard a.shape == ref.shape else { return }
        var worst = 0.0
        for i in 0..<a.count { worst = max(worst, abs(Double(a.data[i]) - ref.data[i])) }
        XCTAssertLessThanOrEqual(worst, tol, what)
    }

    func testAvgPoolCountIncludePadFalseAndTrue() {
        let x = random([2, 3, 7, 9], seed: 1)
        for (k, s, p) in [(3, 1, 1), (3, 2, 1), (2, 2, 0), (3, 2, 0), (5, 3, 2)] {
            for inc in [false, true] {
                assertClose(
                    x.avgPool2d(kernel: k, stride: s, padding: p, countIncludePad: inc),
                    refAvg(x, k: k, s: s, p: p, includePad: inc), tol: 1e-6, "avg k\(k) s\(s) p\(p) inc \(inc)")
            }
        }
    }

    func testAvgPoolCornerDivisor() {
        // 3x3 window at the corner with padding 1 covers 4 real pixels: count_include_pad=False divides by 4.
        let x = Tensor(shape: [1, 1, 3, 3], data: [1, 2, 3, 4, 5, 6, 7, 8, 9])
        let y = x.avgPool2d(kernel: 3, stride: 1, padding: 1, countIncludePad: false)
        XCTAssertEqual(y.data[0], (1 + 2 + 4 + 5) / 4)
        let z = x.avgPool2d(kernel: 3, stride: 1, padding: 1, countIncludePad: true)
        XCTAssertEqual(z.data[0], (1 + 2 + 4 + 5) / 9)
    }

    func testMaxPool() {
        let x = random([2, 3, 9, 7], seed: 2)
        for (k, s, p) in [(3, 2, 0), (3, 1, 1), (2, 2, 1), (3, 3, 0)] {
            assertClose(
                x.maxPool2d(kernel: k, stride: s, padding: p), refMax(x, k: k, s: s, p: p), tol: 0,
                "max k\(k) s\(s) p\(p)")
        }
        // All-negative input: padded taps must not win.
        let neg = Tensor(repeating: -5, shape: [1, 1, 3, 3])
        XCTAssertEqual(neg.maxPool2d(kernel: 3, stride: 1, padding: 1).data, [Float](repeating: -5, count: 9))
    }

    func testAdaptiveAndGlobalAvgPool() {
        let x = random([2, 2, 7, 5], seed: 3)
        for (oh, ow) in [(1, 1), (3, 2), (7, 5), (4, 3)] {
            let y = x.adaptiveAvgPool2d(outH: oh, outW: ow)
            var ref: [Double] = []
            for plane in 0..<4 {
                for i in 0..<oh {
                    for j in 0..<ow {
                        let y0 = Int(floor(Double(i * 7) / Double(oh))), y1 = Int(ceil(Double((i + 1) * 7) / Double(oh)))
                        let x0 = Int(floor(Double(j * 5) / Double(ow))), x1 = Int(ceil(Double((j + 1) * 5) / Double(ow)))
                        var acc = 0.0
                        for yy in y0..<y1 { for xx in x0..<x1 { acc += Double(x.data[plane * 35 + yy * 5 + xx]) } }
                        ref.append(acc / Double((y1 - y0) * (x1 - x0)))
                    }
                }
            }
            assertClose(y, ([2, 2, oh, ow], ref), tol: 1e-6, "adaptive \(oh)x\(ow)")
        }
        let g = x.globalAvgPool()
        XCTAssertEqual(g.shape, [2, 2])
        for plane in 0..<4 {
            let m = x.data[(plane * 35)..<(plane * 35 + 35)].reduce(0.0) { $0 + Double($1) } / 35
            XCTAssertEqual(Double(g.data[plane]), m, accuracy: 1e-6)
        }
    }
}
