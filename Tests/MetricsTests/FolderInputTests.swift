import ImageIO
import Metrics
import ModelIO
import Tensor
import TestSupport
import XCTest

/// Folders of real PNG/JPEG files (decoded by ImageIO), as `varlab eval` reads them.
final class FolderInputTests: XCTestCase {
    func testPNGFolderWithMixedSizesAndGray() throws {
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
        // An image format varlab does not read is reported, not silently dropped.
        try Data([0x52, 0x49, 0x46, 0x46]).write(to: d.appendingPathComponent("class2_000009.webp"))
        XCTAssertTrue(try ImageSet(paths: [d.path]).notes.contains { $0.contains("1 image(s)") && $0.contains(".webp") })
        // A file that is not an image is a clear error naming it.
        try Data("not a png".utf8).write(to: d.appendingPathComponent("class1_000002.png"))
        let bad = try ImageSet(paths: [d.path])
        XCTAssertThrowsError(try bad.forEachBatch(8) { _ in }) { XCTAssertTrue("\($0)".contains("class1_000002.png")) }
    }
}

/// What the images were like (grey converted, mixed sizes) is still said when the features come from the cache
/// or the reference from a saved statistics file; a reference count nobody recorded is "unknown", not 0.
final class NotesSurviveTests: XCTestCase {
    func testNotesSurviveTheCacheAndTheStatisticsFile() throws {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("varlab-notes-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        for i in 0..<3 {
            let img = Image8(
                width: 20 + i, height: 20, channels: i == 0 ? 1 : 3,
                pixels: (0..<((20 + i) * 20 * (i == 0 ? 1 : 3))).map { UInt8(($0 * (7 + i)) % 256) })
            try PNG.write(img, to: d.appendingPathComponent("class0_00000\(i).png").path)
        }
        let heads = try XCTUnwrap(try Fixtures.json("eval/dinov2_tiny_config.json")["num_heads"] as? Int)
        let net = DINOv2Features(try DINOv2(path: Fixtures.path("eval/dinov2_tiny_pretrain.pth"), heads: heads))
        let cache = FeatureCache(dir: d.appendingPathComponent("cache").path)
        _ = try cache.features(of: try ImageSet(paths: [d.path]), network: net)
        XCTAssertFalse(cache.lastFromCache)
        let fresh = try ImageSet(paths: [d.path])
        _ = try cache.features(of: fresh, network: net)
        XCTAssertTrue(cache.lastFromCache)
        XCTAssertTrue(fresh.notes.contains { $0.contains("grayscale") }, "\(fresh.notes)")
        XCTAssertTrue(fresh.notes.contains { $0.contains("different sizes") }, "\(fresh.notes)")

        let reps = RepresentationMetrics(dinov2: net, clip: nil, cache: cache)
        let stats = d.appendingPathComponent("ref.npz").path
        try ReferenceStatistics.write(try reps.statisticsArrays(of: fresh), notes: fresh.notes, to: stats)
        let back = try ImageSet(paths: [stats])
        XCTAssertTrue(back.notes.contains { $0.contains("computed from images where") && $0.contains("grayscale") }, "\(back.notes)")
        XCTAssertEqual(back.dinov2Stats?.count, 3)
        var report = EvalReport()
        try reps.run(samples: fresh, reference: back, metrics: [.fdDINOv2], explicit: true, into: &report)
        XCTAssertEqual(report.values.first?.reference, 3)
        XCTAssertFalse(report.values.first?.referenceCountUnknown ?? true)
        // Statistics without a count (as ADM writes them): the count is unknown.
        var w = NPZWriter()
        w.add("mu_dinov2", try NPYArray(float64: back.dinov2Stats!.mu, shape: [back.dinov2Stats!.dim]))
        w.add("sigma_dinov2", try NPYArray(float64: back.dinov2Stats!.sigma, shape: [back.dinov2Stats!.dim, back.dinov2Stats!.dim]))
        try w.write(to: stats)
        var r2 = EvalReport()
        try reps.run(samples: fresh, reference: try ImageSet(paths: [stats]), metrics: [.fdDINOv2], explicit: true, into: &r2)
        XCTAssertEqual(r2.values.first?.reference, nil)
        XCTAssertTrue(r2.values.first?.referenceCountUnknown ?? false)
        XCTAssertTrue(r2.notes.contains { $0.contains("does not name its network") })
    }
}
