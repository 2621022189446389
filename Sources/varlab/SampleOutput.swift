import Foundation
import ImageIO
import ModelIO

/// Where `sample` writes: a grid PNG, a directory of PNGs, or an ADM-layout `.npz`. Every file is written
/// atomically (temporary file + rename), and the destination is checked before any sampling starts.
enum SampleOutput {
    case grid(String)
    case directory(String)
    case npz(String)

    init(path: String) throws {
        let lower = path.lowercased()
        if path.hasSuffix("/") || (try? FileManager.default.attributesOfItem(atPath: path)[.type] as? FileAttributeType) == .typeDirectory {
            self = .directory(path)
        } else if lower.hasSuffix(".npz") {
            self = .npz(path)
        } else if lower.hasSuffix(".png") {
            self = .grid(path)
        } else {
            throw SampleOutputError("-o \(path): expected out.png (grid), a directory ending in '/', or samples.npz")
        }
    }

    /// Fails early (before hours of sampling) if the destination cannot be written.
    func prepare() throws {
        switch self {
        case .directory(let d):
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
            guard FileManager.default.isWritableFile(atPath: d) else { throw SampleOutputError("-o \(d): directory is not writable") }
        case .grid(let p), .npz(let p):
            let dir = URL(fileURLWithPath: p).deletingLastPathComponent().path
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue,
                  FileManager.default.isWritableFile(atPath: dir) else {
                throw SampleOutputError("-o \(p): directory \(dir) does not exist or is not writable")
            }
        }
    }

    /// One PNG per image, named class{C}_{index}_seed{S}.png (the names `varlab eval` reads labels from), written as soon as its batch is done.
    static func fileName(classLabel: Int, index: Int, seed: UInt64) -> String {
        String(format: "class%04d_%06d_seed%llu.png", classLabel, index, seed)
    }

    static func writePNG(_ image: Image8, to path: String) throws {
        try AtomicFile.write(try encodePNG(image), to: path)
    }

    /// Images tiled `nrow` per row with a 2-pixel black border (torchvision make_grid defaults).
    static func grid(_ images: [Image8], nrow: Int? = nil, padding: Int = 2) -> Image8 {
        let n = images.count
        let cols = nrow ?? Int(Double(n).squareRoot().rounded(.up))
        let rows = (n + cols - 1) / cols
        let (w, h, c) = (images[0].width, images[0].height, images[0].channels)
        let gw = cols * (w + padding) + padding, gh = rows * (h + padding) + padding
        var px = [UInt8](repeating: 0, count: gw * gh * c)
        for (i, im) in images.enumerated() {
            let x0 = padding + (i % cols) * (w + padding), y0 = padding + (i / cols) * (h + padding)
            for y in 0..<h {
                let dst = ((y0 + y) * gw + x0) * c
                px.replaceSubrange(dst..<(dst + w * c), with: im.pixels[(y * w * c)..<((y + 1) * w * c)])
            }
        }
        return Image8(width: gw, height: gh, channels: c, pixels: px)
    }

    /// ADM evaluator layout: arr_0 uint8 [N, H, W, 3], arr_1 int64 labels [N].
    static func writeNPZ(_ images: [Image8], labels: [Int], to path: String) throws {
        guard let first = images.first else { throw SampleOutputError("no images to write to \(path)") }
        var px: [UInt8] = []
        px.reserveCapacity(images.count * first.pixels.count)
        for im in images { px += im.pixels }
        var w = NPZWriter()
        w.add("arr_0", try NPYArray(uint8: px, shape: [images.count, first.height, first.width, first.channels]))
        w.add("arr_1", try NPYArray(int64: labels.map { Int64($0) }, shape: [labels.count]))
        try w.write(to: path)
    }

    // MARK: PNG encoding (stopgap until ImageIO's libpng encoder is on main: stored deflate blocks, valid PNG)

    static func encodePNG(_ im: Image8) throws -> Data {
        let colorType: UInt8
        switch im.channels { case 1: colorType = 0; case 3: colorType = 2; case 4: colorType = 6
        default: throw SampleOutputError("cannot write a \(im.channels)-channel PNG") }
        var raw = [UInt8]()
        raw.reserveCapacity((im.width * im.channels + 1) * im.height)
        let stride = im.width * im.channels
        for y in 0..<im.height { raw.append(0); raw += im.pixels[(y * stride)..<((y + 1) * stride)] }
        var z: [UInt8] = [0x78, 0x01]
        var pos = 0
        repeat {
            let n = min(65535, raw.count - pos)
            let final: UInt8 = pos + n >= raw.count ? 1 : 0
            z += [final, UInt8(n & 0xff), UInt8(n >> 8), UInt8(~n & 0xff), UInt8((~n >> 8) & 0xff)]
            z += raw[pos..<(pos + n)]
            pos += n
        } while pos < raw.count
        var a: UInt32 = 1, b: UInt32 = 0
        for v in raw { a = (a + UInt32(v)) % 65521; b = (b + a) % 65521 }
        z += be32((b << 16) | a)
        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        func chunk(_ type: String, _ body: [UInt8]) {
            out += be32(UInt32(body.count))
            let t = Array(type.utf8)
            out += t + body
            out += be32(crc32(t + body))
        }
        chunk("IHDR", be32(UInt32(im.width)) + be32(UInt32(im.height)) + [8, colorType, 0, 0, 0])
        chunk("IDAT", z)
        chunk("IEND", [])
        return Data(out)
    }

    private static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }

    private static let crcTable: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    private static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for v in bytes { c = crcTable[Int((c ^ UInt32(v)) & 0xff)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}

struct SampleOutputError: Error, CustomStringConvertible {
    let description: String
    init(_ s: String) { description = s }
}
