import Foundation
import Generation
import ImageIO
import Lab
import TestSupport
import Training
import VAR
import XCTest

/// A study of tiny models on a few toy images through the lab's training cells (the ablation and scaling studies'
/// machinery at a size that runs in seconds).
struct TinyTrainingStudy: Study {
    let name = "tiny-training"
    let training: TrainingCells
    static let base = VARSpec(.next, depth: 1, width: 32, heads: 2)
    static let ar = VARSpec(.ar, depth: 1, width: 32, heads: 2)

    func cells() throws -> [Cell] {
        [
            training.tokens(.multiScale, .train), training.tokens(.multiScale, .heldout), training.tokens(.finestOnly, .train),
            training.tokens(.finestOnly, .heldout), training.latents(.train), training.latents(.heldout),
            training.trainVAR(Self.base, steps: 4, batch: 4, lr: 1e-3, seed: 0),
            training.trainVAR(Self.ar, steps: 4, matching: Self.base, batch: 4, lr: 1e-3, seed: 0),
            training.trainDiT(DiTSpec(depth: 1, hidden: 32, heads: 2), steps: 3, batch: 4, lr: 1e-3, seed: 0),
        ]
    }

    func run(_ cell: Cell, context: LabContext) throws -> (metrics: [String: Double], outputs: [String: String]) {
        guard let r = try training.run(cell, context: context) else { throw LabError("not a training cell: \(cell.kind)") }
        return r
    }

    func report(_ results: [CellResult], pending: [Cell], context: LabContext) throws -> StudyReport {
        StudyReport(markdown: "\(results.count) done\n", json: [:], plots: [])
    }
}

final class TrainingCellsTests: XCTestCase {
    /// Encoding, training at equal FLOPs, held-out loss and the written checkpoints, which sample as they are.
    func testTrainingCellsEndToEnd() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("labtrain-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let vae = try BuiltinModels.path(BuiltinModels.vqvae, instead: "--vae")
        let study = TinyTrainingStudy(training: try TrainingCells(vae: vae, trainImages: 12, heldOutImages: 6))
        let lab = try Lab(dir: dir)
        XCTAssertEqual(try lab.run(study), 9)
        XCTAssertEqual(try lab.run(study), 0, "finished cells are not redone")
        let cells = try study.cells()
        let base = try XCTUnwrap(lab.result(cells[6])).metrics, ar = try XCTUnwrap(lab.result(cells[7])).metrics
        XCTAssertEqual(base["steps"], 4)
        // Raster AR runs 64 tokens per image against 155, so it gets more steps for the same compute, to within a step.
        let arSteps = try XCTUnwrap(ar["steps"]), perStep = try XCTUnwrap(ar["train_flops"]) / arSteps
        XCTAssertGreaterThan(arSteps, 4)
        XCTAssertEqual(try XCTUnwrap(ar["train_flops"]), try XCTUnwrap(base["train_flops"]), accuracy: perStep / 2 + 1)
        for m in [base, ar, try XCTUnwrap(lab.result(cells[8])).metrics] {
            let loss = try XCTUnwrap(m["held_out_loss"])
            XCTAssertTrue(loss.isFinite && loss > 0, "\(m)")
            XCTAssertGreaterThan(try XCTUnwrap(m["parameters"]), 1000)
        }
        XCTAssertEqual(
            try XCTUnwrap(base["held_out_loss"]), log(512), accuracy: 1.5, "a barely trained model is near uniform over 512 codes")
        // Each written model samples through the ordinary generation settings, with no flag but the tokenizer.
        for (cell, family) in [(cells[6], VARFamily.name), (cells[7], VARFamily.name), (cells[8], DiTFamily.name)] {
            var s = GenerationSettings(family: family)
            s.checkpoint = (dir as NSString).appendingPathComponent(try XCTUnwrap(lab.result(cell)?.outputs["checkpoint"]))
            s.vae = vae
            if family == DiTFamily.name { s.dit.steps = 2 }
            let g = try s.makeGenerator()
            XCTAssertEqual(g.numClasses, 10)
            let img = try g.generate([SampleRequest(classLabel: 3, index: 0)], seed: 1) { _ in }
            XCTAssertEqual(img.count, 1)
        }
    }

    /// The ablation and scaling plans: the models and seeds the issue asks for, matched budgets, and one shared encoding.
    func testAblationAndScalingPlans() throws {
        for budget in Budget.allCases {
            var o = Studies.Options()
            o.budget = budget
            let ablations = try Studies.make("ablations", o).cells(), scaling = try Studies.make("scaling", o).cells()
            let trains = ablations.filter { $0.kind == "train-var" }
            XCTAssertEqual(Set(trains.map(\.group)).count, 5)
            XCTAssertTrue(Dictionary(grouping: trains, by: \.group).values.allSatisfy { $0.count == 3 }, "three training seeds each")
            XCTAssertEqual(Set(trains.compactMap { $0.inputs["variant"] }), ["var", "ar", "plain-ln"])
            XCTAssertEqual(
                trains.filter { $0.inputs["match_variant"] == nil }.map(\.group), Array(repeating: AblationStudy.base.name, count: 3))
            XCTAssertEqual(Set(ablations.filter { $0.kind == "sample" }.flatMap(\.needs)), Set(trains.map(\.hash)))
            XCTAssertEqual(Set(scaling.filter { $0.kind == "train-var" }.map(\.group)).count, 4)
            XCTAssertEqual(Set(scaling.filter { $0.kind == "train-dit" }.map(\.group)).count, 4)
            let baseRuns = Set(trains.filter { $0.group == AblationStudy.base.name }.map(\.hash))
            XCTAssertEqual(
                baseRuns.intersection(scaling.map(\.hash)).count, budget == .small ? 1 : 2, "the base model's runs are scaling runs")
            let encodings = Set(ablations.filter { $0.kind == "encode-tokens" }.map(\.hash))
            XCTAssertTrue(Set(scaling.filter { $0.kind == "encode-tokens" }.map(\.hash)).isSubset(of: encodings), "shared encoding cells")
        }
    }
}

