import CPNG
import Foundation
import ModelIO

/// PNG through libpng. Decoding (Sources/CPNG/shim.h) returns the stored pixels without gamma conversion:
/// 8-bit gray -> 1 channel, RGB / palette -> 3, anything with alpha (incl. tRNS, gray+alpha) -> 4 (RGBA);
/// 16-bit samples keep their high byte. Encoding writes 8-bit gray / RGB / RGBA as stored.
public enum PNG {
    public static func decode(_ data: Data, source: String = "memory") throws -> Image8 {
        var px: UnsafeMutablePointer<UInt8>?
        var w: Int32 = 0, h: Int32 = 0, c: Int32 = 0
        var msg = [CChar](repeating: 0, count: 512)
        let rc = data.withUnsafeBytes { raw -> Int32 in
            guard let base = raw.bindMemory(to: UInt8.self).baseAddress else { return -1 }
            return varlab_png_decode(base, raw.count, UInt64(ImageLimits.maxPixels), &px, &w, &h, &c, &msg, Int32(msg.count))
        }
        if rc == -1 { throw ImageError.decode(source: source, format: "PNG", reason: "empty file") }
        guard rc == 0, let px else {
            throw ImageError.decode(source: source, format: "PNG", reason: String(cString: msg))
        }
        defer { free(px) }
        let n = Int(w) * Int(h) * Int(c)
        return Image8(width: Int(w), height: Int(h), channels: Int(c), pixels: Array(UnsafeBufferPointer(start: px, count: n)))
    }

    public static func read(path: String) throws -> Image8 {
        try decode(try readFile(path), source: path)
    }

    /// PNG bytes of `image` (1, 3 or 4 channels). Compression level is libpng's default.
    public static func encode(_ image: Image8) throws -> Data {
        let format: UInt32
        switch image.channels {
        case 1: format = UInt32(PNG_FORMAT_GRAY)
        case 3: format = UInt32(PNG_FORMAT_RGB)
        case 4: format = UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA)
        default: throw ImageError.invalidArgument("PNG needs 1, 3 or 4 channels, got \(image.channels)")
        }
        guard image.width > 0, image.height > 0, image.width < Int(Int32.max) / 4 else {
            throw ImageError.invalidArgument("cannot encode a \(image.width)x\(image.height) image")
        }
        var img = png_image()
        img.version = UInt32(PNG_IMAGE_VERSION)
        img.width = UInt32(image.width)
        img.height = UInt32(image.height)
        img.format = format
        let stride = Int32(image.width * image.channels)
        var size: Int = 0
        let ok1 = image.pixels.withUnsafeBytes { p in
            png_image_write_to_memory(&img, nil, &size, 0, p.baseAddress, stride, nil)
        }
        guard ok1 != 0, size > 0 else { throw encodeError(&img) }
        var out = Data(count: size)
        let ok2 = out.withUnsafeMutableBytes { o in
            image.pixels.withUnsafeBytes { p in
                png_image_write_to_memory(&img, o.baseAddress, &size, 0, p.baseAddress, stride, nil)
            }
        }
        guard ok2 != 0 else { throw encodeError(&img) }
        png_image_free(&img)
        return out.prefix(size)
    }

    private static func encodeError(_ img: inout png_image) -> ImageError {
        let m = withUnsafeBytes(of: &img.message) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
        png_image_free(&img)
        return ImageError.encode(path: "memory", format: "PNG", reason: m)
    }

    /// Writes `image` as PNG atomically (temporary file + rename).
    public static func write(_ image: Image8, to path: String) throws {
        try AtomicFile.write(try encode(image), to: path)
    }
}

func readFile(_ path: String) throws -> Data {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
        throw ImageError.cannotOpen(path: path, reason: "no such file")
    }
    if isDir.boolValue { throw ImageError.cannotOpen(path: path, reason: "is a directory") }
    do {
        return try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)
    } catch {
        throw ImageError.cannotOpen(path: path, reason: error.localizedDescription)
    }
}
