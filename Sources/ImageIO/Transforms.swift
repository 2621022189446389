import Foundation

extension Image8 {
    /// 3-channel RGB: gray is replicated, RGBA drops alpha (PIL `convert("RGB")`, which the official
    /// loaders apply to every image, also ignores alpha rather than compositing).
    public func toRGB() -> Image8 {
        switch channels {
        case 3: return self
        case 1:
            var px = [UInt8](repeating: 0, count: width * height * 3)
            for i in 0..<(width * height) { let v = pixels[i]; px[3 * i] = v; px[3 * i + 1] = v; px[3 * i + 2] = v }
            return Image8(width: width, height: height, channels: 3, pixels: px)
        default:
            var px = [UInt8](repeating: 0, count: width * height * 3)
            for i in 0..<(width * height) { for c in 0..<3 { px[3 * i + c] = pixels[channels * i + min(c, channels - 1)] } }
            return Image8(width: width, height: height, channels: 3, pixels: px)
        }
    }

    /// The `w` x `h` window whose top-left corner is (x, y); it must lie inside the image.
    public func cropped(x: Int, y: Int, width w: Int, height h: Int) throws -> Image8 {
        guard x >= 0, y >= 0, w > 0, h > 0, x + w <= width, y + h <= height else {
            throw ImageError.invalidArgument("crop \(w)x\(h) at (\(x), \(y)) does not fit a \(width)x\(height) image")
        }
        var px = [UInt8](repeating: 0, count: w * h * channels)
        let rowLen = w * channels
        for r in 0..<h {
            let s = ((y + r) * width + x) * channels
            px.replaceSubrange(r * rowLen..<(r + 1) * rowLen, with: pixels[s..<s + rowLen])
        }
        return Image8(width: w, height: h, channels: channels, pixels: px)
    }

    /// torchvision `CenterCrop((h, w))`: top = round((H - h) / 2), left = round((W - w) / 2) with Python's
    /// round-half-to-even. The crop must fit (torchvision would pad; the pipelines never need it).
    public func centerCropped(width w: Int, height h: Int) throws -> Image8 {
        let top = Int((Double(height - h) / 2).rounded(.toNearestOrEven))
        let left = Int((Double(width - w) / 2).rounded(.toNearestOrEven))
        return try cropped(x: left, y: top, width: w, height: h)
    }

    /// torchvision `Resize(size)` with an int size on a PIL image: the shorter side becomes `size`, the longer
    /// `int(size * long / short)` (truncated), resampled with PIL's `filter`.
    public func resizedShorterSide(to size: Int, filter: ResampleFilter) throws -> Image8 {
        guard size > 0, width > 0, height > 0 else {
            throw ImageError.invalidArgument("cannot resize \(width)x\(height) to shorter side \(size)")
        }
        let short = min(width, height), long = max(width, height)
        let newLong = Int(Double(size * long) / Double(short))
        let (w, h) = width <= height ? (size, newLong) : (newLong, size)
        return try resized(width: w, height: h, filter: filter)
    }
}

/// The official preprocessing pipelines, on 8-bit images (convert to RGB first).
public enum Preprocess {
    /// VAR `utils/data.py` (validation): `Resize(round(1.125 * reso), LANCZOS)` (shorter side), then
    /// `CenterCrop((reso, reso))`. (Training uses RandomCrop instead of the center crop.)
    public static func varCenterCrop(_ image: Image8, resolution reso: Int, midRatio: Double = 1.125) throws -> Image8 {
        let mid = Int((midRatio * Double(reso)).rounded(.toNearestOrEven))
        return try image.toRGB().resizedShorterSide(to: mid, filter: .lanczos).centerCropped(width: reso, height: reso)
    }

    /// ADM's `center_crop_arr` (used by DiT's train.py and the evaluator's reference batches): halve with BOX
    /// while the shorter side is >= 2 * size, resize so the shorter side is `size` (each side
    /// round(side * size / short), Python rounding) with BICUBIC, then crop at ((H - size) // 2, (W - size) // 2).
    public static func admCenterCrop(_ image: Image8, size: Int) throws -> Image8 {
        guard size > 0 else { throw ImageError.invalidArgument("crop size \(size)") }
        var img = image.toRGB()
        while min(img.width, img.height) >= 2 * size {
            img = try img.resized(width: img.width / 2, height: img.height / 2, filter: .box)
        }
        let scale = Double(size) / Double(min(img.width, img.height))
        let w = Int((Double(img.width) * scale).rounded(.toNearestOrEven))
        let h = Int((Double(img.height) * scale).rounded(.toNearestOrEven))
        img = try img.resized(width: w, height: h, filter: .bicubic)
        return try img.cropped(x: (img.width - size) / 2, y: (img.height - size) / 2, width: size, height: size)
    }
}

/// A grid of equally sized images like torchvision `make_grid(..., nrow, padding, pad_value)`: `nrow` images
/// per row, every image framed by `padding` pixels of `padValue` (the border between two images is `padding`
/// wide, as in torchvision: each cell is size + padding, plus one extra padding at the right / bottom).
public enum ImageGrid {
    public static func make(_ images: [Image8], nrow: Int = 8, padding: Int = 2, padValue: UInt8 = 0) throws -> Image8 {
        guard let first = images.first else { throw ImageError.invalidArgument("make_grid needs at least one image") }
        guard nrow > 0, padding >= 0 else { throw ImageError.invalidArgument("nrow \(nrow), padding \(padding)") }
        for im in images where im.width != first.width || im.height != first.height || im.channels != first.channels {
            throw ImageError.invalidArgument(
                "grid images differ in size: \(im.width)x\(im.height)x\(im.channels) vs \(first.width)x\(first.height)x\(first.channels)")
        }
        let xmaps = min(nrow, images.count)
        let ymaps = (images.count + xmaps - 1) / xmaps
        let cellW = first.width + padding, cellH = first.height + padding
        let W = cellW * xmaps + padding, H = cellH * ymaps + padding
        let c = first.channels
        var px = [UInt8](repeating: padValue, count: W * H * c)
        for (k, im) in images.enumerated() {
            let gx = (k % xmaps) * cellW + padding, gy = (k / xmaps) * cellH + padding
            let rowLen = im.width * c
            for r in 0..<im.height {
                let d = ((gy + r) * W + gx) * c
                px.replaceSubrange(d..<d + rowLen, with: im.pixels[r * rowLen..<(r + 1) * rowLen])
            }
        }
        return Image8(width: W, height: H, channels: c, pixels: px)
    }
}
