import Foundation
import Tensor

/// Conv2d gradients (NCHW, groups = 1, any stride, asymmetric pads (left, right, top, bottom)), in the forward's
/// im2col layout (`ConvGeometry`): per image, dW += dy [Cout, P] colᵀ [P, K] and db += Σ dy. The input gradient:
/// - 1x1 convs: dx = Wᵀ dy directly (the input is its own column matrix);
/// - stride 1: dx is the forward conv of dy with the kernel flipped and its two channel axes swapped, padded
///   k - 1 - pad (the transposed convolution), so it needs a column matrix of dy, not a K x P one of gradients;
/// - other strides: dcol = Wᵀ dy, then col2im (the adjoint of im2col).
public enum ConvGrad {
    /// Returns (dx, dW, db) for y = conv(x, W) + b.
    public static func backward(
        x: Tensor, weight: Tensor, stride: Int, pads: (Int, Int, Int, Int),
        dy: Tensor
    ) -> (dx: Tensor, dW: Tensor, db: Tensor) {
        let g = ConvGeometry(x: x.shape, weight: weight.shape, stride: stride, pads: pads)
        let cout = weight.shape[0]
        precondition(dy.shape == [g.n, cout, g.ho, g.wo], "conv backward: dy \(dy.shape) vs [\(g.n), \(cout), \(g.ho), \(g.wo)]")
        // The transposed convolution's pads, k - 1 - pad on each side; col2im when one would be negative.
        let transposed =
            g.stride == 1 && !g.isPointwise
            && [
                g.kw - 1 - g.left, g.kw - 1 - g.right,
                g.kh - 1 - g.top, g.kh - 1 - g.bottom,
            ].allSatisfy { $0 >= 0 }
        let back =
            transposed
            ? ConvGeometry(
                n: 1, cin: cout, h: g.ho, w: g.wo, kh: g.kh, kw: g.kw, stride: 1,
                pads: (g.kw - 1 - g.left, g.kw - 1 - g.right, g.kh - 1 - g.top, g.kh - 1 - g.bottom))
            : nil
        let flipped = transposed ? flippedTransposed(weight) : []
        var dx = Tensor.unfilled(x.count)  // every element is written by sgemm (beta 0) or zeroed before col2im
        var dW = [Float](repeating: 0, count: weight.count)
        var db = [Double](repeating: 0, count: cout)
        var col = g.isPointwise ? [] : Tensor.unfilled(g.kdim * g.plane)
        var dcol = transposed || g.isPointwise ? [] : Tensor.unfilled(g.kdim * g.plane)
        var dyCol = back.map { Tensor.unfilled($0.kdim * $0.plane) } ?? []
        x.data.withUnsafeBufferPointer { px in
            weight.data.withUnsafeBufferPointer { pw in
                dy.data.withUnsafeBufferPointer { pg in
                    dx.withUnsafeMutableBufferPointer { qx in
                        dW.withUnsafeMutableBufferPointer { qw in
                            flipped.withUnsafeBufferPointer { pf in
                                col.withUnsafeMutableBufferPointer { pc in
                                    dcol.withUnsafeMutableBufferPointer { pd in
                                        dyCol.withUnsafeMutableBufferPointer { pb in
                                            for b in 0..<g.n {
                                                let src = px.baseAddress! + b * g.cin * g.h * g.w
                                                let gy = pg.baseAddress! + b * cout * g.plane
                                                let gx = qx.baseAddress! + b * g.cin * g.h * g.w
                                                let cols: UnsafePointer<Float>
                                                if g.isPointwise {
                                                    cols = src
                                                } else {
                                                    g.im2col(src, into: pc.baseAddress!, ld: g.plane); cols = UnsafePointer(pc.baseAddress!)
                                                }
                                                // dWᵀ [K, Cout] += col [K, P] dy_bᵀ [P, Cout] (K rows: OpenBLAS's GEMM, several times faster here
                                                // than the few-rows kernel the [Cout, K] orientation would take when Cout <= 32)
                                                BLAS.sgemm(
                                                    transB: true, m: g.kdim, n: cout, k: g.plane, a: cols, lda: g.plane, b: gy,
                                                    ldb: g.plane, beta: b == 0 ? 0 : 1, c: qw.baseAddress!, ldc: cout)
                                                if g.isPointwise {
                                                    // dx [Cin, P] = Wᵀ [Cin, Cout] dy_b [Cout, P]
                                                    BLAS.sgemm(
                                                        transA: true, m: g.cin, n: g.plane, k: cout, a: pw.baseAddress!, lda: g.cin, b: gy,
                                                        ldb: g.plane, c: gx, ldc: g.plane)
                                                } else if let back {
                                                    // dx [Cin, H W] = W' [Cin, Cout kh kw] cols(dy_b) [Cout kh kw, H W]
                                                    back.im2col(gy, into: pb.baseAddress!, ld: back.plane)
                                                    BLAS.sgemm(
                                                        m: g.cin, n: back.plane, k: back.kdim, a: pf.baseAddress!, lda: back.kdim,
                                                        b: pb.baseAddress!, ldb: back.plane, c: gx, ldc: back.plane)
                                                } else {
                                                    // dcol [K, P] = Wᵀ [K, Cout] dy_b [Cout, P], then scattered back
                                                    BLAS.sgemm(
                                                        transA: true, m: g.kdim, n: g.plane, k: cout, a: pw.baseAddress!, lda: g.kdim,
                                                        b: gy,
                                                        ldb: g.plane, c: pd.baseAddress!, ldc: g.plane)
                                                    gx.update(repeating: 0, count: g.cin * g.h * g.w)
                                                    g.col2im(pd.baseAddress!, into: gx)
                                                }
                                                for c in 0..<cout {
                                                    var s = 0.0
                                                    for i in 0..<g.plane { s += Double(gy[c * g.plane + i]) }
                                                    db[c] += s
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        var dWo = [Float](repeating: 0, count: weight.count)
        for o in 0..<cout { for i in 0..<g.kdim { dWo[o * g.kdim + i] = dW[i * cout + o] } }
        return (
            Tensor(shape: x.shape, data: dx), Tensor(shape: weight.shape, data: dWo),
            Tensor(shape: [cout], data: db.map(Float.init))
        )
    }

    /// W [Cout, Cin, kh, kw] -> W' [Cin, Cout, kh, kw] with W'[c, o, i, j] = W[o, c, kh-1-i, kw-1-j]: the kernel of the
    /// transposed convolution, stored as the forward conv's [Cin, Cout kh kw] weight matrix.
    static func flippedTransposed(_ weight: Tensor) -> [Float] {
        let (cout, cin, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
        var out = [Float](repeating: 0, count: weight.count)
        for o in 0..<cout {
            for c in 0..<cin {
                for i in 0..<kh {
                    for j in 0..<kw {
                        out[((c * cout + o) * kh + i) * kw + j] = weight.data[((o * cin + c) * kh + (kh - 1 - i)) * kw + (kw - 1 - j)]
                    }
                }
            }
        }
        return out
    }
}
