import Foundation

/// Spatial resampling of NCHW tensors, computed the way PyTorch's CPU kernels compute `F.interpolate`
/// (float32 arithmetic, same index/weight formulas, same summation order) so results match bit for bit
/// or within a few ulps.
public enum InterpolationMode: String, Sendable, CaseIterable {
    /// `mode='nearest'`: src = min(floor(dst * in/out), in-1) (float32 scale), exact copy when out = in or 2*in.
    case nearest
    /// `mode='bilinear', align_corners=False`: half-pixel centres, src = max((dst+0.5)*in/out - 0.5, 0).
    case bilinear
    /// TF1 `resize_bilinear` (align_corners=False, half_pixel_centers=False): src = dst * in/out, no offset,
    /// computed as TF does: top = tl + (tr - tl) * dx, bottom likewise, out = top + (bottom - top) * dy.
    /// Used by the ADM evaluator's image resize.
    case bilinearNoHalfPixel
    /// `mode='bicubic', align_corners=False`: Keys cubic with A = -0.75, four taps with indices clamped to the border.
    case bicubic
    /// `mode='area'` = adaptive average pooling: window [floor(i*in/out), ceil((i+1)*in/out)), overlapping when
    /// the sizes do not divide.
    case area
}

/// One output coordinate's taps along an axis: input indices and weights (summed in order).
struct InterpolationTaps {
    var index: [Int]  // count = out * taps
    var weight: [Float]
    var taps: Int

