import Foundation

/// 2-D convolution, NCHW, weight [Cout, Cin/groups... (groups = 1)], per image: 3x3 stride-1 convs by Winograd
/// F(4x4, 3x3) (`WinogradF43`), the others via im2col + sgemm.
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

    /// How 3x3 stride-1 convolutions are computed: `.automatic` takes Winograd F(4x4, 3x3) (`WinogradF43`) where it
    /// applies, `.im2col` forces the im2col + sgemm route everywhere (benchmarks and tests compare the two). Set it
    /// before any model runs, not while one does.
    public enum Algorithm: Sendable { case automatic, im2col }
    nonisolated(unsafe) public static var algorithm: Algorithm = .automatic

    public var outChannels: Int { weight.shape[0] }
    public var inChannels: Int { weight.shape[1] }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let profile = Profiler.begin(.conv)
        defer { Profiler.end(profile) }
        precondition(x.rank == 4 && x.shape[1] == inChannels, "Conv2d expects [N, \(inChannels), H, W], got \(x.shape)")
        let geometry = ConvGeometry(
            x: x.shape, weight: weight.shape, stride: stride,
            pads: (padding.left, padding.right, padding.top, padding.bottom))
        let (n, cin, h, w) = (geometry.n, geometry.cin, geometry.h, geometry.w)
        let (ho, wo, cout, kdim, plane) = (geometry.ho, geometry.wo, outChannels, geometry.kdim, geometry.plane)
        // Neither buffer is zero-filled first: every output element is written (the bias fill, or sgemm with
        // beta = 0) and im2col writes every column entry (zero where a tap falls outside). Filling them was a third
        // of the VQ-VAE decode's time outside sgemm (bench var --profile).
        var out = Tensor.unfilled(n * cout * plane)
        if Conv2d.algorithm == .automatic && WinogradF43.applies(geometry, outChannels: cout) {
            let u = weight.data.withUnsafeBufferPointer { WinogradF43.transformWeights($0.baseAddress!, cout: cout, cin: cin) }
            let biasData = bias?.data ?? []
            x.data.withUnsafeBufferPointer { px in
                u.withUnsafeBufferPointer { pu in
                    biasData.withUnsafeBufferPointer { pb in
                        out.withUnsafeMutableBufferPointer { po in
                            guard n > 0 else { return }
                            WinogradF43.forward(
                                px.baseAddress!, geometry: geometry, u: pu.baseAddress!, cout: cout,
                                bias: bias == nil ? nil : pb.baseAddress!, into: po.baseAddress!)
                        }
                    }
                }
            }
            return Tensor(shape: [n, cout, ho, wo], data: out)
        }
        let pointwise = geometry.isPointwise
        var col = pointwise ? [] : Tensor.unfilled(kdim * plane)
        x.data.withUnsafeBufferPointer { px in
            weight.data.withUnsafeBufferPointer { pw in
                out.withUnsafeMutableBufferPointer { po in
                    for b in 0..<n {
                        let src = px.baseAddress! + b * cin * h * w
                        let dst = po.baseAddress! + b * cout * plane
                        if let bias {
                            for c in 0..<cout { (dst + c * plane).update(repeating: bias.data[c], count: plane) }
                        }
                        if pointwise {
                            BLAS.sgemm(
                                m: cout, n: plane, k: kdim, a: pw.baseAddress!, lda: kdim, b: src, ldb: plane,
                                beta: bias == nil ? 0 : 1, c: dst, ldc: plane)
                            continue
                        }
                        col.withUnsafeMutableBufferPointer { pc in
                            geometry.im2col(src, into: pc.baseAddress!, ld: plane)
                            BLAS.sgemm(
                                m: cout, n: plane, k: kdim, a: pw.baseAddress!, lda: kdim, b: pc.baseAddress!, ldb: plane,
                                beta: bias == nil ? 0 : 1, c: dst, ldc: plane)
                        }
                    }
                }
            }
        }
        return Tensor(shape: [n, cout, ho, wo], data: out)
    }
}

/// The shape arithmetic of one 2-D convolution (NCHW, groups = 1): input [n, cin, h, w], kernel kh x kw, stride,
/// pads (left, right, top, bottom), output ho x wo. Shared by the forward pass, the gradients and batched callers.
public struct ConvGeometry: Sendable, Equatable {
    public let n, cin, h, w, kh, kw, stride, ho, wo: Int
    public let left, right, top, bottom: Int
    public var plane: Int { ho * wo }
    public var kdim: Int { cin * kh * kw }

