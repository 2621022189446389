import Foundation

/// A binary pixel mask: `true` = regenerate (white in a mask file), `false` = keep the input.
public struct PixelMask: Equatable, Sendable {
    public let width: Int
    public let height: Int
    public var regenerate: [Bool]

    public init(width: Int, height: Int, regenerate: [Bool]) throws {
        guard width > 0, height > 0, regenerate.count == width * height else {
            throw GeometryError.invalid("mask: \(regenerate.count) values for \(width)x\(height)")
        }
        self.width = width; self.height = height; self.regenerate = regenerate
    }

    public static func filled(width: Int, height: Int, regenerate: Bool) throws -> PixelMask {
        try PixelMask(width: width, height: height, regenerate: [Bool](repeating: regenerate, count: width * height))
    }

    /// A mask image: white = regenerate, black = keep. Colour images use their luma, an alpha channel is ignored.
    /// Non-binary values are thresholded at 0.5 (value/255 >= 0.5, i.e. >= 128 is regenerated); the return value
    /// says whether any pixel was not pure black or white, so the caller can tell the user.
    public static func fromImage(_ image: Image8) -> (mask: PixelMask, wasBinary: Bool) {
        let gray = image.converted(channels: 1)
        var binary = true
        let r = gray.pixels.map { v -> Bool in
            if v != 0 && v != 255 { binary = false }
            return v >= 128
        }
        return (try! PixelMask(width: image.width, height: image.height, regenerate: r), binary)
    }

    /// As an 8-bit gray image (255 = regenerate).
    public var image: Image8 {
        Image8(width: width, height: height, channels: 1, pixels: regenerate.map { $0 ? 255 : 0 })
    }

    public var inverted: PixelMask { try! PixelMask(width: width, height: height, regenerate: regenerate.map { !$0 }) }
    public var regeneratedCount: Int { regenerate.filter { $0 }.count }

    /// Resized to another size (e.g. a mask file whose size differs from the image): bilinear on 0/255, then the
    /// same 0.5 threshold.
    public func resized(width w: Int, height h: Int) throws -> PixelMask {
        if w == width && h == height { return self }
        return PixelMask.fromImage(try image.resized(width: w, height: h, filter: .bilinear)).mask
    }

    /// Into the model frame of `geometry` (resize + center crop, as the image), re-thresholded at 0.5.
    public func toModel(_ geometry: CenterCropGeometry) throws -> PixelMask {
        if geometry.isIdentity { return self }
        return PixelMask.fromImage(try geometry.applyGeometry(image, filter: .bilinear)).mask
    }

    /// A rectangle [x0, x1) x [y0, y1) in (continuous) pixel coordinates: a pixel belongs to it when its centre does.
    public static func rectangle(
        width: Int, height: Int, x0: Double, y0: Double, x1: Double, y1: Double, regenerateInside inside: Bool
    ) throws -> PixelMask {
        var m = [Bool](repeating: !inside, count: width * height)
        for y in 0..<height where Double(y) + 0.5 > y0 && Double(y) + 0.5 < y1 {
            for x in 0..<width where Double(x) + 0.5 > x0 && Double(x) + 0.5 < x1 { m[y * width + x] = inside }
        }
        return try PixelMask(width: width, height: height, regenerate: m)
    }

    /// Per cell of a `cells` x `cells` grid over the (square) mask: true = the cell is regenerated. A cell is
    /// regenerated when at least half of its pixels are - the rule the official box rounding (`round(frac * P)`)
    /// amounts to for rectangles, and one that keeps small kept regions alive when out-painting. If that leaves
    /// nothing to regenerate although some pixels are marked (a mask finer than one cell), every cell holding a
    /// marked pixel is regenerated instead. Requires width == height divisible by `cells`.
    public func cellsRegenerated(_ cells: Int) throws -> [Bool] {
        guard width == height, cells > 0, width % cells == 0 else {
            throw GeometryError.invalid("mask \(width)x\(height) cannot be split into \(cells)x\(cells) cells")
        }
        let k = width / cells
        var count = [Int](repeating: 0, count: cells * cells)
        for y in 0..<height { for x in 0..<width where regenerate[y * width + x] { count[(y / k) * cells + x / k] += 1 } }
        let majority = count.map { 2 * $0 >= k * k }
        if !majority.contains(true) && count.contains(where: { $0 > 0 }) { return count.map { $0 > 0 } }
        return majority
    }
}

/// `--box x0,y0,x1,y1` (or the keep box of `--outpaint`): corners in pixels of the input image, or in fractions of
/// its width/height when every value is <= 1 (so `0,0,1,1` is the whole image, not a 1-pixel box).
/// x is the column (left -> right), y the row (top -> bottom); x0 < x1, y0 < y1.
public struct BoxSpec: Equatable, Sendable {
    public let values: [Double]
    public var isFraction: Bool { values.allSatisfy { $0 <= 1 } }

    public init(parsing text: String) throws {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count == 4 else { throw GeometryError.invalid("box '\(text)': expected 4 comma-separated numbers x0,y0,x1,y1") }
        var v: [Double] = []
        for p in parts {
            guard let d = Double(p), d.isFinite else { throw GeometryError.invalid("box '\(text)': '\(p)' is not a number") }
            v.append(d)
        }
        values = v
    }

