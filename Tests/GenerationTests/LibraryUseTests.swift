import Editing
import Foundation
import Generation
import ImageIO
import Metrics
import ModelIO
import Samplers
import TestSupport
import Training
import XCTest

/// varlab used as a library (no CLI): sample with both families, edit an image, recognise checkpoints.
final class LibraryUseTests: XCTestCase {
    func folder(_ name: String) throws -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent(
            "varlab-lib-\(name)-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.removeItem(at: u)
        try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }

    /// Both built-in families through `GenerationSettings` + `SampleRun`; an image depends only on (seed, index):
    /// one batch of 3 equals three batches of 1, and a shard equals its slice of the whole set.
    func testSampleBothFamiliesBatchAndShardInvariant() throws {
        for family in ModelFamilies.names {
            var settings = GenerationSettings(family: family)
            if family == DiTFamily.name { settings.dit.steps = 6 }
            let generator = try settings.makeGenerator()
            XCTAssertEqual(generator.family, family)
            let plan = try SamplePlan(classes: .list([2, 7]), count: 3)
            let whole = try generator.generate(plan.requests(0..<3), seed: 11) { _ in }
            let single = try (0..<3).flatMap { try generator.generate(plan.requests($0..<($0 + 1)), seed: 11) { _ in } }
            XCTAssertEqual(whole.map(\.pixels), single.map(\.pixels), "\(family): batch size changed an image")
            XCTAssertNotEqual(whole[0].pixels, whole[2].pixels, "\(family): indices 0 and 2 (same class) must differ")

            let dir = try folder(family)
            let run = try SampleRun(plan: plan, shard: (1, 2), outputPath: dir.path + "/", seed: 11, batchSize: 2)
            XCTAssertEqual(run.range, 1..<3)
            var batches = 0
            try run.run(generator, names: ClassNames(checkpoint: try settings.files().checkpoint)) {
                if case .batchDone = $0 { batches += 1 }
            }
            XCTAssertEqual(batches, 1)
            for r in plan.requests(1..<3) {
                let path = dir.appendingPathComponent(SampleOutput.fileName(classLabel: r.classLabel, index: r.index, seed: 11)).path
                XCTAssertEqual(try ImageFile.read(path: path).pixels, whole[r.index].pixels, "\(family): shard image \(r.index)")
            }
        }
    }

    func testUnknownFamilyAndHalfGivenFilesAreClearErrors() {
        XCTAssertThrowsError(try GenerationSettings(family: "gan").makeGenerator()) {
            XCTAssertEqual("\($0)", "--model must be var or dit, got 'gan'")
        }
        var s = GenerationSettings(family: VARFamily.name)
        s.checkpoint = "/nonexistent/var.pth"
        XCTAssertThrowsError(try s.makeGenerator()) { XCTAssertTrue("\($0)".contains("--checkpoint was given without --vae"), "\($0)") }
        XCTAssertThrowsError(try SamplePlan(classes: .all(classes: Int.max, perClass: 2), count: nil))
    }

    /// Families are recognised from a checkpoint's keys, including a DiT training checkpoint's ema entry.
    func testFamilyDetection() throws {
        try XCTSkipUnless(Fixtures.exists("dit/dit.safetensors") && Fixtures.exists("var/var.pth"), "fixtures missing")
        XCTAssertEqual(ModelFamilies.detect(checkpoint: Fixtures.path("dit/dit.safetensors"))?.name, DiTFamily.name)
        XCTAssertEqual(ModelFamilies.detect(checkpoint: Fixtures.path("dit/dit_train_checkpoint.pt"))?.name, DiTFamily.name)
        XCTAssertEqual(ModelFamilies.detect(checkpoint: Fixtures.path("var/var.pth"))?.name, VARFamily.name)
        XCTAssertNil(ModelFamilies.detect(checkpoint: Fixtures.path("var/vqvae.pth")))
        XCTAssertNil(ModelFamilies.detect(checkpoint: "/nonexistent.pth"))
    }

    /// An in-painting edit with the built-in VAR, written with its compare strip; pixels outside the box's token
    /// cells are the input's (VAR keeps ground-truth tokens there; the decoder may still change them slightly).
    func testEditWithTheLibrary() throws {
        let dir = try folder("edit")
        let input = dir.appendingPathComponent("in.png").path
        var px = [UInt8](repeating: 0, count: 64 * 64 * 3)
        for i in 0..<(64 * 64) { px[i * 3] = 200; px[i * 3 + 1] = UInt8(i % 64 * 4); px[i * 3 + 2] = 40 }
        try ImageFile.write(Image8(width: 64, height: 64, channels: 3, pixels: px), to: input)
        var o = EditOptions()
        o.model = VARFamily.name; o.image = input; o.box = "0,0,0.5,1"; o.classLabel = 3; o.compare = true
        o.output = dir.appendingPathComponent("out.png").path
        let summary = try EditRunner.run(o) { _ in }
        XCTAssertTrue(summary.summary.contains("class 3"), summary.summary)
        for f in o.writtenFiles { XCTAssertTrue(FileManager.default.fileExists(atPath: f), f) }
        let out = try ImageFile.read(path: o.output!)
        XCTAssertEqual([out.width, out.height], [64, 64])
        var bad = EditOptions()
        bad.image = input; bad.output = dir.appendingPathComponent("x.png").path
        XCTAssertThrowsError(try EditRunner.run(bad) { _ in }) { XCTAssertEqual(($0 as? EditFieldError)?.field, "mask") }
    }