/// `--inception`: every judged cell names the Inception file, rows gain an Inception FID; without it the cells
/// are the same as before (cached results stay valid).
final class InceptionJudgeTests: XCTestCase {
    func testInceptionFIDRowsAndCellInputs() throws {
        let weights = Fixtures.path("eval/fid_inception_v3_fp16.safetensors")
        var o = Studies.Options()
        let plain = try Studies.make("knobs", o).cells()
        o.inception = weights
        let withInception = try Studies.make("knobs", o).cells()
        XCTAssertTrue(plain.allSatisfy { $0.inputs["inception_sha256"] == nil })
        let judged = withInception.filter { ["real", "sample"].contains($0.kind) }
        XCTAssertTrue(judged.allSatisfy { $0.inputs["inception_sha256"] != nil }, "every judged cell names the Inception file")
        XCTAssertTrue(Set(judged.map(\.hash)).isDisjoint(with: plain.map(\.hash)))
        XCTAssertTrue(Set(withInception.filter { $0.kind == "train-classifier" }.map(\.hash)).isSubset(of: plain.map(\.hash)))

        let q = try LabJudge(inception: weights).quality(n: 20)
        let real = try q.realMeasures()
        let fid = try XCTUnwrap(real["inception_fid"])
        XCTAssertTrue(fid.isFinite && fid > 0, "two disjoint real sets differ: \(fid)")
        let setA = (0..<20).map { q.real.image($0) }
        let same = try q.measures(images: setA, labels: (0..<20).map { q.real.label($0) }, secondsPerImage: 0)
        XCTAssertEqual(try XCTUnwrap(same["inception_fid"]), 0, accuracy: 1e-3 * fid, "the reference set against itself")
        XCTAssertNil(try LabJudge().quality(n: 20).realMeasures()["inception_fid"])
        assertThrows(try LabJudge(inception: "/nonexistent/pt_inception.pth"), ["/nonexistent/pt_inception.pth"])
    }
}

/// `--data imagefolder:PATH`: the trained studies train on the folder's training part and every row is judged
/// against its held-out part (every 10th image of each class) by a classifier trained on it.
final class ImageFolderLabTests: XCTestCase {
    func testImageFolderData() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("labfolder-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        // Two classes of toy images (discs and stripes), 200 each: 20 held out per class.
        let toy = ToyDataset(seed: 3, split: .train, size: 64)
        for (name, toyClass) in [("disc", 0), ("stripes", 5)] {
            let dir = (root as NSString).appendingPathComponent(name)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for i in 0..<200 { try PNG.write(toy.image(i * 10 + toyClass), to: (dir as NSString).appendingPathComponent("\(i).png")) }
        }
        let data = try DataSpec(parsing: "imagefolder:" + root)
        let (train, held) = try DataSpec.folder(root, size: 64).split(heldOutEvery: DataSpec.heldOutEvery)
        XCTAssertEqual([train.count, held.count], [360, 40])
        XCTAssertEqual(Set(held.indices).intersection(train.indices).count, 0)
        assertThrows(try LabJudge(data: data), ["--judge", "--hold-out"])

        // A two-class judge trained on the training part.
        var config = ToyClassifierConfig()
        config.classes = 2
        var opts = TrainOptions.classifier
        opts.steps = 3; opts.batchSize = 8; opts.saveEvery = 3
        let judgePath = (root as NSString).appendingPathComponent("judge.safetensors")
        let trainer = try ClassifierTrainer(config: config, options: opts)
        trainer.checkpointPath = judgePath
        try trainer.run(source: try data.trainSource(trainSize: 0, dataSeed: 0, size: 64, holdOut: true))
        let judge = try LabJudge(classifier: judgePath, data: data)
        XCTAssertEqual(judge.inputs["data"], "imagefolder:" + URL(fileURLWithPath: root).standardized.path)
        XCTAssertNotNil(judge.inputs["data_stamp"])
        let q = try judge.quality(n: 20)
        XCTAssertEqual(q.real.count, 40)
        XCTAssertEqual(try XCTUnwrap(q.realMeasures()["accuracy"]), 0.5, accuracy: 0.5)
        assertThrows(try judge.quality(n: 21), ["40 real images", "2 x 21"])

        // Training cells on the folder: the models get its two classes and its class names.
        let dir = (root as NSString).appendingPathComponent("lab")
        let vae = try BuiltinModels.path(BuiltinModels.vqvae, instead: "--vae")
        let study = TinyTrainingStudy(training: try TrainingCells(vae: vae, trainImages: 1000, heldOutImages: 1000, data: data))
        let lab = try Lab(dir: dir)
        XCTAssertEqual(try lab.run(study), 9)
        let cells = try study.cells()
        XCTAssertEqual(lab.result(cells[0])?.metrics["images"], 360, "the whole training part (fewer than asked)")
        XCTAssertEqual(lab.result(cells[1])?.metrics["images"], 40)
        XCTAssertTrue(cells.allSatisfy { $0.inputs["data_stamp"] != nil || $0.kind.hasPrefix("train") })
        var s = GenerationSettings(family: VARFamily.name)
        s.checkpoint = (dir as NSString).appendingPathComponent(try XCTUnwrap(lab.result(cells[6])?.outputs["checkpoint"]))
        s.vae = vae
        XCTAssertEqual(try s.makeGenerator().numClasses, 2)
    }
}