    public init(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double) { values = [x0, y0, x1, y1] }

    /// In pixels of a `width` x `height` image; errors when the box is empty or leaves the image.
    public func pixels(width: Int, height: Int) throws -> (x0: Double, y0: Double, x1: Double, y1: Double) {
        let f = isFraction
        let (x0, y0, x1, y1) =
            f
            ? (values[0] * Double(width), values[1] * Double(height), values[2] * Double(width), values[3] * Double(height))
            : (values[0], values[1], values[2], values[3])
        let desc = values.map { String(format: "%g", $0) }.joined(separator: ",")
        guard x0 >= 0, y0 >= 0, x1 <= Double(width), y1 <= Double(height) else {
            throw GeometryError.invalid(
                "box \(desc) lies outside the \(width)x\(height) image" + (f ? " (read as fractions)" : " (read as pixels)"))
        }
        guard x1 > x0, y1 > y0 else { throw GeometryError.invalid("box \(desc) is empty: need x0 < x1 and y0 < y1") }
        return (x0, y0, x1, y1)
    }

    /// The box as fractions (y0, x0, y1, x1) of the MODEL frame (the order of the official `get_edit_mask`),
    /// clipped to the frame; errors if nothing of it is inside. With an identity geometry, fractional boxes are
    /// passed through unchanged so that the token-grid rounding is exactly the official one.
    public func modelFractions(_ g: CenterCropGeometry) throws -> (y0: Double, x0: Double, y1: Double, x1: Double) {
        let p = try pixels(width: g.sourceWidth, height: g.sourceHeight)
        if g.isIdentity && isFraction { return (values[1], values[0], values[3], values[2]) }
        let a = g.toModel(x: p.x0, y: p.y0), b = g.toModel(x: p.x1, y: p.y1)
        let s = Double(g.size)
        func c(_ v: Double) -> Double { min(max(v / s, 0), 1) }
        let r = (y0: c(a.y), x0: c(a.x), y1: c(b.y), x1: c(b.x))
        guard r.x1 > r.x0, r.y1 > r.y0 else {
            throw GeometryError.invalid(
                "box \(values.map { String(format: "%g", $0) }.joined(separator: ",")) falls outside the centre crop the model sees")
        }
        return r
    }
}

/// `--outpaint`: either `x0,y0,x1,y1` = keep this box and regenerate everything around it, or
/// `grow:l,t,r,b` = enlarge the canvas by these margins (pixels, or fractions of width/height when all <= 1) and
/// regenerate the new margins.
public enum OutpaintSpec: Equatable, Sendable {
    case keep(BoxSpec)
    case grow(left: Double, top: Double, right: Double, bottom: Double)

    public init(parsing text: String) throws {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.lowercased().hasPrefix("grow:") {
            let parts = t.dropFirst(5).split(separator: ",", omittingEmptySubsequences: false).map {
                Double($0.trimmingCharacters(in: .whitespaces))
            }
            guard parts.count == 4, parts.allSatisfy({ $0 != nil && $0! >= 0 && $0!.isFinite }) else {
                throw GeometryError.invalid("outpaint '\(text)': expected grow:l,t,r,b with 4 non-negative numbers")
            }
            let v = parts.map { $0! }
            guard v.contains(where: { $0 > 0 }) else { throw GeometryError.invalid("outpaint '\(text)': all margins are 0") }
            self = .grow(left: v[0], top: v[1], right: v[2], bottom: v[3])
        } else {
            self = .keep(try BoxSpec(parsing: t))
        }
    }

    /// For `.grow`: the new canvas (the image placed inside with edge-replicated margins) and the mask of the margins.
    /// With `square`, the canvas is further extended (evenly on both sides of its shorter dimension) to a square,
    /// so that the centre crop to the model frame keeps every margin; the extra area is regenerated too.
    public func grownCanvas(_ image: Image8, square: Bool = false) throws -> (image: Image8, mask: PixelMask)? {
        guard case let .grow(l, t, r, b) = self else { return nil }
        let frac = [l, t, r, b].allSatisfy { $0 <= 1 }
        func px(_ v: Double, _ n: Int) -> Int { Int((frac ? v * Double(n) : v).rounded()) }
        var (li, ti, ri, bi) = (px(l, image.width), px(t, image.height), px(r, image.width), px(b, image.height))
        if square {
            let w0 = image.width + li + ri, h0 = image.height + ti + bi
            if w0 > h0 { ti += (w0 - h0) / 2; bi += (w0 - h0) - (w0 - h0) / 2 }
            if h0 > w0 { li += (h0 - w0) / 2; ri += (h0 - w0) - (h0 - w0) / 2 }
        }
        let w = image.width + li + ri, h = image.height + ti + bi
        guard w <= 16384, h <= 16384 else { throw GeometryError.invalid("outpaint: canvas \(w)x\(h) is too large") }
        let canvas = image.onCanvas(width: w, height: h, x: li, y: ti)
        let mask = try PixelMask.rectangle(
            width: w, height: h, x0: Double(li), y0: Double(ti),
            x1: Double(li + image.width), y1: Double(ti + image.height), regenerateInside: false)
        return (canvas, mask)
    }
}
