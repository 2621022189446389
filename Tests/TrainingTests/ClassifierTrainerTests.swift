import Foundation
import Layers
import ModelIO
import Tensor
import Training
import XCTest

final class ClassifierTrainerTests: XCTestCase {
    func tinyConfig() -> ToyClassifierConfig {
        var c = ToyClassifierConfig()
        c.imageSize = 32; c.channels = [8, 16]; c.downsamples = 2; c.groups = 4; c.featureDim = 16
        return c
    }
    func tinyOptions(steps: Int) -> TrainOptions {
        var o = TrainOptions.classifier
        o.steps = steps; o.batchSize = 8; o.warmupSteps = 2; o.saveEvery = 3; o.seed = 5
        return o
    }
    func tmp(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("varlab-train-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name).path
    }
    var source: ToySource { ToySource(dataset: ToyDataset(seed: 0, size: 32), count: 500) }

    /// The full model's gradient (conv, GN, SiLU, pool, linear, CE chained) against finite differences of the
    /// float32 forward on a few weights: a whole-network chain-rule check.
    func testWholeNetworkGradientMatchesFiniteDifferences() throws {
        let model = try ToyClassifier(config: tinyConfig(), seed: 1)
        let (x, y) = source.batch([0, 1, 2, 3])
        for p in model.parameters { p.zeroGrad() }
        let (loss0, dl, _) = Losses.softmaxCrossEntropy(logits: model.forward(x).logits, labels: y)
        XCTAssertTrue(loss0.isFinite)
        model.backward(dLogits: dl)
        for p in model.parameters.filter({ $0.name.hasSuffix("weight") }) {
            for i in [0, p.value.count / 2, p.value.count - 1] {
                let v = p.value.data[i], h: Float = 1e-2
                p.value.data[i] = v + h
                let lp = Losses.softmaxCrossEntropy(logits: model.forward(x).logits, labels: y).loss
                p.value.data[i] = v - h
                let lm = Losses.softmaxCrossEntropy(logits: model.forward(x).logits, labels: y).loss
                p.value.data[i] = v
                let num = (lp - lm) / Double(2 * h)
                XCTAssertEqual(Double(p.grad.data[i]), num, accuracy: 2e-3 + 0.02 * abs(num), "\(p.name)[\(i)]")
            }
        }
    }

    func testTrainingReducesLossAndIsThreadIndependent() throws {
        func train(threads: Int) throws -> [Float] {
            let saved = Parallel.threads
            Parallel.threads = threads
            defer { Parallel.threads = saved }
            let t = try ClassifierTrainer(config: tinyConfig(), options: tinyOptions(steps: 30))
            var losses: [Double] = []
            try t.run(source: source) { losses.append($0.loss) }
            XCTAssertLessThan(losses.suffix(5).reduce(0, +) / 5, losses.prefix(5).reduce(0, +) / 5, "loss goes down")
            return t.model.parameters.flatMap { $0.value.data }
        }
        XCTAssertEqual(try train(threads: 1), try train(threads: 2), "bit-identical for any thread count")
    }

    /// Random-grayscale augmentation changes what is trained on (so the weights differ from p = 0), and is a pure
    /// function of (seed, step): bit-identical for any thread count, and recorded in the checkpoint.
    func testGrayAugmentationIsDeterministicAndRecorded() throws {
        func train(gray: Float, threads: Int) throws -> (weights: [Float], meta: String?) {
            let saved = Parallel.threads
            Parallel.threads = threads
            defer { Parallel.threads = saved }
            let t = try ClassifierTrainer(config: tinyConfig(), options: tinyOptions(steps: 3))
            t.grayProbability = gray
            let path = tmp("gray-\(gray)-\(threads).safetensors")
            t.checkpointPath = path
            try t.run(source: source) { _ in }
            return (t.model.parameters.flatMap { $0.value.data }, try SafetensorsFile(path: path).metadata["varlab.augment"])
        }
        let a = try train(gray: 0.5, threads: 1), b = try train(gray: 0.5, threads: 2), plain = try train(gray: 0, threads: 1)
        XCTAssertEqual(a.weights, b.weights)
        XCTAssertNotEqual(a.weights, plain.weights)
        XCTAssertEqual(a.meta, "gray_p=0.5")
    }

    func testResumeReproducesUninterruptedRunAndRejectsOtherConfig() throws {
        let straight = try ClassifierTrainer(config: tinyConfig(), options: tinyOptions(steps: 8))
        try straight.run(source: source)
        // Interrupt a run with the same options after step 3 (its images turn NaN at step 4), then resume it.
        let stopper = try ClassifierTrainer(config: tinyConfig(), options: tinyOptions(steps: 8))
        let p3 = tmp("step3.safetensors")
        stopper.checkpointPath = p3
        XCTAssertThrowsError(try stopper.run(source: FailingSource(base: source, nanFromStep: 4, batchSize: 8)))
        let ck = try TrainCheckpoint.read(path: p3, model: ToyClassifier.modelName)
        XCTAssertEqual(ck.step, 3, "the last good checkpoint (step 3) is kept")
        let resumed = try ClassifierTrainer(config: tinyConfig(), options: tinyOptions(steps: 8))
        try resumed.resume(from: p3)
        XCTAssertEqual(resumed.step, 3)
        try resumed.run(source: source)
        XCTAssertEqual(
            resumed.model.parameters.flatMap { $0.value.data }, straight.model.parameters.flatMap { $0.value.data },
            "resume continues the uninterrupted run exactly")
        var other = tinyConfig(); other.featureDim = 24
        let wrong = try ClassifierTrainer(config: other, options: tinyOptions(steps: 8))
        XCTAssertThrowsError(try wrong.resume(from: p3)) { e in
            XCTAssertTrue("\(e)".contains("config"), "\(e)")
        }
    }

    func testNaNLossStopsWithStepAndKeepsCheckpoint() throws {
        let t = try ClassifierTrainer(config: tinyConfig(), options: tinyOptions(steps: 10))
        let path = tmp("nan.safetensors")
        t.checkpointPath = path
        XCTAssertThrowsError(try t.run(source: FailingSource(base: source, nanFromStep: 5, batchSize: 8))) { e in
            guard case let TrainingError.diverged(step, _, kept) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(step, 5)
            XCTAssertEqual(kept, path)
        }
        XCTAssertEqual(try TrainCheckpoint.read(path: path, model: ToyClassifier.modelName).step, 3)
        // The checkpoint loads as a model.
        XCTAssertNoThrow(try ToyClassifier.load(path: path))
    }
}

/// A source whose images turn NaN from a given (1-based) step on; it counts batches to know the step.
final class FailingSource: LabeledImageSource {
    let base: ToySource, nanFromStep: Int, batchSize: Int
    var calls = 0
    init(base: ToySource, nanFromStep: Int, batchSize: Int) { self.base = base; self.nanFromStep = nanFromStep; self.batchSize = batchSize }
    var count: Int { base.count }
    var classCount: Int { base.classCount }
    var imageSize: Int { base.imageSize }
    var summary: String { "failing" }
    func batch(_ indices: [Int]) -> (images: Tensor, labels: [Int]) {
        calls += 1
        var b = base.batch(indices)
        if calls >= nanFromStep { b.images = b.images.map { _ in .nan } }
        return b
    }
}
