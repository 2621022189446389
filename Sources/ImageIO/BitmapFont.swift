import Foundation

/// A 5x7 pixel font (capitals, digits and a little punctuation; lower case is drawn as capitals) so grids and
/// compare strips can carry class names and captions without a font library.
public enum BitmapFont {
    public static let glyphWidth = 5, glyphHeight = 7, advance = 6

    /// Rows of 5 bits, most significant bit = leftmost pixel.
    static let glyphs: [Character: [UInt8]] = [
        "A": [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11], "B": [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        "C": [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E], "D": [0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E],
        "E": [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F], "F": [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        "G": [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F], "H": [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        "I": [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E], "J": [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        "K": [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11], "L": [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        "M": [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11], "N": [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        "O": [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], "P": [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        "Q": [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D], "R": [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        "S": [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E], "T": [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        "U": [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], "V": [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        "W": [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A], "X": [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        "Y": [0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04], "Z": [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        "0": [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E], "1": [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        "2": [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F], "3": [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        "4": [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02], "5": [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        "6": [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E], "7": [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        "8": [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E], "9": [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        " ": [0, 0, 0, 0, 0, 0, 0], "-": [0, 0, 0, 0x1F, 0, 0, 0], "_": [0, 0, 0, 0, 0, 0, 0x1F],
        ".": [0, 0, 0, 0, 0, 0x0C, 0x0C], ":": [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0], ",": [0, 0, 0, 0, 0x0C, 0x04, 0x08],
        "/": [0x01, 0x02, 0x02, 0x04, 0x08, 0x08, 0x10], "(": [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ")": [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08], "=": [0, 0, 0x1F, 0, 0x1F, 0, 0],
        "?": [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04], "+": [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0],
        "±": [0x04, 0x04, 0x1F, 0x04, 0x04, 0, 0x1F], "%": [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        "*": [0, 0x04, 0x15, 0x0E, 0x15, 0x04, 0], "'": [0x04, 0x04, 0x08, 0, 0, 0, 0],
    ]

    /// Width in pixels of `text` at `scale`.
    public static func width(_ text: String, scale: Int = 1) -> Int {
        text.isEmpty ? 0 : (text.count * advance - 1) * scale
    }

    /// Draws `text` into an RGB image with its top-left corner at (x, y); pixels outside the image are skipped.
    public static func draw(
        _ text: String, into image: inout Image8, x: Int, y: Int, scale: Int = 1,
        colour: [UInt8] = [255, 255, 255]
    ) {
        precondition(image.channels == 3 && colour.count == 3 && scale >= 1)
        for (k, ch) in text.uppercased().enumerated() {
            let rows = glyphs[ch] ?? glyphs["?"]!
            for (r, bits) in rows.enumerated() {
                for c in 0..<glyphWidth where bits & (0x10 >> UInt8(c)) != 0 {
                    for dy in 0..<scale {
                        for dx in 0..<scale {
                            let px = x + (k * advance + c) * scale + dx, py = y + r * scale + dy
                            guard px >= 0, py >= 0, px < image.width, py < image.height else { continue }
                            let o = (py * image.width + px) * 3
                            image.pixels[o] = colour[0]; image.pixels[o + 1] = colour[1]; image.pixels[o + 2] = colour[2]
                        }
                    }
                }
            }
        }
    }
}

extension Image8 {
    /// Enlarged by an integer factor with nearest-neighbour sampling (every pixel becomes a factor x factor block),
    /// so a 64-pixel result stays crisp when shown large.
    public func scaledNearest(_ factor: Int) -> Image8 {
        precondition(factor >= 1)
        guard factor > 1 else { return self }
        let w = width * factor, h = height * factor
        var px = [UInt8](repeating: 0, count: w * h * channels)
        for y in 0..<h {
            let sy = y / factor
            for x in 0..<w {
                let s = (sy * width + x / factor) * channels, d = (y * w + x) * channels
                for c in 0..<channels { px[d + c] = pixels[s + c] }
            }
        }
        return Image8(width: w, height: h, channels: channels, pixels: px)
    }
}

/// Grids and strips with captions, for people to look at (sample grids, edit compare strips).
public enum CaptionedLayout {
    /// One row per labelled group: the label on the left (white on black), then the row's images, `padding`
    /// black pixels around every cell. Rows may differ in length; all images must share one size.
    public static func rows(_ rows: [(label: String, images: [Image8])], padding: Int = 2) throws -> Image8 {
        let all = rows.flatMap(\.images).map { $0.converted(channels: 3) }
        guard let first = all.first else { throw ImageError.invalidArgument("a labelled grid needs at least one image") }
        for im in all where im.width != first.width || im.height != first.height {
            throw ImageError.invalidArgument("grid images differ in size: \(im.width)x\(im.height) vs \(first.width)x\(first.height)")
        }
        let scale = max(1, first.height / 64)
        let labelW = (rows.map { BitmapFont.width($0.label, scale: scale) }.max() ?? 0) + 4 * scale
        let perRow = rows.map(\.images.count).max() ?? 0
        let cellW = first.width + padding, cellH = first.height + padding
        let w = labelW + perRow * cellW + padding, h = rows.count * cellH + padding
        var out = Image8(width: w, height: h, channels: 3, pixels: [UInt8](repeating: 0, count: w * h * 3))
        var k = 0
        for (r, row) in rows.enumerated() {
            let y0 = padding + r * cellH
            BitmapFont.draw(
                row.label, into: &out, x: 2 * scale, y: y0 + (first.height - BitmapFont.glyphHeight * scale) / 2,
                scale: scale)
            for c in 0..<row.images.count {
                paste(all[k], into: &out, x: labelW + padding + c * cellW, y: y0)
                k += 1
            }
        }
        return out
    }

    /// Images side by side, each enlarged by `factor` (nearest neighbour), a caption above each (white band),
    /// 2-pixel white gaps.
    public static func strip(_ images: [Image8], captions: [String], factor: Int) -> Image8 {
        precondition(captions.count == images.count && factor >= 1)
        let big = images.map { $0.converted(channels: 3).scaledNearest(factor) }
        let textScale = max(1, factor / 2), gap = 2
        let band = BitmapFont.glyphHeight * textScale + 6
        let h = (big.map(\.height).max() ?? 0) + band
        let w = big.map(\.width).reduce(0, +) + gap * max(0, big.count - 1)
        var out = Image8(width: w, height: h, channels: 3, pixels: [UInt8](repeating: 255, count: w * h * 3))
        var x0 = 0
        for (im, caption) in zip(big, captions) {
            BitmapFont.draw(caption, into: &out, x: x0 + 3, y: 3, scale: textScale, colour: [0, 0, 0])
            paste(im, into: &out, x: x0, y: band)
            x0 += im.width + gap
        }
        return out
    }

    static func paste(_ im: Image8, into out: inout Image8, x: Int, y: Int) {
        let rowLen = im.width * 3
        for r in 0..<im.height {
            let d = ((y + r) * out.width + x) * 3
            out.pixels.replaceSubrange(d..<d + rowLen, with: im.pixels[r * rowLen..<(r + 1) * rowLen])
        }
    }
}
