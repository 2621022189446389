import Foundation
import ImageIO
import XCTest

/// Decompression bombs: a small file declaring a huge image is refused from its header, before any pixel
/// buffer exists, with the limit and how to raise it in the message.
final class ImageLimitTests: XCTestCase {
    let small = Image8(width: 16, height: 8, channels: 3, pixels: (0..<(16 * 8 * 3)).map { UInt8($0 % 251) })

    /// CRC-32 (zlib's polynomial) of a PNG chunk's type + data.
    func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xffff_ffff
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c >> 1) ^ (c & 1 == 1 ? 0xedb8_8320 : 0) }
        }
        return ~c
    }

    func testPNGDeclaring30000SquaredIsRefused() throws {
        var png = [UInt8](try PNG.encode(small))
        // IHDR starts at byte 8: length (4), "IHDR" (4), width (4), height (4), ... crc after 13 data bytes.
        for (i, v) in [(16, UInt32(30000)), (20, UInt32(30000))] {
            png.replaceSubrange(i..<(i + 4), with: withUnsafeBytes(of: v.bigEndian, Array.init))
        }
        let crc = crc32(Array(png[12..<29]))
        png.replaceSubrange(29..<33, with: withUnsafeBytes(of: crc.bigEndian, Array.init))
        XCTAssertThrowsError(try PNG.decode(Data(png), source: "bomb.png")) { e in
            XCTAssertTrue(
                "\(e)".contains("bomb.png") && "\(e)".contains("900000000 pixels") && "\(e)".contains("VARLAB_MAX_PIXELS"), "\(e)")
        }
    }

    func testJPEGDeclaring30000SquaredIsRefused() throws {
        var jpg = [UInt8](try JPEG.encode(small))
        // SOF0 (FF C0): length (2), precision (1), height (2), width (2).
        let sof = try XCTUnwrap((0..<(jpg.count - 1)).first { jpg[$0] == 0xFF && jpg[$0 + 1] == 0xC0 })
        for off in [sof + 5, sof + 7] { jpg[off] = 0x75; jpg[off + 1] = 0x30 }  // 30000
        XCTAssertThrowsError(try JPEG.decode(Data(jpg), source: "bomb.jpg")) { e in
            XCTAssertTrue("\(e)".contains("bomb.jpg") && "\(e)".contains("900000000 pixels"), "\(e)")
        }
    }

    func testTheLimitIsAdjustable() throws {
        let saved = ImageLimits.maxPixels
        defer { ImageLimits.maxPixels = saved }
        ImageLimits.maxPixels = 100
        XCTAssertThrowsError(try PNG.decode(try PNG.encode(small))) { XCTAssertTrue("\($0)".contains("limit of 100"), "\($0)") }
        XCTAssertThrowsError(try JPEG.decode(try JPEG.encode(small))) { XCTAssertTrue("\($0)".contains("limit of 100"), "\($0)") }
        ImageLimits.maxPixels = 128
        XCTAssertEqual(try PNG.decode(try PNG.encode(small)), small)
    }
}