    /// Taps of the separable modes for one axis of `input` -> `output` samples. `sourceScale` is PyTorch's
    /// source step when `F.interpolate` got a `scale_factor` s: Float(1 / s) (compute_scales_value), which
    /// differs from input / output when s does not divide evenly (DINOv2's 16.1 / 37).
    static func make(_ mode: InterpolationMode, input: Int, output: Int, sourceScale: Float? = nil) -> InterpolationTaps {
        // PyTorch: compute_scales_value -> (float)input / output when no scale factor is given.
        let scale = sourceScale ?? Float(input) / Float(output)
        switch mode {
        case .nearest:
            var idx = [Int](repeating: 0, count: output)
            for o in 0..<output {
                if output == input {
                    idx[o] = o
                } else if output == 2 * input {
                    idx[o] = o >> 1
                } else {
                    idx[o] = min(Int(floorf(Float(o) * scale)), input - 1)
                }
            }
            return InterpolationTaps(index: idx, weight: [Float](repeating: 1, count: output), taps: 1)
        case .bilinear, .bilinearNoHalfPixel:
            var idx = [Int](repeating: 0, count: 2 * output), w = [Float](repeating: 0, count: 2 * output)
            for o in 0..<output {
                let real: Float
                if mode == .bilinear {
                    real = max(scale * (Float(o) + 0.5) - 0.5, 0)  // area_pixel_compute_source_index, clamped at 0
                } else {
                    real = Float(o) * scale
                }
                let i0 = min(Int(real), input - 1)
                let lambda = min(max(real - Float(i0), 0), 1)
                idx[2 * o] = i0
                idx[2 * o + 1] = i0 + (i0 < input - 1 ? 1 : 0)
                w[2 * o] = 1 - lambda
                w[2 * o + 1] = lambda
            }
            return InterpolationTaps(index: idx, weight: w, taps: 2)
        case .bicubic:
            var idx = [Int](repeating: 0, count: 4 * output), w = [Float](repeating: 0, count: 4 * output)
            let a: Float = -0.75
            // Keys' cubic convolution kernel pieces (PyTorch cubic_convolution1 / cubic_convolution2).
            func conv1(_ x: Float) -> Float { ((a + 2) * x - (a + 3)) * x * x + 1 }
            func conv2(_ x: Float) -> Float { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
            for o in 0..<output {
                let real = scale * (Float(o) + 0.5) - 0.5  // no clamp for cubic
                let i0 = Int(floorf(real))
                let t = real - Float(i0)
                let c: [Float] = [conv2(t + 1), conv1(t), conv1(1 - t), conv2(2 - t)]
                for j in 0..<4 {
                    idx[4 * o + j] = max(min(i0 - 1 + j, input - 1), 0)
                    w[4 * o + j] = c[j]
                }
            }
            return InterpolationTaps(index: idx, weight: w, taps: 4)
        case .area:
            fatalError("area is not separable in PyTorch's summation order; handled by adaptiveAveragePool")
        }
    }
}

extension Tensor {
    /// Resize the last two axes of an NCHW (or [..., H, W]) tensor to `height` x `width`. `scaleFactor`:
    /// the (h, w) `scale_factor` PyTorch was called with, when it was (the output size is then
    /// floor(input * factor), which the caller passes as height / width).
    public func interpolated(
        height: Int, width: Int, mode: InterpolationMode,
        scaleFactor: (h: Double, w: Double)? = nil
    ) -> Tensor {
        let profile = Profiler.begin(.interpolation)
        defer { Profiler.end(profile) }
        precondition(rank >= 2 && height > 0 && width > 0, "interpolate \(shape) to \(height)x\(width)")
        if mode == .area { return adaptiveAveragePooled(height: height, width: width) }
        let (h, w) = (dim(-2), dim(-1))
        let planes = count / max(h * w, 1)
        let ty = InterpolationTaps.make(mode, input: h, output: height, sourceScale: scaleFactor.map { Float(1 / $0.h) })
        let tx = InterpolationTaps.make(mode, input: w, output: width, sourceScale: scaleFactor.map { Float(1 / $0.w) })
        var out = [Float](repeating: 0, count: planes * height * width)
        data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                let s = UnsafeSendable(src.baseAddress!), d = UnsafeSendable(UnsafePointer(dst.baseAddress!))
                Parallel.forEach(planes) { p in
                    let sp = s.p + p * h * w
                    let dp = UnsafeMutablePointer(mutating: d.p) + p * height * width
                    // out = sum_j wy_j * (sum_i wx_i * src[y_j, x_i]), both sums left to right, as PyTorch's
                    // generic separable kernel (the outer interpolated dim is H).
                    if mode == .bilinearNoHalfPixel {
                        // TF1 resize_bilinear's own arithmetic: lerp rows, then lerp between them.
                        for oy in 0..<height {
                            let r0 = sp + ty.index[2 * oy] * w, r1 = sp + ty.index[2 * oy + 1] * w
                            let ly = ty.weight[2 * oy + 1]
                            for ox in 0..<width {
                                let x0 = tx.index[2 * ox], x1 = tx.index[2 * ox + 1], lx = tx.weight[2 * ox + 1]
                                let top = r0[x0] + (r0[x1] - r0[x0]) * lx
                                let bottom = r1[x0] + (r1[x1] - r1[x0]) * lx
                                dp[oy * width + ox] = top + (bottom - top) * ly
                            }
                        }
                        return
                    }
                    for oy in 0..<height {
                        for ox in 0..<width {
                            var acc: Float = 0
                            for j in 0..<ty.taps {
                                let row = sp + ty.index[oy * ty.taps + j] * w
                                var inner: Float = row[tx.index[ox * tx.taps]] * tx.weight[ox * tx.taps]
                                for i in 1..<tx.taps {
                                    inner += row[tx.index[ox * tx.taps + i]] * tx.weight[ox * tx.taps + i]
                                }
                                let term = inner * ty.weight[oy * ty.taps + j]
                                acc = j == 0 ? term : acc + term
                            }
                            dp[oy * width + ox] = acc
                        }
                    }
                }
            }
        }
        var s = shape
        s[rank - 2] = height
        s[rank - 1] = width
        return Tensor(shape: s, data: out)
    }

    /// `F.adaptive_avg_pool2d` (= `F.interpolate(mode='area')`): window rows [floor(i*in/out), ceil((i+1)*in/out)),
    /// float32 sum in row-major order, then `/ kh / kw` (two divisions, as PyTorch's CPU kernel).
    public func adaptiveAveragePooled(height: Int, width: Int) -> Tensor {
        let profile = Profiler.begin(.interpolation)
        defer { Profiler.end(profile) }
        precondition(rank >= 2 && height > 0 && width > 0, "adaptive pool \(shape) to \(height)x\(width)")
        let (h, w) = (dim(-2), dim(-1))
        let planes = count / max(h * w, 1)
        func start(_ i: Int, _ inp: Int, _ outp: Int) -> Int { (i * inp) / outp }
        func end(_ i: Int, _ inp: Int, _ outp: Int) -> Int { ((i + 1) * inp + outp - 1) / outp }
        var out = [Float](repeating: 0, count: planes * height * width)
        data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for p in 0..<planes {
                    let sp = src.baseAddress! + p * h * w
                    let dp = dst.baseAddress! + p * height * width
                    for oy in 0..<height {
                        let y0 = start(oy, h, height), y1 = end(oy, h, height)
                        for ox in 0..<width {
                            let x0 = start(ox, w, width), x1 = end(ox, w, width)
                            var sum: Float = 0
                            for y in y0..<y1 { for x in x0..<x1 { sum += sp[y * w + x] } }
                            dp[oy * width + ox] = sum / Float(y1 - y0) / Float(x1 - x0)
                        }
                    }
                }
            }
        }
        var s = shape
        s[rank - 2] = height
        s[rank - 1] = width
        return Tensor(shape: s, data: out)
    }

    /// `F.interpolate(mode='bicubic', antialias=True, align_corners=False)` (output size given): PyTorch's
    /// separable anti-aliased kernel, as PIL does it but in float32: the width pass first, then the height pass,
    /// each tap set widened by the downscale factor, Keys cubic with a = -0.5, weights normalised to sum 1.
    public func interpolatedBicubicAntialiased(height: Int, width: Int) -> Tensor {
        precondition(rank >= 2 && height > 0 && width > 0, "interpolate \(shape) to \(height)x\(width)")
        let (h, w) = (dim(-2), dim(-1))
        let planes = count / max(h * w, 1)
        var cur = data
        var curW = w
        if width != w {
            let t = AntialiasTaps(input: w, output: width)
            var out = [Float](repeating: 0, count: planes * h * width)
            for r in 0..<(planes * h) {
                for o in 0..<width {
                    out[r * width + o] = t.apply({ cur[r * w + $0] }, at: o)
                }
            }
            cur = out
            curW = width
        }
        if height != h {
            let t = AntialiasTaps(input: h, output: height)
            var out = [Float](repeating: 0, count: planes * height * curW)
            for p in 0..<planes {
                for o in 0..<height {
                    for x in 0..<curW {
                        out[(p * height + o) * curW + x] = t.apply({ cur[(p * h + $0) * curW + x] }, at: o)
                    }
                }
            }
            cur = out
        }
        var s = shape
        s[rank - 2] = height
        s[rank - 1] = width
        return Tensor(shape: s, data: cur)
    }
}

