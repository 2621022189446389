import CJPEG
import Foundation
import ModelIO

/// JPEG through libjpeg(-turbo) with its default decoder settings (islow DCT, fancy upsampling), which is what
/// PIL uses, so decoded pixels match PIL's for the same library version. Gray JPEGs decode to 1 channel,
/// everything else to RGB; CMYK is refused. libjpeg errors (and a truncated file, which libjpeg itself would
/// only warn about) become thrown errors via the setjmp wrapper in Sources/CJPEG/shim.h.
public enum JPEG {
    public static func decode(_ data: Data, source: String = "memory") throws -> Image8 {
        guard data.count >= 3, data[data.startIndex] == 0xFF, data[data.startIndex + 1] == 0xD8 else {
            throw ImageError.decode(source: source, format: "JPEG", reason: "not a JPEG file (no SOI marker)")
        }
        var px: UnsafeMutablePointer<UInt8>?
        var w: Int32 = 0, h: Int32 = 0, c: Int32 = 0
        var msg = [CChar](repeating: 0, count: 512)
        let rc = data.withUnsafeBytes { raw -> Int32 in
            varlab_jpeg_decode(
                raw.bindMemory(to: UInt8.self).baseAddress!, UInt(raw.count), UInt64(ImageLimits.maxPixels),
                &px, &w, &h, &c, &msg, Int32(msg.count))
        }
        guard rc == 0, let px else { throw ImageError.decode(source: source, format: "JPEG", reason: String(cString: msg)) }
        defer { free(px) }
        let n = Int(w) * Int(h) * Int(c)
        return Image8(width: Int(w), height: Int(h), channels: Int(c), pixels: Array(UnsafeBufferPointer(start: px, count: n)))
    }

    public static func read(path: String) throws -> Image8 {
        try decode(try readFile(path), source: path)
    }

    /// JPEG bytes of a gray or RGB image (RGBA: the alpha channel is dropped, as PIL's convert("RGB") does).
    /// `quality` 1...100; `subsample420` = chroma subsampling 4:2:0 (libjpeg's and PIL's default) or 4:4:4.
    public static func encode(_ image: Image8, quality: Int = 95, subsample420: Bool = true) throws -> Data {
        let img = image.channels == 4 ? image.toRGB() : image
        guard img.channels == 1 || img.channels == 3 else {
            throw ImageError.invalidArgument("JPEG needs 1 or 3 channels, got \(image.channels)")
        }
        guard (1...100).contains(quality) else { throw ImageError.invalidArgument("JPEG quality \(quality) is outside 1...100") }
        guard img.width > 0, img.height > 0, img.width <= 65500, img.height <= 65500 else {
            throw ImageError.invalidArgument("cannot encode a \(img.width)x\(img.height) JPEG (limit 65500)")
        }
        var out: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        var msg = [CChar](repeating: 0, count: 512)
        let rc = img.pixels.withUnsafeBufferPointer { p in
            varlab_jpeg_encode(
                p.baseAddress, Int32(img.width), Int32(img.height), Int32(img.channels), Int32(quality),
                subsample420 ? 1 : 0, &out, &size, &msg, Int32(msg.count))
        }
        guard rc == 0, let out else { throw ImageError.encode(path: "memory", format: "JPEG", reason: String(cString: msg)) }
        defer { free(out) }
        return Data(bytes: out, count: Int(size))
    }

    /// Writes `image` as JPEG atomically (temporary file + rename).
    public static func write(_ image: Image8, to path: String, quality: Int = 95, subsample420: Bool = true) throws {
        try AtomicFile.write(try encode(image, quality: quality, subsample420: subsample420), to: path)
    }
}

/// Reading and writing by file content / extension.
public enum ImageFile {
    /// Decodes a PNG or JPEG, recognised by its first bytes (not the extension).
    public static func read(path: String) throws -> Image8 {
        let d = try readFile(path)
        let b = [UInt8](d.prefix(8))
        if b.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return try PNG.decode(d, source: path) }
        if b.starts(with: [0xFF, 0xD8]) { return try JPEG.decode(d, source: path) }
        throw ImageError.unsupported(
            source: path, reason: "neither PNG nor JPEG (first bytes \(b.map { String(format: "%02x", $0) }.joined()))")
    }

    /// Writes PNG for .png, JPEG for .jpg/.jpeg (quality 95), atomically.
    public static func write(_ image: Image8, to path: String) throws {
        switch URL(fileURLWithPath: path).pathExtension.lowercased() {
        case "png": try PNG.write(image, to: path)
        case "jpg", "jpeg": try JPEG.write(image, to: path)
        case let ext: throw ImageError.unsupported(source: path, reason: "unknown image extension '.\(ext)' (use .png, .jpg or .jpeg)")
        }
    }
}
