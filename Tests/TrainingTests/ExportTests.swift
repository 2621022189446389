import Foundation
import ModelIO
import Tensor
import Training
import XCTest

/// `varlab train export`: the shipped files are training checkpoints without the optimizer state.
final class ExportTests: XCTestCase {
    func tmp(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("varlab-export-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name).path
    }

    func trainedCheckpoint() throws -> (path: String, model: ToyClassifier) {
        var c = ToyClassifierConfig()
        c.imageSize = 32; c.channels = [8, 16]; c.downsamples = 2; c.groups = 4; c.featureDim = 16
        var o = TrainOptions.classifier
        o.steps = 3; o.batchSize = 4; o.warmupSteps = 1; o.saveEvery = 3; o.seed = 2
        let t = try ClassifierTrainer(config: c, options: o)
        let path = tmp("cls.safetensors")
        t.loop.checkpointPath = path
        try t.run(source: ToySource(dataset: ToyDataset(seed: 0, size: 32), count: 100)) { _ in }
        return (path, t.model)
    }

    func testExportDropsOptimizerStateAndKeepsWeightsAndMetadata() throws {
        let (path, model) = try trainedCheckpoint()
        let out = tmp("cls-export.safetensors")
        let n = try TrainCheckpoint.export(from: path, to: out)
        let full = try SafetensorsFile(path: path), slim = try SafetensorsFile(path: out)
        XCTAssertTrue(full.keys.contains { $0.hasPrefix("optimizer.") }, "the training checkpoint has optimizer state")
        XCTAssertFalse(slim.keys.contains { $0.hasPrefix("optimizer.") })
        XCTAssertEqual(n, model.parameters.count)
        XCTAssertEqual(Set(slim.keys), Set(model.parameters.map(\.name)))
        for key in ["varlab.model", "varlab.config", "varlab.step"] { XCTAssertEqual(slim.metadata[key], full.metadata[key], key) }
        // The exported file is a loadable model with the same weights.
        let loaded = try ToyClassifier.load(path: out)
        XCTAssertEqual(loaded.parameters.flatMap { $0.value.data }, model.parameters.flatMap { $0.value.data })
    }

    func testHalfExportRoundsToFloat16() throws {
        let (path, model) = try trainedCheckpoint()
        let out = tmp("cls-half.safetensors")
        try TrainCheckpoint.export(from: path, to: out, half: true)
        let loaded = try ToyClassifier.load(path: out)
        for (a, b) in zip(loaded.parameters, model.parameters) {
            for (x, y) in zip(a.value.data, b.value.data) {
                XCTAssertEqual(x, Float(Float16(y)), "\(a.name): float16 rounding of the trained weight")
            }
        }
    }

    func testExportRejectsForeignFiles() throws {
        var w = SafetensorsWriter()
        w.add("x", Tensor(zeros: [2]))
        let p = tmp("foreign.safetensors")
        try w.write(to: p)
        XCTAssertThrowsError(try TrainCheckpoint.export(from: p, to: tmp("o.safetensors"))) { e in
            XCTAssertTrue("\(e)".contains(p), "names the file: \(e)")
        }
    }
}
