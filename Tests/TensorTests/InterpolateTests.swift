import Foundation
import Tensor
import XCTest

/// Interpolation against independent float64 references written from the textbook definitions
/// (PyTorch's documented conventions), on odd sizes, up and down.
final class InterpolateTests: XCTestCase {
    let sizes: [(Int, Int, Int, Int)] = [
        (5, 7, 11, 3), (7, 5, 4, 13), (3, 3, 9, 9), (16, 16, 4, 4), (13, 11, 13, 11), (4, 6, 8, 12), (1, 1, 5, 3),
    ]

    func input(_ h: Int, _ w: Int, channels: Int = 2) -> Tensor {
        var rng = PhiloxRandom(seed: 7, stream: UInt64(h * 100 + w))
        return Tensor(shape: [1, channels, h, w], data: rng.normals(channels * h * w))
    }

    /// Float64 reference: out(c, y, x) = sum over the 2-D kernel of w(y) w(x) src(clampY, clampX).
    func reference(_ x: Tensor, _ oh: Int, _ ow: Int, taps: (Int, Int, Int) -> [(Int, Double)]) -> [Double] {
        let (c, h, w) = (x.shape[1], x.shape[2], x.shape[3])
        var out: [Double] = []
        for ch in 0..<c {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    var s = 0.0
                    for (iy, wy) in taps(oy, h, oh) {
                        for (ix, wx) in taps(ox, w, ow) {
                            s += wy * wx * Double(x.data[ch * h * w + iy * w + ix])
                        }
                    }
                    out.append(s)
                }
            }
        }
        return out
    }

    func check(_ mode: InterpolationMode, tol: Double, taps: @escaping (Int, Int, Int) -> [(Int, Double)]) {
        for (h, w, oh, ow) in sizes {
            let x = input(h, w)
            let y = x.interpolated(height: oh, width: ow, mode: mode)
            XCTAssertEqual(y.shape, [1, 2, oh, ow])
            let ref = reference(x, oh, ow, taps: taps)
            let err = zip(y.data, ref).map { abs(Double($0) - $1) }.max() ?? 0
            let scale = max(1, ref.map(abs).max() ?? 0)
            XCTAssertLessThanOrEqual(err / scale, tol, "\(mode) \(h)x\(w) -> \(oh)x\(ow)")
        }
    }

    func testNearest() {
        check(.nearest, tol: 0) { o, i, n in [(min(Int((Double(o) * Double(i) / Double(n)).rounded(.down)), i - 1), 1)] }
    }

    func testBilinearHalfPixel() {
        check(.bilinear, tol: 1e-6) { o, i, n in
            let src = max((Double(o) + 0.5) * Double(i) / Double(n) - 0.5, 0)
            let i0 = min(Int(src), i - 1), l = src - Double(i0)
            return [(i0, 1 - l), (min(i0 + 1, i - 1), l)]
        }
    }

    func testBilinearNoHalfPixel() {
        check(.bilinearNoHalfPixel, tol: 1e-6) { o, i, n in
            let src = Double(o) * Double(i) / Double(n)
            let i0 = min(Int(src), i - 1), l = src - Double(i0)
            return [(i0, 1 - l), (min(i0 + 1, i - 1), l)]
        }
    }

    func testBicubic() {
        let a = -0.75
        func k(_ t: Double) -> Double {
            let x = abs(t)
            if x <= 1 { return (a + 2) * x * x * x - (a + 3) * x * x + 1 }
            if x < 2 { return a * x * x * x - 5 * a * x * x + 8 * a * x - 4 * a }
            return 0
        }
        check(.bicubic, tol: 2e-6) { o, i, n in
            let src = (Double(o) + 0.5) * Double(i) / Double(n) - 0.5
            let f = Int(src.rounded(.down))
            return (-1...2).map { j in (max(min(f + j, i - 1), 0), k(src - Double(f + j))) }
        }
    }

    func testArea() {
        check(.area, tol: 1e-6) { o, i, n in
            let s = (o * i) / n, e = Int((Double((o + 1) * i) / Double(n)).rounded(.up))
            return (s..<e).map { ($0, 1 / Double(e - s)) }
        }
    }

    /// Identity sizes are exact copies for every mode (PyTorch returns the input unchanged numerically).
    func testIdentity() {
        let x = input(6, 5)
        for mode in InterpolationMode.allCases {
            XCTAssertEqual(x.interpolated(height: 6, width: 5, mode: mode).data, x.data, "\(mode)")
        }
    }

    /// Bicubic taps are clamped to the border: a constant image stays constant at every size.
    func testBicubicConstant() {
        let x = Tensor(repeating: 0.75, shape: [1, 1, 3, 5])
        let y = x.interpolated(height: 10, width: 7, mode: .bicubic)
        XCTAssertLessThan(y.data.map { abs($0 - 0.75) }.max()!, 1e-6)
    }
}
