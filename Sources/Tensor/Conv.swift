import Foundation

/// 2-D convolution, NCHW, weight [Cout, Cin/groups... (groups = 1)], via im2col + sgemm per image.
/// Padding is (left, right, top, bottom) so asymmetric pads such as (0,1,0,1) are expressed directly.
public struct Conv2d: Sendable {
    public var weight: Tensor
    public var bias: Tensor?
    public var stride: Int
    public var padding: (left: Int, right: Int, top: Int, bottom: Int)

    public init(weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0) {
        self.init(weight: weight, bias: bias, stride: stride, pads: (padding, padding, padding, padding))
    }

    public init(weight: Tensor, bias: Tensor?, stride: Int = 1, pads: (Int, Int, Int, Int)) {
        precondition(weight.rank == 4, "Conv2d weight must be 4-D, got \(weight.shape)")
        if let bias { precondition(bias.shape == [weight.shape[0]], "Conv2d bias \(bias.shape) vs weight \(weight.shape)") }
        self.weight = weight
        self.bias = bias
        self.stride = stride
        self.padding = (pads.0, pads.1, pads.2, pads.3)
    }

    public var outChannels: Int { weight.shape[0] }
    public var inChannels: Int { weight.shape[1] }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let profile = Profiler.begin(.conv)
        defer { Profiler.end(profile) }
        precondition(x.rank == 4 && x.shape[1] == inChannels, "Conv2d expects [N, \(inChannels), H, W], got \(x.shape)")
        let (n, cin, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (kh, kw) = (weight.shape[2], weight.shape[3])
        let hp = h + padding.top + padding.bottom, wp = w + padding.left + padding.right
        precondition(hp >= kh && wp >= kw, "Conv2d input \(x.shape) smaller than kernel \(weight.shape)")
        let ho = (hp - kh) / stride + 1, wo = (wp - kw) / stride + 1
        let cout = outChannels
        let kdim = cin * kh * kw
        let plane = ho * wo
        // Neither buffer is zero-filled first: every output element is written (the bias fill, or sgemm with
        // beta = 0) and im2col writes every column entry (zero where a tap falls outside). Filling them was a third
        // of the VQ-VAE decode's time outside sgemm (bench var --profile).
        var out = Tensor.unfilled(n * cout * plane)
        let pointwise = kh == 1 && kw == 1 && stride == 1 && padding == (0, 0, 0, 0)
        var col = pointwise ? [] : Tensor.unfilled(kdim * plane)
        x.data.withUnsafeBufferPointer { px in weight.data.withUnsafeBufferPointer { pw in out.withUnsafeMutableBufferPointer { po in
            for b in 0..<n {
                let src = px.baseAddress! + b * cin * h * w
                let dst = po.baseAddress! + b * cout * plane
                if let bias {
                    for c in 0..<cout { (dst + c * plane).update(repeating: bias.data[c], count: plane) }
                }
                if pointwise {
                    BLAS.sgemm(m: cout, n: plane, k: kdim, a: pw.baseAddress!, lda: kdim, b: src, ldb: plane,
                               beta: bias == nil ? 0 : 1, c: dst, ldc: plane)
                    continue
                }
                col.withUnsafeMutableBufferPointer { pc in
                    Conv2d.im2col(src, channels: cin, h: h, w: w, kh: kh, kw: kw, stride: stride,
                                  top: padding.top, left: padding.left, ho: ho, wo: wo, col: pc.baseAddress!)
                    BLAS.sgemm(m: cout, n: plane, k: kdim, a: pw.baseAddress!, lda: kdim, b: pc.baseAddress!, ldb: plane,
                               beta: bias == nil ? 0 : 1, c: dst, ldc: plane)
                }
            }
        } } }
        return Tensor(shape: [n, cout, ho, wo], data: out)
    }

    /// Rows of `col` are (c, ky, kx); columns are output positions. Out-of-range taps read zero.
    static func im2col(_ src: UnsafePointer<Float>, channels: Int, h: Int, w: Int, kh: Int, kw: Int, stride: Int,
                       top: Int, left: Int, ho: Int, wo: Int, col: UnsafeMutablePointer<Float>) {
        let profile = Profiler.begin(.im2col)
        defer { Profiler.end(profile) }
        let plane = ho * wo
        let rowsTotal = channels * kh * kw
        let dst = UnsafeSendable(UnsafePointer(col))
        // Rows are independent; split them in fixed chunks.
        let chunk = 32
        Parallel.forEach((rowsTotal + chunk - 1) / chunk) { blk in
            let col = UnsafeMutablePointer(mutating: dst.p)
            for row in (blk * chunk)..<min(rowsTotal, (blk + 1) * chunk) {
                let c = row / (kh * kw), ky = (row / kw) % kh, kx = row % kw
                let base = col + row * plane
                let s = src + c * h * w
                for oy in 0..<ho {
                    let iy = oy * stride + ky - top
                    let o = base + oy * wo
                    if iy < 0 || iy >= h { o.update(repeating: 0, count: wo); continue }
                    let srow = s + iy * w
                    if stride == 1 {
                        let x0 = kx - left
                        for ox in 0..<wo {
                            let ix = ox + x0
                            o[ox] = (ix >= 0 && ix < w) ? srow[ix] : 0
                        }
                    } else {
                        for ox in 0..<wo {
                            let ix = ox * stride + kx - left
                            o[ox] = (ix >= 0 && ix < w) ? srow[ix] : 0
                        }
                    }
                }
            }
        }
    }
}