    /// A folder of samples evaluated with the toy metrics: labels come from the file names, the report renders.
    func testEvaluateASampleFolder() throws {
        let dir = try folder("eval")
        let generator = try GenerationSettings(family: VARFamily.name).makeGenerator()
        let plan = try SamplePlan(classes: .all(classes: generator.numClasses, perClass: 3), count: nil)
        try SampleRun(plan: plan, shard: nil, outputPath: dir.path + "/", seed: 3, batchSize: 10)
            .run(generator, names: ClassNames(checkpoint: try GenerationSettings().files().checkpoint))
        let set = try ImageSet(paths: [dir.path])
        XCTAssertEqual(set.count, 30)
        XCTAssertEqual(set.labels, plan.requests(0..<30).map(\.classLabel))
        let toy = try ToyEvaluation(path: try BuiltinModels.path(BuiltinModels.classifier, instead: "-"))
        let f = try toy.features(of: set)
        let report = try toy.report(samples: f, labels: set.labels, reference: f.features, metrics: [.acc, .fid], explicit: true)
        let acc = try XCTUnwrap(report.values.first { $0.name == "toy classifier accuracy" }).value
        XCTAssertGreaterThan(acc, 0.5, "the built-in VAR's samples should mostly be recognised")
        XCTAssertEqual(try XCTUnwrap(report.values.first { $0.name == "toy-FID" }).value, 0, accuracy: 1e-3, "a set against itself")
        XCTAssertTrue(report.table().contains("toy classifier accuracy"))
    }

    /// A job object becomes the same EditOptions as the flags would; each bad field is named.
    func testJobFieldsBecomeEditOptions() throws {
        let jobs = try JobsFile.parse(
            Data(
                """
                {"jobs": [{"image": "a.png", "box": [0, 0, 0.5, 1], "class": 3, "seed": 7, "top_p": 0.5, "eta": 0.25,
                           "compare": true, "output": "/abs/out.png", "threads": 1},
                          {"steps": "many"}, {"seed": -1}, {"compare": "yes"}, {"colour": 1}, {"threads": 0}]}
                """.utf8), jsonLines: false, path: "jobs.json")
        let base = URL(fileURLWithPath: "/work/in")
        let o = try EditOptions(job: jobs[0], baseDirectory: base)
        XCTAssertEqual(o.image, "/work/in/a.png")
        XCTAssertEqual(o.box, "0,0,0.5,1")
        XCTAssertEqual([o.classLabel, o.threads], [3, 1])
        XCTAssertEqual(o.seed, 7)
        XCTAssertEqual(o.topP, 0.5)
        XCTAssertEqual(o.eta, 0.25)
        XCTAssertEqual(o.writtenFiles, ["/abs/out.png", "/abs/out-compare.png"])
        for (job, field) in zip(jobs.dropFirst(), ["steps", "seed", "compare", "colour", "threads"]) {
            XCTAssertThrowsError(try EditOptions(job: job, baseDirectory: base)) {
                XCTAssertEqual(($0 as? EditFieldError)?.field, field, "\($0)")
            }
        }
    }

    /// Unset token-sampling settings take the checkpoint's recorded value, else the official default.
    func testTokenSamplingOverridesTakeRecordedThenOfficialDefaults() throws {
        let recorded = TokenSamplingOverrides(topK: 10, topP: 0.9, moreSmooth: true)
        XCTAssertEqual(
            TokenSamplingOverrides(topK: 5).resolved(recorded: recorded),
            TokenSamplingOptions(topK: 5, topP: 0.9, temperature: 1, moreSmooth: true))
        XCTAssertEqual(TokenSamplingOverrides().resolved(), TokenSamplingOptions())
        var s = GenerationSettings()
        s.tokens.temperature = 0
        XCTAssertThrowsError(try s.validate()) { XCTAssertEqual("\($0)", "--temperature must be > 0, got 0.0") }
    }