/// PyTorch's `_compute_indices_min_size_weights_aa` for the bicubic filter (float32 arithmetic).
struct AntialiasTaps {
    var start: [Int], size: [Int], weight: [[Float]]

    init(input: Int, output: Int) {
        let scale = Float(input) / Float(output)
        let support: Float = scale >= 1 ? 2 * scale : 2
        let invScale: Float = scale >= 1 ? 1 / scale : 1
        func filter(_ v: Float) -> Float {
            let a: Float = -0.5, x = abs(v)
            if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
            return 0
        }
        start = []; size = []; weight = []
        for i in 0..<output {
            let center = scale * (Float(i) + 0.5)
            let lo = max(Int(center - support + 0.5), 0)
            let n = min(Int(center + support + 0.5), input) - lo
            var ws = (0..<n).map { j in filter(Float((Double(Float(j + lo) - center) + 0.5) * Double(invScale))) }
            let total = ws.reduce(0, +)
            if total != 0 { ws = ws.map { $0 / total } }
            start.append(lo); size.append(n); weight.append(ws)
        }
    }

    /// sum_j w_j * src(start + j), left to right.
    func apply(_ src: (Int) -> Float, at o: Int) -> Float {
        var acc: Float = 0
        for j in 0..<size[o] { acc = j == 0 ? src(start[o]) * weight[o][0] : acc + src(start[o] + j) * weight[o][j] }
        return acc
    }
}
