import Foundation
import ModelIO
import XCTest

final class NPZConcatenateTests: XCTestCase {
    private func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("npzcat-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    private func writeShard(_ path: String, images: [UInt8], n: Int, h: Int, labels: [Int64]) throws {
        var w = NPZWriter()
        w.add("arr_0", try NPYArray(uint8: images, shape: [n, h, 2, 3]))
        w.add("arr_1", try NPYArray(int64: labels, shape: [labels.count]))
        try w.write(to: path)
    }

    func testShardsJoinInOrderWithLabelsPaired() throws {
        let d = try tempDir()
        let a: [UInt8] = (0..<36).map { (i: Int) -> UInt8 in UInt8(i) }
        let b: [UInt8] = (0..<54).map { (i: Int) -> UInt8 in UInt8(200 - i) }
        try writeShard(d.appendingPathComponent("a.npz").path, images: a, n: 2, h: 3, labels: [4, 5])
        try writeShard(d.appendingPathComponent("b.npz").path, images: b, n: 3, h: 3, labels: [6, 7, 8])
        let out = d.appendingPathComponent("all.npz").path
        try NPZConcatenate.run(inputs: [d.appendingPathComponent("a.npz").path, d.appendingPathComponent("b.npz").path], to: out)
        let m = try NPZFile(path: out)
        XCTAssertEqual(m.keys, ["arr_0", "arr_1"])
        XCTAssertEqual(try m.array("arr_0").shape, [5, 3, 2, 3])
        XCTAssertEqual(try m.array("arr_0").asUInt8(), a + b)
        XCTAssertEqual(try m.array("arr_1").asInt64(), [4, 5, 6, 7, 8])
    }

    func testMismatchedShardsAreRefusedAndNothingIsWritten() throws {
        let d = try tempDir()
        try writeShard(d.appendingPathComponent("a.npz").path, images: [UInt8](repeating: 1, count: 2 * 3 * 6), n: 2, h: 3, labels: [0, 1])
        try writeShard(d.appendingPathComponent("b.npz").path, images: [UInt8](repeating: 1, count: 1 * 4 * 6), n: 1, h: 4, labels: [0])
        let out = d.appendingPathComponent("all.npz").path
        XCTAssertThrowsError(
            try NPZConcatenate.run(inputs: [d.appendingPathComponent("a.npz").path, d.appendingPathComponent("b.npz").path], to: out)
        ) { e in
            XCTAssertTrue("\(e)".contains("b.npz"), "error should name the shard: \(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: d.path).filter { $0.hasPrefix(".") }
        XCTAssertEqual(leftovers, [], "no temporary file may remain")
    }
}
