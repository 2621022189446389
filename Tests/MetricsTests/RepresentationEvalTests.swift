import Foundation
import ImageIO
import Metrics
import ModelIO
import Tensor
import TestSupport
import XCTest

/// FD-DINOv2 and CMMD through the evaluator, the statistics file, the feature cache and the CLI.
final class RepresentationEvalTests: XCTestCase {
    static var nets: (DINOv2Features, CLIPFeatures)?
    var dinov2: DINOv2Features!
    var clip: CLIPFeatures!
    let sample = Fixtures.path("eval/adm_sample_batch.npz")
    let reference = Fixtures.path("eval/adm_reference_batch.npz")
    var heads: Int { dinov2.model.config.heads }

    override func setUpWithError() throws {
        if Self.nets == nil {
            let heads = try XCTUnwrap(try Fixtures.json("eval/dinov2_tiny_config.json")["num_heads"] as? Int)
            Self.nets = (
                DINOv2Features(try DINOv2(path: Fixtures.path("eval/dinov2_tiny_pretrain.pth"), heads: heads)),
                CLIPFeatures(try CLIPVision(location: Fixtures.path("eval/clip_tiny_hf")))
            )
        }
        (dinov2, clip) = Self.nets!
    }

    func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("varlab-rep-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }

    func allImages(_ path: String) throws -> [Image8] {
        var out: [Image8] = []
        try ImageSet(paths: [path]).forEachBatch(5) { out += $0 }
        return out
    }

    /// A feature is a function of its image alone: batches of 1 and of all images give the same bits.
    func testFeaturesDoNotDependOnTheBatch() throws {
        let imgs = try allImages(sample)
        for net in [dinov2 as FeatureNetwork, clip as FeatureNetwork] {
            let name = net.outputs[0].name
            let together = try net.features(imgs)[name]!
            for (i, img) in imgs.enumerated() {
                let alone = try net.features([img])[name]!
                XCTAssertEqual(alone.data.map(\.bitPattern), row(together, i).data.map(\.bitPattern), "\(net.name) image \(i)")
            }
        }
    }

    /// CMMD centre-crops a non-square image (left = (w - l) / 2 rounded down) before resizing; DINOv2 squashes it.
    func testNonSquareInputs() throws {
        var px = [UInt8](repeating: 0, count: 61 * 40 * 3)
        for i in px.indices { px[i] = UInt8((i * 37 + i / 7) % 256) }
        let img = Image8(width: 61, height: 40, channels: 3, pixels: px)
        let square = try img.cropped(x: 10, y: 0, width: 40, height: 40)
        XCTAssertEqual(try clip.model.preprocess(img).pixels.data, try clip.model.preprocess(square).pixels.data)
        XCTAssertEqual(
            try clip.model.preprocess(img.transposedForTest()).resized.pixels,
            try clip.model.preprocess(try img.transposedForTest().cropped(x: 0, y: 10, width: 40, height: 40)).resized.pixels)
        let d = try dinov2.model.preprocess(img)
        XCTAssertEqual([d.resized.width, d.resized.height], [224, 224])
        XCTAssertEqual(d.resized.pixels, try img.resized(width: 224, height: 224, filter: .bicubic).pixels)
        XCTAssertNotEqual(d.resized.pixels, try square.resized(width: 224, height: 224, filter: .bicubic).pixels)
    }

    func testEvaluatorStatisticsFileAndCache() throws {
        let d = try tempDir()
        let cache = FeatureCache(dir: d.appendingPathComponent("cache").path)
        let reps = RepresentationMetrics(dinov2: dinov2, clip: clip, cache: cache)
        let s = try ImageSet(paths: [sample]), r = try ImageSet(paths: [reference])
        var report = EvalReport()
        try reps.run(samples: s, reference: r, metrics: [.fdDINOv2, .cmmd], explicit: true, into: &report)
        // The numbers are the formulas on the features the networks give.
        let (xs, xr) = (try dinov2.features(allImages(sample))["cls"]!, try dinov2.features(allImages(reference))["cls"]!)
        let fd = try FID.distance(GaussianStats(features: xs), GaussianStats(features: xr))
        let cm = try CMMD.compute(clip.features(allImages(sample))["embedding"]!, clip.features(allImages(reference))["embedding"]!).value
        XCTAssertEqual(report.values.map(\.name), ["FD-DINOv2", "CMMD"])
        XCTAssertEqual(report.values[0].value, fd)
        XCTAssertEqual(report.values[1].value, cm)
        XCTAssertTrue(report.values[0].network.contains("DINOv2"))
        XCTAssertTrue(report.values[1].network.contains("CLIP"))

        // A second pass reads the cache; the saved statistics give the same numbers without the images.
        let stats = d.appendingPathComponent("ref.npz").path
        try ReferenceStatistics.write(try reps.statisticsArrays(of: r), notes: r.notes, to: stats)
        XCTAssertTrue(cache.lastFromCache)
        let back = try ImageSet(paths: [stats])
        XCTAssertEqual(back.count, 0)
        XCTAssertTrue(back.hasStatistics)
        var again = EvalReport()
        try reps.run(samples: s, reference: back, metrics: [.fdDINOv2, .cmmd], explicit: true, into: &again)
        XCTAssertEqual(again.values.map(\.value), report.values.map(\.value))
        XCTAssertEqual(again.notes.filter { $0.contains("precomputed statistics") }.count, 2, "\(again.notes)")
        XCTAssertTrue(again.notes.contains { $0.contains("read from the cache") })

        // Statistics of another architecture are never compared: with no images to fall back on, an error.
        let other = RepresentationMetrics(
            dinov2: DINOv2Features(try DINOv2(path: Fixtures.path("eval/dinov2_tiny_pretrain.pth"), heads: 1)),
            clip: nil, cache: FeatureCache(dir: nil))
        var r3 = EvalReport()
        XCTAssertThrowsError(try other.run(samples: s, reference: back, metrics: [.fdDINOv2], explicit: true, into: &r3)) {
            XCTAssertTrue("\($0)".contains("not of DINOv2"), "\($0)")
        }
        // A network that was not given: an error naming the flag when asked for, a skip otherwise.
        XCTAssertThrowsError(try other.run(samples: s, reference: r, metrics: [.cmmd], explicit: true, into: &r3)) {
            XCTAssertTrue("\($0)".contains("--clip"))
        }
        var r4 = EvalReport()
        try other.run(samples: s, reference: r, metrics: [.cmmd], explicit: false, into: &r4)
        XCTAssertTrue(r4.values.isEmpty)
    }

    func testCLIReportsBothInTheTableAndJSON() throws {
        let d = try tempDir()
        let json = d.appendingPathComponent("r.json").path
        let flags = [
            "--dinov2", Fixtures.path("eval/dinov2_tiny_pretrain.pth"), "--dinov2-heads", "\(heads)",
            "--clip", Fixtures.path("eval/clip_tiny_hf"), "--no-cache",
        ]
        let r = try VarlabCLI.run(["eval", sample, reference, "--metrics", "fd-dinov2,cmmd", "--json", json] + flags)
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("FD-DINOv2") && r.out.contains("CMMD"), r.out)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
        let metrics = try XCTUnwrap(obj["metrics"] as? [[String: Any]])
        var report = EvalReport()
        try RepresentationMetrics(dinov2: dinov2, clip: clip, cache: FeatureCache(dir: nil))
            .run(
                samples: ImageSet(paths: [sample]), reference: ImageSet(paths: [reference]), metrics: [.fdDINOv2, .cmmd], explicit: true,
                into: &report)
        // Values read from the text (Foundation's JSON parser on Linux rounds some doubles by an ulp or two).
        let text = try String(contentsOfFile: json, encoding: .utf8)
        let values = text.components(separatedBy: "\"value\" : ").dropFirst().compactMap {
            Double($0.prefix { "0123456789.eE+-".contains($0) })
        }
        XCTAssertEqual(values, report.values.map(\.value))
        XCTAssertEqual(metrics.count, 2)
        XCTAssertEqual(metrics.compactMap { $0["network"] as? String }, report.values.map(\.network))
        // Asked for without its network: one line naming the flag, exit 1.
        let missing = try VarlabCLI.run(["eval", sample, reference, "--metrics", "cmmd", "--no-cache"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.err.contains("--clip"), missing.err)
        let wrong = try VarlabCLI.run([
            "eval", sample, reference, "--metrics", "fd-dinov2", "--dinov2", Fixtures.path("eval/clip_tiny_hf/model.safetensors"),
        ])
        XCTAssertEqual(wrong.status, 1)
        XCTAssertTrue(wrong.err.contains("not a DINOv2 backbone"), wrong.err)
        // --save-stats with only the new networks writes their statistics (no Inception, no toy classifier).
        let stats = d.appendingPathComponent("s.npz").path
        let saved = try VarlabCLI.run(["eval", reference, "--save-stats", stats] + flags)
        XCTAssertEqual(saved.status, 0, saved.err)
        let back = try ImageSet(paths: [stats])
        XCTAssertNotNil(back.dinov2Stats)
        XCTAssertEqual(back.clipEmbeddings?.shape[0], try ImageSet(paths: [reference]).count)
    }

    /// Bad CLIP configs are refused with the file and key named.
    func testCLIPConfigErrors() throws {
        let d = try tempDir()
        let src = Fixtures.path("eval/clip_tiny_hf")
        func repo(_ config: String) throws -> String {
            let dir = d.appendingPathComponent(UUID().uuidString)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(
                atPath: dir.appendingPathComponent("model.safetensors").path,
                withDestinationPath: src + "/model.safetensors")
            try config.write(to: dir.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
            return dir.path
        }
        let good = try String(contentsOfFile: src + "/config.json", encoding: .utf8)
        for (config, expect) in [
            ("{not json", "not a JSON object"),
            (
                good.replacingOccurrences(of: "\"num_hidden_layers\": 2", with: "\"num_hidden_layers\": 3"),
                "num_hidden_layers 3 does not match"
            ),
            (good.replacingOccurrences(of: "\"num_attention_heads\": 2", with: "\"num_attention_heads\": 5"), "cannot be split into 5"),
            (
                good.replacingOccurrences(
                    of: "\"hidden_act\": \"quick_gelu\",\n    \"hidden_size\": 64",
                    with: "\"hidden_act\": \"relu\",\n    \"hidden_size\": 64"), "hidden_act 'relu'"
            ),
        ] {
            XCTAssertThrowsError(try CLIPVision(location: try repo(config)), expect) { XCTAssertTrue("\($0)".contains(expect), "\($0)") }
        }
        let empty = d.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        XCTAssertThrowsError(try CLIPVision(location: empty.path)) { XCTAssertTrue("\($0)".contains("model.safetensors")) }
    }
}

extension Image8 {
    /// Rows and columns swapped (a portrait version of a landscape test image).
    func transposedForTest() -> Image8 {
        var px = [UInt8](repeating: 0, count: pixels.count)
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<channels {
                    px[(x * height + y) * channels + c] = pixels[(y * width + x) * channels + c]
                }
            }
        }
        return Image8(width: height, height: width, channels: channels, pixels: px)
    }
}

