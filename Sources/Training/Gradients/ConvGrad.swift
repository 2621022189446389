import Foundation
import Tensor

/// Conv2d gradients (NCHW, groups = 1, any stride, asymmetric pads (left, right, top, bottom)), via the same
/// im2col layout as the forward: per image, dW += dy [Cout, P] col^T [P, K], dcol = W^T dy, dx = col2im(dcol).
public enum ConvGrad {
    public struct Geometry {
        public let n, cin, h, w, cout, kh, kw, stride, ho, wo: Int
        public let left, top: Int
        public var plane: Int { ho * wo }
        public var kdim: Int { cin * kh * kw }
        public init(x: [Int], weight: [Int], stride: Int, pads: (Int, Int, Int, Int)) {
            n = x[0]; cin = x[1]; h = x[2]; w = x[3]; cout = weight[0]; kh = weight[2]; kw = weight[3]
            self.stride = stride; left = pads.0; top = pads.2
            ho = (h + pads.2 + pads.3 - kh) / stride + 1
            wo = (w + pads.0 + pads.1 - kw) / stride + 1
        }
    }

    /// Returns (dx, dW, db) for y = conv(x, W) + b.
    public static func backward(x: Tensor, weight: Tensor, stride: Int, pads: (Int, Int, Int, Int),
                                dy: Tensor) -> (dx: Tensor, dW: Tensor, db: Tensor) {
        let g = Geometry(x: x.shape, weight: weight.shape, stride: stride, pads: pads)
        precondition(dy.shape == [g.n, g.cout, g.ho, g.wo], "conv backward: dy \(dy.shape) vs [\(g.n), \(g.cout), \(g.ho), \(g.wo)]")
        var dx = [Float](repeating: 0, count: x.count)
        var dW = [Float](repeating: 0, count: weight.count)
        var db = [Double](repeating: 0, count: g.cout)
        var col = [Float](repeating: 0, count: g.kdim * g.plane)
        var dcol = [Float](repeating: 0, count: g.kdim * g.plane)
        x.data.withUnsafeBufferPointer { px in weight.data.withUnsafeBufferPointer { pw in dy.data.withUnsafeBufferPointer { pg in
        dx.withUnsafeMutableBufferPointer { qx in dW.withUnsafeMutableBufferPointer { qw in
        col.withUnsafeMutableBufferPointer { pc in dcol.withUnsafeMutableBufferPointer { pd in
            for b in 0..<g.n {
                let src = px.baseAddress! + b * g.cin * g.h * g.w
                let gy = pg.baseAddress! + b * g.cout * g.plane
                im2col(src, g, pc.baseAddress!)
                // dW [Cout, K] += dy_b [Cout, P] col^T [P, K]
                BLAS.sgemm(transB: true, m: g.cout, n: g.kdim, k: g.plane, a: gy, lda: g.plane, b: pc.baseAddress!,
                           ldb: g.plane, beta: b == 0 ? 0 : 1, c: qw.baseAddress!, ldc: g.kdim)
                // dcol [K, P] = W^T [K, Cout] dy_b [Cout, P]
                BLAS.sgemm(transA: true, m: g.kdim, n: g.plane, k: g.cout, a: pw.baseAddress!, lda: g.kdim, b: gy,
                           ldb: g.plane, c: pd.baseAddress!, ldc: g.plane)
                col2im(pd.baseAddress!, g, qx.baseAddress! + b * g.cin * g.h * g.w)
                for c in 0..<g.cout {
                    var s = 0.0
                    for i in 0..<g.plane { s += Double(gy[c * g.plane + i]) }
                    db[c] += s
                }
            }
        } } } } } } }
        return (Tensor(shape: x.shape, data: dx), Tensor(shape: weight.shape, data: dW),
                Tensor(shape: [g.cout], data: db.map(Float.init)))
    }

    /// Rows (c, ky, kx), columns output positions; taps outside the input read zero.
    static func im2col(_ src: UnsafePointer<Float>, _ g: Geometry, _ col: UnsafeMutablePointer<Float>) {
        let dst = UnsafeSendable(UnsafePointer(col))
        let rows = g.kdim, chunk = 32
        Parallel.forEach((rows + chunk - 1) / chunk) { blk in
            let col = UnsafeMutablePointer(mutating: dst.p)
            for row in (blk * chunk)..<min(rows, (blk + 1) * chunk) {
                let c = row / (g.kh * g.kw), ky = (row / g.kw) % g.kh, kx = row % g.kw
                let s = src + c * g.h * g.w
                let o = col + row * g.plane
                // Output columns whose tap falls inside the row: ox in [x0, x1).
                let x0 = min(g.wo, max(0, (g.left - kx + g.stride - 1) / g.stride))
                let last = g.w - 1 + g.left - kx   // largest ox * stride with ix <= w - 1
                let x1 = last < 0 ? x0 : max(x0, min(g.wo, last / g.stride + 1))
                for oy in 0..<g.ho {
                    let iy = oy * g.stride + ky - g.top
                    let dst = o + oy * g.wo
                    if iy < 0 || iy >= g.h { dst.update(repeating: 0, count: g.wo); continue }
                    let srow = s + iy * g.w + kx - g.left
                    for ox in 0..<x0 { dst[ox] = 0 }
                    if g.stride == 1 {
                        (dst + x0).update(from: srow + x0, count: x1 - x0)
                    } else {
                        for ox in x0..<x1 { dst[ox] = srow[ox * g.stride] }
                    }
                    for ox in x1..<g.wo { dst[ox] = 0 }
                }
            }
        }
    }

    /// Adjoint of im2col: adds every column entry back onto the input pixel it was read from. Parallel over input
    /// channels (each channel's rows touch only that channel), so the summation order is fixed.
    static func col2im(_ col: UnsafePointer<Float>, _ g: Geometry, _ dst: UnsafeMutablePointer<Float>) {
        let out = UnsafeSendable(UnsafePointer(dst)), src = UnsafeSendable(col)
        Parallel.forEach(g.cin) { c in
            let d = UnsafeMutablePointer(mutating: out.p) + c * g.h * g.w
            for ky in 0..<g.kh { for kx in 0..<g.kw {
                let row = (c * g.kh + ky) * g.kw + kx
                let o = src.p + row * g.plane
                let x0 = min(g.wo, max(0, (g.left - kx + g.stride - 1) / g.stride))
                let last = g.w - 1 + g.left - kx   // largest ox * stride with ix <= w - 1
                let x1 = last < 0 ? x0 : max(x0, min(g.wo, last / g.stride + 1))
                for oy in 0..<g.ho {
                    let iy = oy * g.stride + ky - g.top
                    if iy < 0 || iy >= g.h { continue }
                    let drow = d + iy * g.w + kx - g.left, orow = o + oy * g.wo
                    for ox in x0..<x1 { drow[ox * g.stride] += orow[ox] }
                }
            } }
        }
    }
}
