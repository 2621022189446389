import Foundation

/// Separable resampling of 8-bit images over a fractional source rectangle, with PIL's filters
/// (`ResampleFilter`, Resample.swift) widened by the scale factor when downscaling. Used to bring input images and
/// masks to the model resolution and results back into the original frame. Float arithmetic, rounded half up
/// and clamped to [0, 255]; within one grey level of PIL (which uses fixed point) - for the exact official
/// pipelines use `Preprocess.varCenterCrop` / `admCenterCrop`.
public enum Resample {
    /// Per-output-pixel (first tap, weights) for resampling `inSize` samples of the source interval
    /// [start, start + span) to `outSize` samples.
    static func coefficients(inSize: Int, outSize: Int, start: Double, span: Double, filter: ResampleFilter)
        -> [(first: Int, weights: [Double])] {
        let scale = span / Double(outSize)
        let filterScale = max(scale, 1)
        let support = filter.support * filterScale
        return (0..<outSize).map { o in
            let center = start + (Double(o) + 0.5) * scale
            let lo = max(Int((center - support + 0.5).rounded(.down)), 0)
            let hi = min(Int((center + support + 0.5).rounded(.down)), inSize)
            var w: [Double] = []
            var total = 0.0
            for i in lo..<max(hi, lo) {
                let v = filter.weight((Double(i) - center + 0.5) / filterScale)
                w.append(v); total += v
            }
            if w.isEmpty || total == 0 { // degenerate: fall back to the nearest source sample
                let i = min(max(Int(center.rounded(.down)), 0), inSize - 1)
                return (i, [1])
            }
            return (lo, w.map { $0 / total })
        }
    }

    /// Resamples the source rectangle (sx, sy, sw, sh) (may be fractional) of `image` to `width` x `height`.
    public static func resize(_ image: Image8, width: Int, height: Int, filter: ResampleFilter,
                              source: (x: Double, y: Double, w: Double, h: Double)? = nil) -> Image8 {
        let src = source ?? (0, 0, Double(image.width), Double(image.height))
        let cx = coefficients(inSize: image.width, outSize: width, start: src.x, span: src.w, filter: filter)
        let cy = coefficients(inSize: image.height, outSize: height, start: src.y, span: src.h, filter: filter)
        let ch = image.channels
        // Horizontal pass over all source rows, then vertical pass.
        var tmp = [Double](repeating: 0, count: image.height * width * ch)
        image.pixels.withUnsafeBufferPointer { px in
            for y in 0..<image.height {
                for x in 0..<width {
                    let c = cx[x]
                    for k in 0..<ch {
                        var acc = 0.0
                        for (j, w) in c.weights.enumerated() { acc += w * Double(px[(y * image.width + c.first + j) * ch + k]) }
                        tmp[(y * width + x) * ch + k] = acc
                    }
                }
            }
        }
        var out = [UInt8](repeating: 0, count: width * height * ch)
        for y in 0..<height {
            let c = cy[y]
            for x in 0..<width {
                for k in 0..<ch {
                    var acc = 0.0
                    for (j, w) in c.weights.enumerated() { acc += w * tmp[((c.first + j) * width + x) * ch + k] }
                    out[(y * width + x) * ch + k] = UInt8(min(max((acc + 0.5).rounded(.down), 0), 255))
                }
            }
        }
        return Image8(width: width, height: height, channels: ch, pixels: out)
    }
}
