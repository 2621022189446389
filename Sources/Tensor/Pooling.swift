import Foundation

/// 2-D pooling on NCHW tensors, with PyTorch's output-size rule (floor mode):
/// `out = (in + 2 * padding - kernel) / stride + 1`.
///
/// Every (image, channel) plane is independent; planes are processed in parallel in a fixed order, so results
/// do not depend on the thread count.
extension Tensor {
    /// `F.avg_pool2d(x, kernel, stride, padding, count_include_pad:)`.
    /// With `countIncludePad == false` the divisor is the number of taps that fall inside the input (what the
    /// FID Inception's pool branches use); with `true` it is always kernel * kernel (PyTorch's default).
    public func avgPool2d(kernel: Int, stride: Int, padding: Int = 0, countIncludePad: Bool = true) -> Tensor {
        precondition(rank == 4, "avgPool2d expects [N, C, H, W], got \(shape)")
        precondition(
            kernel >= 1 && stride >= 1 && padding >= 0 && 2 * padding <= kernel,
            "avgPool2d: bad kernel \(kernel) / stride \(stride) / padding \(padding)")
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let ho = (h + 2 * padding - kernel) / stride + 1, wo = (w + 2 * padding - kernel) / stride + 1
        precondition(ho >= 1 && wo >= 1, "avgPool2d: input \(shape) smaller than kernel \(kernel)")
        var out = [Float](repeating: 0, count: n * c * ho * wo)
        data.withUnsafeBufferPointer { ps in
            out.withUnsafeMutableBufferPointer { po in
                let src = UnsafeSendable(ps.baseAddress!), dst = UnsafeSendable(UnsafePointer(po.baseAddress!))
                Parallel.forEach(n * c) { plane in
                    let s = src.p + plane * h * w
                    let d = UnsafeMutablePointer(mutating: dst.p) + plane * ho * wo
                    for oy in 0..<ho {
                        let y0 = oy * stride - padding, y1 = Swift.min(y0 + kernel, h)
                        let ya = Swift.max(y0, 0)
                        for ox in 0..<wo {
                            let x0 = ox * stride - padding, x1 = Swift.min(x0 + kernel, w)
                            let xa = Swift.max(x0, 0)
                            var acc: Float = 0
                            for y in ya..<y1 { let r = s + y * w; for x in xa..<x1 { acc += r[x] } }
                            let divisor =
                                countIncludePad
                                ? Float(Swift.min(y0 + kernel, h + padding) - y0) * Float(Swift.min(x0 + kernel, w + padding) - x0)
                                : Float((y1 - ya) * (x1 - xa))
                            d[oy * wo + ox] = acc / divisor
                        }
                    }
                }
            }
        }
        return Tensor(shape: [n, c, ho, wo], data: out)
    }

    /// `F.max_pool2d(x, kernel, stride, padding)`: padded taps never win (they count as -infinity).
    /// A NaN in a window propagates, as in PyTorch.
    public func maxPool2d(kernel: Int, stride: Int, padding: Int = 0) -> Tensor {
        precondition(rank == 4, "maxPool2d expects [N, C, H, W], got \(shape)")
        precondition(
            kernel >= 1 && stride >= 1 && padding >= 0 && 2 * padding <= kernel,
            "maxPool2d: bad kernel \(kernel) / stride \(stride) / padding \(padding)")
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let ho = (h + 2 * padding - kernel) / stride + 1, wo = (w + 2 * padding - kernel) / stride + 1
        precondition(ho >= 1 && wo >= 1, "maxPool2d: input \(shape) smaller than kernel \(kernel)")
        var out = [Float](repeating: 0, count: n * c * ho * wo)
        data.withUnsafeBufferPointer { ps in
            out.withUnsafeMutableBufferPointer { po in
                let src = UnsafeSendable(ps.baseAddress!), dst = UnsafeSendable(UnsafePointer(po.baseAddress!))
                Parallel.forEach(n * c) { plane in
                    let s = src.p + plane * h * w
                    let d = UnsafeMutablePointer(mutating: dst.p) + plane * ho * wo
                    for oy in 0..<ho {
                        let ya = Swift.max(oy * stride - padding, 0), y1 = Swift.min(oy * stride - padding + kernel, h)
                        for ox in 0..<wo {
                            let xa = Swift.max(ox * stride - padding, 0), x1 = Swift.min(ox * stride - padding + kernel, w)
                            var m = -Float.infinity
                            var nan = false
                            for y in ya..<y1 {
                                let r = s + y * w
                                for x in xa..<x1 { let v = r[x]; m = v > m ? v : m; nan = nan || v.isNaN }
                            }
                            d[oy * wo + ox] = nan ? .nan : m
                        }
                    }
                }
            }
        }
        return Tensor(shape: [n, c, ho, wo], data: out)
    }

    /// `F.adaptive_avg_pool2d(x, (outH, outW))`: bin i covers [floor(i * in / out), ceil((i + 1) * in / out)).
    public func adaptiveAvgPool2d(outH: Int, outW: Int) -> Tensor {
        precondition(rank == 4, "adaptiveAvgPool2d expects [N, C, H, W], got \(shape)")
        precondition(outH >= 1 && outW >= 1, "adaptiveAvgPool2d: bad output size \(outH)x\(outW)")
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        var out = [Float](repeating: 0, count: n * c * outH * outW)
        data.withUnsafeBufferPointer { ps in
            out.withUnsafeMutableBufferPointer { po in
                let src = UnsafeSendable(ps.baseAddress!), dst = UnsafeSendable(UnsafePointer(po.baseAddress!))
                Parallel.forEach(n * c) { plane in
                    let s = src.p + plane * h * w
                    let d = UnsafeMutablePointer(mutating: dst.p) + plane * outH * outW
                    for oy in 0..<outH {
                        let ya = (oy * h) / outH, y1 = ((oy + 1) * h + outH - 1) / outH
                        for ox in 0..<outW {
                            let xa = (ox * w) / outW, x1 = ((ox + 1) * w + outW - 1) / outW
                            var acc: Float = 0
                            for y in ya..<y1 { for x in xa..<x1 { acc += s[y * w + x] } }
                            d[oy * outW + ox] = acc / Float((y1 - ya) * (x1 - xa))
                        }
                    }
                }
            }
        }
        return Tensor(shape: [n, c, outH, outW], data: out)
    }

    /// Mean over H and W: [N, C, H, W] -> [N, C] (adaptive average pooling to 1x1, then flatten).
    public func globalAvgPool() -> Tensor {
        precondition(rank == 4, "globalAvgPool expects [N, C, H, W], got \(shape)")
        return adaptiveAvgPool2d(outH: 1, outW: 1).reshaped([shape[0], shape[1]])
    }
}
