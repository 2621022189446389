import Foundation
import Generation
import Lab
import TestSupport
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
        let setA = (0..<20).map { q.held.image($0) }
        let same = try q.measures(images: setA, labels: (0..<20).map { q.held.label($0) }, secondsPerImage: 0)
        XCTAssertEqual(try XCTUnwrap(same["inception_fid"]), 0, accuracy: 1e-3 * fid, "the reference set against itself")
        XCTAssertNil(try LabJudge().quality(n: 20).realMeasures()["inception_fid"])
        assertThrows(try LabJudge(inception: "/nonexistent/pt_inception.pth"), ["/nonexistent/pt_inception.pth"])
    }
}