/// Statistics files that cannot be statistics, and outputs that cannot be written, are refused up front.
final class ImpossibleInputTests: XCTestCase {
    func testNonCovarianceStatisticsAreRefused() throws {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("varlab-cov-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        for (name, sigma, expect) in [
            ("negdef", [-2.0, 0, 0, -1], "not positive semidefinite"),
            ("asym", [1.0, 0.5, 0.1, 1], "not symmetric"),
            ("dinov2", [1.0, 0, 0, -3], "not positive semidefinite"),
        ] {
            var w = NPZWriter()
            let (mu, sg) = name == "dinov2" ? ("mu_dinov2", "sigma_dinov2") : ("mu", "sigma")
            w.add(mu, try NPYArray(float64: [0, 0], shape: [2]))
            w.add(sg, try NPYArray(float64: sigma, shape: [2, 2]))
            let p = d.appendingPathComponent("\(name).npz").path
            try w.write(to: p)
            XCTAssertThrowsError(try ImageSet(paths: [p]), name) { XCTAssertTrue("\($0)".contains(expect) && "\($0)".contains(p), "\($0)") }
        }
        // A real covariance (rank deficient: 3 samples in 4 dims) passes.
        let s = try GaussianStats(features: Tensor(shape: [3, 4], data: [1, 2, 3, 4, 2, 2, 1, 0, 5, 1, 0, 2]))
        XCTAssertNoThrow(try s.checkCovariance(what: "rank-deficient"))
    }

