import Foundation

/// How an input image of any size maps onto the square model frame, with the official preprocessing of each
/// family (`Preprocess` in Transforms.swift, PIL-exact): resize so that the SHORTER side equals the model
/// resolution S, then take the central S x S crop.
/// * `.var`: torchvision `Resize(S, LANCZOS)` (longer side truncated) + `CenterCrop(S)` (offsets rounded half to
///   even) - VAR's validation transform with mid_reso = 1 (no extra zoom, so the whole shorter side is edited).
/// * `.adm`: ADM's `center_crop_arr`, which DiT uses (BOX halving while >= 2S, BICUBIC, offsets rounded down).
/// An input that already is S x S is used as is. The inverse mapping serves `--paste-back` and pixel boxes.
public struct CenterCropGeometry: Equatable, Sendable {
    public enum Pipeline: String, Sendable { case `var`, adm }

    public let sourceWidth: Int
    public let sourceHeight: Int
    public let size: Int
    public let pipeline: Pipeline
    public let scaledWidth: Int
    public let scaledHeight: Int
    public let cropX: Int
    public let cropY: Int

    public init(sourceWidth: Int, sourceHeight: Int, size: Int, pipeline: Pipeline = .var) throws {
        guard sourceWidth > 0, sourceHeight > 0 else { throw GeometryError.invalid("image has no pixels (\(sourceWidth)x\(sourceHeight))") }
        guard size > 0 else { throw GeometryError.invalid("model resolution must be positive, got \(size)") }
        self.sourceWidth = sourceWidth; self.sourceHeight = sourceHeight; self.size = size; self.pipeline = pipeline
        var (w, h) = (sourceWidth, sourceHeight)
        if w == size && h == size {
            (scaledWidth, scaledHeight, cropX, cropY) = (size, size, 0, 0)
            return
        }
        switch pipeline {
        case .var:
            let short = min(w, h), long = max(w, h)
            let newLong = Int(Double(size * long) / Double(short))
            (w, h) = w <= h ? (size, newLong) : (newLong, size)
            (scaledWidth, scaledHeight) = (w, h)
            cropX = Int((Double(w - size) / 2).rounded(.toNearestOrEven))
            cropY = Int((Double(h - size) / 2).rounded(.toNearestOrEven))
        case .adm:
            // BOX halving changes the sizes before the final resize (not the geometry, up to the halving's floor).
            while min(w, h) >= 2 * size { w /= 2; h /= 2 }
            let scale = Double(size) / Double(min(w, h))
            w = Int((Double(w) * scale).rounded(.toNearestOrEven))
            h = Int((Double(h) * scale).rounded(.toNearestOrEven))
            (scaledWidth, scaledHeight) = (w, h)
            cropX = (w - size) / 2
            cropY = (h - size) / 2
        }
    }

    /// True when the input already is S x S: nothing is resampled and boxes map exactly.
    public var isIdentity: Bool { sourceWidth == size && sourceHeight == size }

    /// The source rectangle (in source pixels) that becomes the model frame.
    public var sourceRect: (x: Double, y: Double, w: Double, h: Double) {
        let fx = Double(sourceWidth) / Double(scaledWidth), fy = Double(sourceHeight) / Double(scaledHeight)
        return (Double(cropX) * fx, Double(cropY) * fy, Double(size) * fx, Double(size) * fy)
    }

    /// Source pixel coordinate -> model-frame pixel coordinate (continuous; may fall outside [0, S]).
    public func toModel(x: Double, y: Double) -> (x: Double, y: Double) {
        let r = sourceRect
        return ((x - r.x) / r.w * Double(size), (y - r.y) / r.h * Double(size))
    }

    /// The image in the model frame (S x S), through the family's official pipeline.
    public func apply(_ image: Image8) throws -> Image8 {
        if isIdentity { return image.toRGB() }
        switch pipeline {
        case .var: return try Preprocess.varCenterCrop(image, resolution: size, midRatio: 1)
        case .adm: return try Preprocess.admCenterCrop(image, size: size)
        }
    }

    /// Any other image of the source size (a mask) through the same geometry with `filter`.
    public func applyGeometry(_ image: Image8, filter: ResampleFilter) throws -> Image8 {
        if isIdentity { return image }
        return try image.resized(width: scaledWidth, height: scaledHeight, filter: filter)
            .cropped(x: cropX, y: cropY, width: size, height: size)
    }