    /// Rejection sampling keeps, per request, the candidate the scorer likes best; 1 candidate is the base generator,
    /// and results stay batch-invariant. The constant guidance schedule changes the samples; linear is the default.
    func testRejectionSamplingAndGuidanceSchedule() throws {
        let base = try GenerationSettings(family: VARFamily.name).makeGenerator()
        let scorer = try ToyEvaluation(path: try BuiltinModels.path(BuiltinModels.classifier, instead: "-"))
        let plan = try SamplePlan(classes: .list([3, 8]), count: 4)
        let requests = plan.requests(0..<4)
        let plain = try base.generate(requests, seed: 5) { _ in }
        XCTAssertEqual(
            try RejectionSampler(base: base, scorer: scorer, candidates: 1).generate(requests, seed: 5) { _ in }.map(\.pixels),
            plain.map(\.pixels))
        let k = 3
        let chosen = try RejectionSampler(base: base, scorer: scorer, candidates: k).generate(requests, seed: 5) { _ in }
        let candidates = try (0..<k).map { j in
            try base.generate(requests, seed: j == 0 ? 5 : 5 &+ UInt64(j) &* 0x9E37_79B9_7F4A_7C15) { _ in }
        }
        for (i, r) in requests.enumerated() {
            let logits = try (0..<k).map { try scorer.features([candidates[$0][i]]).logits.data }
            let logp = logits.map { l -> Float in
                let m = l.max()!
                return l[r.classLabel] - (m + log(l.reduce(0) { $0 + exp($1 - m) }))
            }
            let best = logp.indices.max { logp[$0] < logp[$1] || (logp[$0] == logp[$1] && $0 > $1) }!
            XCTAssertEqual(chosen[i].pixels, candidates[best][i].pixels, "request \(i) keeps candidate \(best)")
        }
        let one = try (0..<4).flatMap {
            try RejectionSampler(base: base, scorer: scorer, candidates: k).generate([requests[$0]], seed: 5) { _ in }
        }
        XCTAssertEqual(one.map(\.pixels), chosen.map(\.pixels), "batch size changed a rejection sample")
        XCTAssertThrowsError(try RejectionSampler(base: base, scorer: scorer, candidates: 0))

        var constant = GenerationSettings(family: VARFamily.name)
        constant.tokens.guidanceSchedule = .constant
        XCTAssertNotEqual(try constant.makeGenerator().generate(requests, seed: 5) { _ in }.map(\.pixels), plain.map(\.pixels))
        var linear = GenerationSettings(family: VARFamily.name)
        linear.tokens.guidanceSchedule = .linear
        XCTAssertEqual(try linear.makeGenerator().generate(requests, seed: 5) { _ in }.map(\.pixels), plain.map(\.pixels))
        var dit = GenerationSettings(family: DiTFamily.name)
        dit.tokens.guidanceSchedule = .constant
        XCTAssertThrowsError(try dit.validate()) { XCTAssertTrue("\($0)".contains("--cfg-schedule applies to VAR"), "\($0)") }
    }

    /// The lab's full row: real set B measured against reference A has within-class diversity exactly 1, its own
    /// accuracy as top-1, and a small toy-FID; a sample set is measured on every key; bad settings are refused.
    func testToyQualityMeasures() throws {
        let q = try ToyQuality(n: 40, dataSeed: 0, classifier: try BuiltinModels.path(BuiltinModels.classifier, instead: "-"))
        let real = try q.realMeasures()
        // Every key but the Inception FID, which needs `inception` (tested with the lab's --inception).
        let keys = ToyQuality.measureKeys.map(\.key).filter { $0 != "inception_fid" }
        XCTAssertEqual(Set(real.keys), Set(keys))
        XCTAssertEqual(real["diversity"]!, 1, accuracy: 1e-12)
        XCTAssertEqual(real["accuracy"]!, try q.row("real", images: q.setB, labels: q.labelsB, seconds: 0).accuracy)
        let (images, labels, _) = try q.draw(try GenerationSettings(family: VARFamily.name).makeGenerator(), seed: 0, batchSize: 20)
        XCTAssertEqual(labels, (0..<40).map { $0 % 10 })
        let m = try q.measures(images: images, labels: labels, secondsPerImage: 0.5)
        XCTAssertTrue(keys.allSatisfy { m[$0]?.isFinite == true }, "\(m)")
        XCTAssertGreaterThan(m["toy_fid"]!, real["toy_fid"]!)
        var s = GenerationSettings(family: VARFamily.name)
        s.candidates = 0
        XCTAssertThrowsError(try s.validate()) { XCTAssertTrue("\($0)".contains("--candidates must be in 1...64"), "\($0)") }
        s.candidates = 1
        s.scorer = "x.safetensors"
        XCTAssertThrowsError(try s.validate()) { XCTAssertTrue("\($0)".contains("--scorer needs --candidates"), "\($0)") }
        s.candidates = 2
        s.scorer = "/no/such/scorer.safetensors"
        XCTAssertThrowsError(try s.makeGenerator()) { XCTAssertTrue("\($0)".contains("/no/such/scorer.safetensors"), "\($0)") }
    }
}
