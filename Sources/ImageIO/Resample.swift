import Foundation

/// PIL's resampling filters (Pillow `libImaging/Resample.c`), which the official data pipelines run through
/// torchvision on PIL images: VAR's `transforms.Resize(mid_reso, InterpolationMode.LANCZOS)` and
/// ADM/DiT's `center_crop_arr` (BOX halving, then BICUBIC).
public enum ResampleFilter: String, Sendable, CaseIterable {
    case box, bilinear, bicubic, lanczos

    /// Filter support in input pixels at scale 1.
    var support: Double {
        switch self {
        case .box: return 0.5
        case .bilinear: return 1
        case .bicubic: return 2
        case .lanczos: return 3
        }
    }

    func weight(_ x: Double) -> Double {
        switch self {
        case .box:
            return x > -0.5 && x <= 0.5 ? 1 : 0
        case .bilinear:
            let a = abs(x)
            return a < 1 ? 1 - a : 0
        case .bicubic:
            // Keys' cubic convolution with a = -0.5 (PIL's choice; PyTorch's bicubic uses -0.75).
            let a = -0.5
            let t = abs(x)
            if t < 1 { return ((a + 2) * t - (a + 3)) * t * t + 1 }
            if t < 2 { return (((t - 5) * t + 8) * t - 4) * a }
            return 0
        case .lanczos:
            func sinc(_ v: Double) -> Double { v == 0 ? 1 : sin(v * Double.pi) / (v * Double.pi) }
            return (-3 <= x && x < 3) ? sinc(x) * sinc(x / 3) : 0
        }
    }
}

extension Image8 {
    /// PIL `Image.resize((width, height), filter)` for 8-bit images, bit for bit: separable passes
    /// (horizontal first), antialiasing (the filter is widened by the downscale factor), weights normalised in
    /// float64 then quantised to 22-bit fixed point, each pass rounded and clipped to uint8.
    /// Every channel is filtered independently; RGBA is not premultiplied (PIL premultiplies RGBA, so convert
    /// to RGB first, as the pipelines do).
    public func resized(width outW: Int, height outH: Int, filter: ResampleFilter) throws -> Image8 {
        guard outW > 0, outH > 0, width > 0, height > 0 else {
            throw ImageError.invalidArgument("cannot resize \(width)x\(height) to \(outW)x\(outH)")
        }
        if outW == width && outH == height { return self }
        var img = self
        let vert = Resampler.coefficients(inSize: height, outSize: outH, filter: filter)
        if outW != width {
            // PIL filters only the rows the vertical pass will read.
            let first = outH != height ? vert.bounds[0].start : 0
            let last = outH != height ? vert.bounds[outH - 1].start + vert.bounds[outH - 1].count : height
            let hor = Resampler.coefficients(inSize: width, outSize: outW, filter: filter)
            img = Resampler.horizontal(img, rows: first..<last, hor)
            if outH != height {
                var shifted = vert
                for i in 0..<outH { shifted.bounds[i].start -= first }
                return Resampler.vertical(img, shifted)
            }
            return img
        }
        return Resampler.vertical(img, vert)
    }
}

enum Resampler {
    static let precisionBits = 32 - 8 - 2

    struct Coefficients {
        var bounds: [(start: Int, count: Int)]
        var ksize: Int
        var weights: [Int32]  // outSize x ksize, fixed point
    }

    /// Pillow's precompute_coeffs + normalize_coeffs_8bpc.
    static func coefficients(inSize: Int, outSize: Int, filter: ResampleFilter) -> Coefficients {
        let scale = Double(inSize) / Double(outSize)
        let filterscale = max(scale, 1)
        let support = filter.support * filterscale
        let ksize = Int(support.rounded(.up)) * 2 + 1
        var bounds: [(Int, Int)] = []
        bounds.reserveCapacity(outSize)
        var kk = [Int32](repeating: 0, count: outSize * ksize)
        var k = [Double](repeating: 0, count: ksize)
        let one = Double(1 << precisionBits)
        for xx in 0..<outSize {
            let center = (Double(xx) + 0.5) * scale
            let ss = 1 / filterscale
            // C's (int) cast truncates toward zero
            var xmin = Int((center - support + 0.5).rounded(.towardZero))
            if xmin < 0 { xmin = 0 }
            var xmax = Int((center + support + 0.5).rounded(.towardZero))
            if xmax > inSize { xmax = inSize }
            xmax -= xmin
            var ww = 0.0
            for x in 0..<max(0, xmax) {
                let w = filter.weight((Double(x + xmin) - center + 0.5) * ss)
                k[x] = w
                ww += w
            }
            for x in 0..<max(0, xmax) {
                let v = ww != 0 ? k[x] / ww : k[x]
                kk[xx * ksize + x] = Int32(v < 0 ? (-0.5 + v * one).rounded(.towardZero) : (0.5 + v * one).rounded(.towardZero))
            }
            bounds.append((xmin, max(0, xmax)))
        }
        return Coefficients(bounds: bounds, ksize: ksize, weights: kk)
    }

    @inline(__always) static func clip8(_ v: Int32) -> UInt8 {
        let s = v >> Int32(precisionBits)
        return s < 0 ? 0 : (s > 255 ? 255 : UInt8(s))
    }

    static func horizontal(_ img: Image8, rows: Range<Int>, _ c: Coefficients) -> Image8 {
        let ch = img.channels
        let outW = c.bounds.count
        var out = [UInt8](repeating: 0, count: rows.count * outW * ch)
        let half = Int32(1) << Int32(precisionBits - 1)
        img.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for (oy, y) in rows.enumerated() {
                    let srow = y * img.width * ch
                    let drow = oy * outW * ch
                    for xx in 0..<outW {
                        let (xmin, n) = c.bounds[xx]
                        let kbase = xx * c.ksize
                        for b in 0..<ch {
                            var ss = half
                            for x in 0..<n {
                                ss &+= Int32(src[srow + (xmin + x) * ch + b]) &* c.weights[kbase + x]
                            }
                            dst[drow + xx * ch + b] = clip8(ss)
                        }
                    }
                }
            }
        }
        return Image8(width: outW, height: rows.count, channels: ch, pixels: out)
    }

    static func vertical(_ img: Image8, _ c: Coefficients) -> Image8 {
        let ch = img.channels
        let outH = c.bounds.count
        let rowLen = img.width * ch
        var out = [UInt8](repeating: 0, count: outH * rowLen)
        let half = Int32(1) << Int32(precisionBits - 1)
        img.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for yy in 0..<outH {
                    let (ymin, n) = c.bounds[yy]
                    let kbase = yy * c.ksize
                    for i in 0..<rowLen {
                        var ss = half
                        for y in 0..<n {
                            ss &+= Int32(src[(ymin + y) * rowLen + i]) &* c.weights[kbase + y]
                        }
                        dst[yy * rowLen + i] = clip8(ss)
                    }
                }
            }
        }
        return Image8(width: img.width, height: outH, channels: ch, pixels: out)
    }
}
