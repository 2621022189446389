import ImageIO
import Metrics
import ModelIO
import Tensor
import TestSupport
import XCTest

final class EvalInputsTests: XCTestCase {
    var expected: [String: Any] = [:]
    let sample = Fixtures.path("eval/adm_sample_batch.npz")
    let reference = Fixtures.path("eval/adm_reference_batch.npz")

    override func setUpWithError() throws {
        expected = try Fixtures.json("eval/adm_npz_expected.json")
    }

    private func section(_ name: String) -> [String: Any] { expected[name] as! [String: Any] }
    private func entry(_ s: String, _ k: String) -> [String: Any] { section(s)[k] as! [String: Any] }

    private func pixelSum(_ set: ImageSet) throws -> (Int, Int) {
        var sum = 0, n = 0
        try set.forEachBatch(3) { imgs in for i in imgs { sum += i.pixels.reduce(0) { $0 + Int($1) }; n += 1 } }
        return (sum, n)
    }

    func testADMSampleBatch() throws {
        let set = try ImageSet(paths: [sample])
        let arr0 = entry("sample_batch", "arr_0")
        XCTAssertEqual(set.count, (arr0["shape"] as! [Int])[0])
        XCTAssertEqual(set.labels, entry("sample_batch", "arr_1")["values"] as? [Int])
        XCTAssertNil(set.poolStats)
        let (sum, n) = try pixelSum(set)
        XCTAssertEqual(n, set.count)
        XCTAssertEqual(sum, arr0["sum"] as? Int)
    }

    func testADMReferenceBatchStatistics() throws {
        let set = try ImageSet(paths: [reference])
        let ref = section("reference_batch")
        XCTAssertEqual(set.count, ((ref["arr_0"] as! [String: Any])["shape"] as! [Int])[0])
        XCTAssertNil(set.labels)
        let mu = (ref["mu"] as! [String: Any])["values"] as! [Double]
        let pool = try XCTUnwrap(set.poolStats), spatial = try XCTUnwrap(set.spatialStats)
        // (JSONSerialization parses the last digit or two of a double loosely, hence 1e-15)
        for (a, b) in zip(pool.mu, mu) { XCTAssertEqual(a, b, accuracy: 1e-15) }
        for (a, b) in zip(spatial.mu, (ref["mu_s"] as! [String: Any])["values"] as! [Double]) { XCTAssertEqual(a, b, accuracy: 1e-15) }
        XCTAssertEqual(pool.mu.count, mu.count)
        let tr = (0..<pool.dim).reduce(0.0) { $0 + pool.sigma[$1 * pool.dim + $1] }
        XCTAssertEqual(tr, ref["sigma_trace"] as! Double, accuracy: 1e-12 * tr)
        let trS = (0..<spatial.dim).reduce(0.0) { $0 + spatial.sigma[$1 * spatial.dim + $1] }
        XCTAssertEqual(trS, ref["sigma_s_trace"] as! Double, accuracy: 1e-12 * trS)
        XCTAssertEqual(try pixelSum(set).0, (ref["arr_0"] as! [String: Any])["sum"] as? Int)
    }

    func testShardsConcatenate() throws {
        let one = try ImageSet(paths: [sample])
        let two = try ImageSet(paths: [sample, sample])
        XCTAssertEqual(two.count, 2 * one.count)
        XCTAssertEqual(two.labels, one.labels! + one.labels!)
        // A reference batch with statistics cannot be a shard.
        XCTAssertThrowsError(try ImageSet(paths: [sample, reference]))
    }