    /// Integer source-pixel rectangle covered by the model frame (for pasting back).
    public var sourcePixelRect: (x0: Int, y0: Int, x1: Int, y1: Int) {
        let r = sourceRect
        return (
            Int(r.x.rounded()), Int(r.y.rounded()), min(sourceWidth, Int((r.x + r.w).rounded())),
            min(sourceHeight, Int((r.y + r.h).rounded()))
        )
    }

    /// Puts a model-frame result back into the original image: the result is resized to the region of the original
    /// it came from, and copied where `regenerate` (a mask in the ORIGINAL frame, true = regenerated) says so, or
    /// over the whole region when `regenerate` is nil. Outside the region the original pixels stay untouched.
    public func pasteBack(
        _ result: Image8, into original: Image8, regenerate: PixelMask? = nil, filter: ResampleFilter = .bicubic
    ) throws -> Image8 {
        guard original.width == sourceWidth, original.height == sourceHeight else {
            throw GeometryError.invalid(
                "paste-back: original is \(original.width)x\(original.height), expected \(sourceWidth)x\(sourceHeight)")
        }
        guard result.width == size, result.height == size else {
            throw GeometryError.invalid("paste-back: result is \(result.width)x\(result.height), expected \(size)x\(size)")
        }
        if let m = regenerate, m.width != sourceWidth || m.height != sourceHeight {
            throw GeometryError.invalid("paste-back: mask is \(m.width)x\(m.height), expected \(sourceWidth)x\(sourceHeight)")
        }
        let rect = sourcePixelRect
        let rw = rect.x1 - rect.x0, rh = rect.y1 - rect.y0
        guard rw > 0, rh > 0 else { return original }
        let back = try result.converted(channels: original.channels).resized(width: rw, height: rh, filter: filter)
        var out = original
        let ch = original.channels
        for y in 0..<rh {
            for x in 0..<rw {
                let ox = rect.x0 + x, oy = rect.y0 + y
                if let m = regenerate, !m.regenerate[oy * sourceWidth + ox] { continue }
                for k in 0..<ch { out.pixels[(oy * sourceWidth + ox) * ch + k] = back.pixels[(y * rw + x) * ch + k] }
            }
        }
        return out
    }
}

public enum GeometryError: Error, CustomStringConvertible, Equatable {
    case invalid(String)
    public var description: String {
        switch self {
        case let .invalid(s): return s
        }
    }
}

extension Image8 {
    /// Gray / RGB / RGBA conversions (alpha dropped, gray replicated, RGB -> gray by Rec. 601 luma).
    public func converted(channels target: Int) -> Image8 {
        if target == channels { return self }
        var out = [UInt8](repeating: 0, count: width * height * target)
        for i in 0..<(width * height) {
            let r: UInt8, g: UInt8, b: UInt8
            if channels >= 3 {
                r = pixels[i * channels]; g = pixels[i * channels + 1]; b = pixels[i * channels + 2]
            } else {
                r = pixels[i * channels]; g = r; b = r
            }
            switch target {
            case 1:
                let luma: Double = 0.299 * Double(r) + 0.587 * Double(g) + 0.114 * Double(b)
                out[i] = UInt8(min(255.0, luma.rounded()))
            case 3: out[i * 3] = r; out[i * 3 + 1] = g; out[i * 3 + 2] = b
            default:
                for k in 0..<target { out[i * target + k] = k < 3 ? [r, g, b][k] : 255 }
            }
        }
        return Image8(width: width, height: height, channels: target, pixels: out)
    }

    /// Places this image at (x, y) on a larger canvas of `width` x `height`, filling the rest by replicating the
    /// nearest edge pixel (a neutral start for the encoders; the margins are regenerated anyway).
    public func onCanvas(width w: Int, height h: Int, x: Int, y: Int) -> Image8 {
        var out = [UInt8](repeating: 0, count: w * h * channels)
        for oy in 0..<h {
            let sy = min(max(oy - y, 0), height - 1)
            for ox in 0..<w {
                let sx = min(max(ox - x, 0), width - 1)
                for k in 0..<channels { out[(oy * w + ox) * channels + k] = pixels[(sy * width + sx) * channels + k] }
            }
        }
        return Image8(width: w, height: h, channels: channels, pixels: out)
    }
}
