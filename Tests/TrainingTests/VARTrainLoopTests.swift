import Foundation
import ModelIO
import Tensor
import Training
import VAR
import XCTest

/// The VAR trainer end to end on a tiny problem: it learns (overfits 8 images), it is deterministic (identical
/// checkpoint bytes for 1 and 2 threads) and resume refuses a checkpoint of another config.
final class VARTrainLoopTests: XCTestCase {
    func testLossDecreasesOnTinyOverfitProblemEveryVariant() throws {
        for variant in VARVariant.allCases {
            var opts = TrainOptions(); opts.steps = 60; opts.batchSize = 8; opts.lr = 3e-3; opts.warmupSteps = 5; opts.saveEvery = 1000
            let trainer = try VARTrainFixture.trainer(variant, images: 8, options: opts)
            var losses: [Double] = []
            try trainer.run { losses.append($0.loss) }
            XCTAssertEqual(losses.count, 60)
            let first = losses.prefix(3).reduce(0, +) / 3, last = losses.suffix(5).reduce(0, +) / 5
            XCTAssertLessThan(last, 0.6 * first, "\(variant.rawValue): loss \(first) -> \(last)")
        }
    }

    func testCheckpointBytesIdenticalForOneAndTwoThreads() throws {
        func run(threads: Int) throws -> Data {
            let saved = Parallel.threads
            Parallel.threads = threads
            defer { Parallel.threads = saved }
            var opts = TrainOptions(); opts.steps = 2; opts.batchSize = 4; opts.seed = 7
            let trainer = try VARTrainFixture.trainer(images: 8, options: opts)
            let path = VARTrainFixture.tempPath("det\(threads)")
            defer { try? FileManager.default.removeItem(atPath: path) }
            trainer.loop.checkpointPath = path
            try trainer.run()
            return try Data(contentsOf: URL(fileURLWithPath: path))
        }
        let one = try run(threads: 1), two = try run(threads: 2)
        XCTAssertEqual(one, two, "same seed -> identical checkpoint bytes for 1 and 2 threads")
        XCTAssertGreaterThan(one.count, 1000, "checkpoint written")
    }

    func testResumeContinuesAndRefusesAnotherConfig() throws {
        var opts = TrainOptions(); opts.steps = 2; opts.batchSize = 4
        let path = VARTrainFixture.tempPath("resume")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let a = try VARTrainFixture.trainer(images: 8, options: opts)
        a.loop.checkpointPath = path
        try a.run()
        let ck = try SafetensorsFile(path: path)
        XCTAssertEqual(ck.metadata["varlab.heads"], "2")
        XCTAssertEqual(ck.metadata["varlab.patch_nums"], "1,2,4")
        XCTAssertEqual(ck.metadata["varlab.variant"], "var")

        // Same config: resumes at step 2.
        var more = opts; more.steps = 3
        let b = try VARTrainFixture.trainer(images: 8, options: more)
        try b.resume(from: path)
        XCTAssertEqual(b.loop.step, 2)

        // Another config (the plain-ln variant of the same sizes) is refused with a message naming the file.
        let c = try VARTrainFixture.trainer(.plainLN, images: 8, options: more)
        XCTAssertThrowsError(try c.resume(from: path)) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("cannot resume") && text.contains(path), text)
        }
    }

    /// With an EMA: resuming at step 1 gives the uninterrupted run's checkpoint byte for byte (weights, EMA, optimizer),
    /// the export holds the EMA under the official names, and the EMA is e = d e + (1 - d) w after each step.
    func testEMAResumesExactlyAndIsExported() throws {
        func run(steps: Int, path: String, resume: Bool) throws -> VARTrainer {
            var opts = TrainOptions(); opts.steps = steps; opts.batchSize = 4; opts.seed = 3; opts.saveEvery = 1
            let t = try VARTrainFixture.trainer(images: 8, options: opts, ema: 0.9)
            t.loop.checkpointPath = path
            if resume { try t.resume(from: path) }
            try t.run()
            return t
        }
        let whole = VARTrainFixture.tempPath("ema-whole"), split = VARTrainFixture.tempPath("ema-split")
        let exported = VARTrainFixture.tempPath("ema-export")
        defer { for p in [whole, split, exported] { try? FileManager.default.removeItem(atPath: p) } }
        let a = try run(steps: 2, path: whole, resume: false)
        _ = try run(steps: 1, path: split, resume: false)
        let afterOne = try SafetensorsFile(path: split)
        let b = try run(steps: 2, path: split, resume: true)
        XCTAssertEqual(b.loop.step, 2)
        XCTAssertEqual(FileManager.default.contents(atPath: whole), FileManager.default.contents(atPath: split))

        // The second step's EMA from the first one's and the weights after step 2.
        let name = "head.weight"
        let e1 = try afterOne.floatTensor("ema." + name).data
        let w2 = a.model.parameters.first { $0.name == name }!.value.data
        let e2 = try SafetensorsFile(path: whole).floatTensor("ema." + name).data
        for j in [0, e1.count / 2, e1.count - 1] { XCTAssertEqual(e2[j], 0.9 * e1[j] + (1 - 0.9) * w2[j], "ema[\(j)]") }
        XCTAssertNotEqual(e2, w2, "the EMA lags the weights")

        try a.exportWeights(to: exported)
        let file = try SafetensorsFile(path: exported)
        XCTAssertEqual(try file.floatTensor(name).data, e2, "export = the EMA")
        XCTAssertNil(file.info("ema." + name), "no ema.* entries in the export")
        XCTAssertEqual(file.metadata["varlab.weights"], "ema")

        // `varlab train export` of the training checkpoint: the same EMA by default, the raw weights on request.
        let viaExport = VARTrainFixture.tempPath("ema-train-export"), rawExport = VARTrainFixture.tempPath("raw-train-export")
        defer { for p in [viaExport, rawExport] { try? FileManager.default.removeItem(atPath: p) } }
        try TrainCheckpoint.export(from: whole, to: viaExport)
        try TrainCheckpoint.export(from: whole, to: rawExport, useEMA: false)
        let ema = try SafetensorsFile(path: viaExport), raw = try SafetensorsFile(path: rawExport)
        XCTAssertEqual(try ema.floatTensor(name).data, e2)
        XCTAssertEqual(try raw.floatTensor(name).data, w2)
        XCTAssertEqual(Set(ema.keys), Set(file.keys))
        XCTAssertEqual(Set(raw.keys), Set(file.keys), "no ema.* or optimizer entries in either")
        XCTAssertEqual(ema.metadata["varlab.weights"], "ema")
        XCTAssertEqual(raw.metadata["varlab.weights"], "raw")
    }
}
