import ImageIO
import Metrics
import Tensor
import XCTest

/// Folders of real PNG/JPEG files (decoded by ImageIO), as `varlab eval` reads them.
final class FolderInputTests: XCTestCase {
    func testPNGFolderWithMixedSizesAndGray() throws {
        ImageSet.readImage = { try ImageFile.read(path: $0) }
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("varlab-folder-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        let a = Image8(width: 4, height: 3, channels: 3, pixels: (0..<36).map { UInt8($0 * 7 % 256) })
        let b = Image8(width: 5, height: 5, channels: 1, pixels: (0..<25).map { UInt8($0 * 9) })
        try PNG.write(a, to: d.appendingPathComponent("class3_000000.png").path)
        try PNG.write(b, to: d.appendingPathComponent("class9_000001.png").path)
        let set = try ImageSet(paths: [d.path])
        XCTAssertEqual(set.count, 2)
        XCTAssertEqual(set.labels, [3, 9])
        var got: [Image8] = []
        try set.forEachBatch(8) { got += $0 }
        XCTAssertEqual(got[0], a)
        XCTAssertEqual(got[1].channels, 3)
        XCTAssertEqual(Array(got[1].pixels.prefix(6)), [0, 0, 0, 9, 9, 9])
        XCTAssertTrue(set.notes.contains { $0.contains("different sizes") })
        XCTAssertTrue(set.notes.contains { $0.contains("grayscale") })
        // A file that is not an image is a clear error naming it.
        try Data("not a png".utf8).write(to: d.appendingPathComponent("class1_000002.png"))
        let bad = try ImageSet(paths: [d.path])
        XCTAssertThrowsError(try bad.forEachBatch(8) { _ in }) { XCTAssertTrue("\($0)".contains("class1_000002.png")) }
    }
}