    public init(n: Int, cin: Int, h: Int, w: Int, kh: Int, kw: Int, stride: Int, pads: (Int, Int, Int, Int)) {
        precondition(stride >= 1 && kh >= 1 && kw >= 1, "conv geometry: stride \(stride), kernel \(kh)x\(kw)")
        precondition(h + pads.2 + pads.3 >= kh && w + pads.0 + pads.1 >= kw, "conv input \(h)x\(w) smaller than kernel \(kh)x\(kw)")
        self.n = n; self.cin = cin; self.h = h; self.w = w; self.kh = kh; self.kw = kw; self.stride = stride
        (left, right, top, bottom) = pads
        ho = (h + pads.2 + pads.3 - kh) / stride + 1
        wo = (w + pads.0 + pads.1 - kw) / stride + 1
    }

    /// Geometry of `x` [n, cin, h, w] convolved with `weight` [cout, cin, kh, kw].
    public init(x: [Int], weight: [Int], stride: Int, pads: (Int, Int, Int, Int)) {
        self.init(n: x[0], cin: x[1], h: x[2], w: x[3], kh: weight[2], kw: weight[3], stride: stride, pads: pads)
    }

    /// A 1x1, stride-1, unpadded conv: the input plane is already its own column matrix.
    public var isPointwise: Bool { kh == 1 && kw == 1 && stride == 1 && left == 0 && right == 0 && top == 0 && bottom == 0 }

    /// Output columns whose tap (kernel column kx) falls inside the input row: ox in the returned range.
    func insideColumns(kx: Int) -> Range<Int> {
        let x0 = min(wo, max(0, (left - kx + stride - 1) / stride))
        let last = w - 1 + left - kx  // largest ox * stride with ix <= w - 1
        let x1 = last < 0 ? x0 : max(x0, min(wo, last / stride + 1))
        return x0..<x1
    }

    /// Writes one image's column matrix: row (c, ky, kx) holds that tap for every output position, at
    /// `col + row * ld` (ld >= plane, so several images can lie side by side in one matrix). Taps outside the
    /// input read zero. Rows are filled in parallel; each is a few row copies, so the result is exact.
    public func im2col(_ src: UnsafePointer<Float>, into col: UnsafeMutablePointer<Float>, ld: Int) {
        let profile = Profiler.begin(.im2col)
        defer { Profiler.end(profile) }
        precondition(ld >= plane, "im2col: leading dimension \(ld) below the plane \(plane)")
        let dst = UnsafeSendable(UnsafePointer(col)), source = UnsafeSendable(src)
        let rows = kdim, chunk = 32
        Parallel.forEach((rows + chunk - 1) / chunk) { blk in
            let col = UnsafeMutablePointer(mutating: dst.p)
            for row in (blk * chunk)..<min(rows, (blk + 1) * chunk) {
                let c = row / (kh * kw), ky = (row / kw) % kh, kx = row % kw
                let s = source.p + c * h * w
                let o = col + row * ld
                let inside = insideColumns(kx: kx)
                for oy in 0..<ho {
                    let iy = oy * stride + ky - top
                    let d = o + oy * wo
                    if iy < 0 || iy >= h { d.update(repeating: 0, count: wo); continue }
                    let srow = s + iy * w + kx - left
                    d.update(repeating: 0, count: inside.lowerBound)
                    if stride == 1 {
                        (d + inside.lowerBound).update(from: srow + inside.lowerBound, count: inside.count)
                    } else {
                        for ox in inside { d[ox] = srow[ox * stride] }
                    }
                    (d + inside.upperBound).update(repeating: 0, count: wo - inside.upperBound)
                }
            }
        }
    }

    /// The adjoint of `im2col` (ld = plane): adds every column entry back onto the input pixel it was read from.
    /// Parallel over input channels (each channel's rows touch only that channel), so the summation order is fixed.
    public func col2im(_ col: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>) {
        let out = UnsafeSendable(UnsafePointer(dst)), src = UnsafeSendable(col)
        Parallel.forEach(cin) { c in
            let d = UnsafeMutablePointer(mutating: out.p) + c * h * w
            for ky in 0..<kh {
                for kx in 0..<kw {
                    let o = src.p + ((c * kh + ky) * kw + kx) * plane
                    let inside = insideColumns(kx: kx)
                    for oy in 0..<ho {
                        let iy = oy * stride + ky - top
                        if iy < 0 || iy >= h { continue }
                        let drow = d + iy * w + kx - left, orow = o + oy * wo
                        for ox in inside { drow[ox * stride] += orow[ox] }
                    }
                }
            }
        }
    }
}
