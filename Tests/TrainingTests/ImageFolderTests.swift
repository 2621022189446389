import Foundation
import ImageIO
import Tensor
import Training
import XCTest

/// `--data imagefolder:PATH` with a stand-in decoder (files whose text starts "WxH" decode to a W x H gradient,
/// anything else is unreadable), so the folder logic is tested without codecs.
final class ImageFolderTests: XCTestCase {
    func makeRoot(_ layout: [String: [String: String]]) throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("varlab-if-\(getpid())-\(UUID().uuidString)")
        for (cls, files) in layout {
            let dir = root.appendingPathComponent(cls)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            for (name, text) in files { try Data(text.utf8).write(to: dir.appendingPathComponent(name)) }
        }
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        return root.path
    }

    static func fakeDecode(_ path: String) throws -> Image8 {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        let parts = text.split(separator: "x").compactMap { Int($0) }
        guard parts.count == 2 else { throw TrainingError.data("unreadable \(path)") }
        let (w, h) = (parts[0], parts[1])
        var px = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h { for x in 0..<w { for c in 0..<3 { px[(y * w + x) * 3 + c] = UInt8((x * 255) / max(w - 1, 1)) } } }
        return Image8(width: w, height: h, channels: 3, pixels: px)
    }

    func testClassesFromSortedSubfoldersResizeCropAndSkips() throws {
        let root = try makeRoot([
            "b_dog": ["1.png": "40x20", "2.jpg": "10x10", "bad.png": "garbage"],
            "a_cat": ["x.JPEG": "16x16", "notes.txt": "16x16"],
        ])
        let src = try ImageFolderSource(root: root, size: 8, decode: ImageFolderTests.fakeDecode)
        XCTAssertEqual(src.classNames, ["a_cat", "b_dog"])
        XCTAssertEqual(src.count, 3, "txt ignored, bad.png skipped")
        XCTAssertEqual(src.skipped.count, 1)
        XCTAssertTrue(src.summary.contains("1 unreadable"))
        let (x, y) = src.batch([0, 1, 2])
        XCTAssertEqual(x.shape, [3, 3, 8, 8])
        XCTAssertEqual(y, [0, 1, 1])
        // 40x20 -> scaled to 16x8, center crop 8x8: the middle of a left-to-right ramp, so values stay inside (-1, 1).
        let row = (0..<8).map { x.data[1 * 192 + $0] }
        XCTAssertGreaterThan(row.min()!, -0.9); XCTAssertLessThan(row.max()!, 0.9)
        XCTAssertEqual(row, row.sorted(), "ramp kept in order")
    }

    func testNoClassesAndNothingReadableAreErrors() throws {
        let empty = try makeRoot([:])
        XCTAssertThrowsError(try ImageFolderSource(root: empty, size: 8, decode: ImageFolderTests.fakeDecode)) { e in
            XCTAssertTrue("\(e)".contains("no class sub-folders"), "\(e)")
        }
        let bad = try makeRoot(["a": ["1.png": "nope", "2.png": "??"]])
        XCTAssertThrowsError(try ImageFolderSource(root: bad, size: 8, decode: ImageFolderTests.fakeDecode)) { e in
            XCTAssertTrue("\(e)".contains("no readable") && "\(e)".contains("2 unreadable"), "\(e)")
        }
        XCTAssertThrowsError(try ImageFolderSource(root: "/nonexistent/varlab", size: 8, decode: ImageFolderTests.fakeDecode))
    }
}