    /// Errors found while a command runs are one line and exit 1; flags that do not parse keep usage + exit 64.
    func testRuntimeErrorsAreOneLineExitOne() throws {
        let sample = Fixtures.path("eval/adm_sample_batch.npz"), reference = Fixtures.path("eval/adm_reference_batch.npz")
        let r = try VarlabCLI.run(["eval", sample, reference, "--metrics", "foo"])
        XCTAssertEqual(r.status, 1, r.err)
        XCTAssertTrue(r.err.contains("unknown metric 'foo'"), r.err)
        XCTAssertFalse(r.err.contains("Usage:"), r.err)
        let usage = try VarlabCLI.run(["eval", sample, reference, "--no-such-flag"])
        XCTAssertEqual(usage.status, 64, usage.err)
    }

    func testUnwritableOutputsFailBeforeComputing() throws {
        let sample = Fixtures.path("eval/adm_sample_batch.npz"), reference = Fixtures.path("eval/adm_reference_batch.npz")
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("varlab-nocache-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: cache) }
        for (flag, path) in [("--json", "/nonexistent-folder/r.json"), ("--save-stats", FileManager.default.temporaryDirectory.path)] {
            let r = try VarlabCLI.run([
                "eval", sample, reference, flag, path, "--cache-dir", cache.path,
                "--inception", Fixtures.path("eval/fid_inception_v3_fp16.safetensors"),
            ])
            XCTAssertEqual(r.status, 1, r.err)
            XCTAssertTrue(r.err.contains(flag) && r.err.contains(path), r.err)
            // Refused before any feature was computed (none reached the cache).
            XCTAssertFalse(FileManager.default.fileExists(atPath: cache.path), "features were computed before the refusal")
        }
    }
}