    private func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("varlab-evalinputs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }

    func testReferenceWithoutExpectedKeys() throws {
        let d = try tempDir()
        var w = NPZWriter()
        w.add("sigma", try NPYArray(float64: [1, 0, 0, 1], shape: [2, 2]))
        try w.write(to: d.appendingPathComponent("a.npz").path)
        XCTAssertThrowsError(try ImageSet(paths: [d.appendingPathComponent("a.npz").path])) { XCTAssertTrue("\($0)".contains("mu")) }
        var v = NPZWriter()
        v.add("images", try NPYArray(uint8: [1, 2, 3], shape: [1, 1, 1, 3]))
        try v.write(to: d.appendingPathComponent("b.npz").path)
        XCTAssertThrowsError(try ImageSet(paths: [d.appendingPathComponent("b.npz").path])) { XCTAssertTrue("\($0)".contains("arr_0")) }
        var f = NPZWriter()
        f.add("arr_0", try NPYArray(float32: [1, 2, 3], shape: [1, 1, 1, 3]))
        try f.write(to: d.appendingPathComponent("c.npz").path)
        XCTAssertThrowsError(try ImageSet(paths: [d.appendingPathComponent("c.npz").path])) { XCTAssertTrue("\($0)".contains("uint8")) }
    }

    func testGrayAndRGBAConverted() throws {
        let d = try tempDir()
        var w = NPZWriter()
        w.add("arr_0", try NPYArray(uint8: [10, 20, 30, 40], shape: [1, 2, 2, 1]))
        try w.write(to: d.appendingPathComponent("g.npz").path)
        let g = try ImageSet(paths: [d.appendingPathComponent("g.npz").path])
        var got: [Image8] = []
        try g.forEachBatch(4) { got += $0 }
        XCTAssertEqual(got[0].channels, 3)
        XCTAssertEqual(Array(got[0].pixels.prefix(6)), [10, 10, 10, 20, 20, 20])
        XCTAssertTrue(g.notes.contains { $0.contains("RGB") })
        var r = NPZWriter()
        r.add("arr_0", try NPYArray(uint8: [1, 2, 3, 255, 4, 5, 6, 0], shape: [1, 1, 2, 4]))
        try r.write(to: d.appendingPathComponent("r.npz").path)
        let rs = try ImageSet(paths: [d.appendingPathComponent("r.npz").path])
        got = []
        try rs.forEachBatch(4) { got += $0 }
        XCTAssertEqual(got[0].pixels, [1, 2, 3, 4, 5, 6])
    }

    func testFolderLabels() throws {
        let d = try tempDir()
        for n in ["class7_000001.png", "class12_000000.png", "notes.md"] {
            _ = FileManager.default.createFile(atPath: d.appendingPathComponent(n).path, contents: Data())
        }
        let set = try ImageSet(paths: [d.path])
        XCTAssertEqual(set.count, 2)
        XCTAssertEqual(set.labels, [12, 7])  // sorted file names: class12_ < class7_
        try "class7_000001.png 3\nclass12_000000.png 4\n".write(
            to: d.appendingPathComponent("labels.txt"), atomically: true, encoding: .utf8)
        XCTAssertEqual(try ImageSet(paths: [d.path]).labels, [4, 3])
        try "5\n".write(to: d.appendingPathComponent("labels.txt"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ImageSet(paths: [d.path]))  // one label for two images
        let empty = try tempDir()
        XCTAssertThrowsError(try ImageSet(paths: [empty.path])) { XCTAssertTrue("\($0)".contains("no PNG/JPEG")) }
    }

    /// End to end on the fixture batches: the evaluator's FID equals the formula on the features it extracted,
    /// and the reference's 16-dim statistics (tiny fixture dims) are not silently compared with 2048-dim features.
    func testEvaluatorOnFixtureBatches() throws {
        let net = try InceptionV3(path: Fixtures.path("eval/fid_inception_v3_fp16.safetensors"))
        let d = try tempDir()
        let ex = FeatureExtractor(network: net, preprocessing: .tf, cacheDir: d.appendingPathComponent("cache").path)
        let ev = Evaluator(extractor: ex, classifier: nil)
        let s = try ImageSet(paths: [sample]), r = try ImageSet(paths: [reference])
        let report = try ev.run(samples: s, reference: r, metrics: [.fid, .is], explicit: true)
        XCTAssertTrue(report.notes.contains { $0.contains("recomputed") })
        let fs = try ex.features(of: s), fr = try ex.features(of: r)  // from the cache
        XCTAssertTrue(ex.lastFromCache)
        let fid = try FID.distance(GaussianStats(features: fs.pool3), GaussianStats(features: fr.pool3))
        XCTAssertEqual(report.values.first { $0.name == "FID" }?.value, fid)
        XCTAssertEqual(
            report.values.first { $0.name == "Inception Score" }?.value,
            try InceptionScore.compute(logits: fs.logits))
        // A statistics-only reference of the wrong width cannot be used and has no images to fall back on.
        var w = NPZWriter()
        w.add("mu", try NPYArray(float64: [0, 0], shape: [2]))
        w.add("sigma", try NPYArray(float64: [1, 0, 0, 1], shape: [2, 2]))
        try w.write(to: d.appendingPathComponent("stats.npz").path)
        let statsOnly = try ImageSet(paths: [d.appendingPathComponent("stats.npz").path])
        XCTAssertThrowsError(try ev.run(samples: s, reference: statsOnly, metrics: [.fid], explicit: true)) {
            XCTAssertTrue("\($0)".contains("widths differ"))
        }
        // Accuracy without labels is an error, not a number.
        XCTAssertThrowsError(
            try Evaluator(extractor: ex, classifier: ResNet(path: Fixtures.path("eval/resnet_bottleneck1111_fp16.safetensors")))
                .run(samples: r, reference: r, metrics: [.acc], explicit: true))
    }

    func testSavedStatisticsRoundTrip() throws {
        let net = try InceptionV3(path: Fixtures.path("eval/fid_inception_v3_fp16.safetensors"))
        let d = try tempDir()
        let ex = FeatureExtractor(network: net, preprocessing: .pytorchFid, cacheDir: d.appendingPathComponent("cache").path)
        let ev = Evaluator(extractor: ex, classifier: nil)
        let s = try ImageSet(paths: [sample])
        let path = d.appendingPathComponent("ref.npz").path
        XCTAssertEqual(try ev.saveStatistics(of: s, to: path), s.count)
        let back = try ImageSet(paths: [path])
        XCTAssertEqual(back.count, 0)
        let f = try ex.features(of: s)
        XCTAssertTrue(ex.lastFromCache, "second pass over the same set comes from the cache")
        // The statistics and (varlab's n_inception) how many images made them; ADM's own files carry no count.
        XCTAssertEqual(back.poolStats, try GaussianStats(features: f.pool3))
        XCTAssertEqual(try ImageSet(paths: [reference]).poolStats?.count, nil)
        let report = try ev.run(samples: s, reference: back, metrics: [.fid, .sfid], explicit: true)
        // Same set on both sides: FID = 0 up to float64 round-off relative to the traces (8 samples in 2048
        // dims: rank deficient, the hard case for the square root).
        let pool = try GaussianStats(features: f.pool3), spatial = try GaussianStats(features: f.spatial)
        func trace(_ s: GaussianStats) -> Double { (0..<s.dim).reduce(0.0) { $0 + s.sigma[$1 * s.dim + $1] } }
        for v in report.values {
            let scale = v.name == "FID" ? trace(pool) : trace(spatial)
            XCTAssertLessThan(abs(v.value), 1e-9 * scale, "\(v.name) \(v.value) vs trace \(scale)")
        }
    }
}
