import Foundation
import Tensor

/// Training options of the classifier (stored as JSON in the checkpoint's `varlab.train`).
public struct ClassifierTrainOptions: Codable, Equatable, Sendable {
    public var steps = 1200
    public var batchSize = 64
    public var lr: Float = 2e-3
    public var warmupSteps = 100
    public var weightDecay: Float = 0.05
    public var clip: Float = 2
    public var seed: UInt64 = 0
    public var saveEvery = 250
    public init() {}
}

/// One progress report.
public struct TrainProgress: Sendable {
    public let step: Int          // steps done (1-based)
    public let totalSteps: Int
    public let loss: Double       // this step's loss
    public let smoothedLoss: Double
    public let accuracy: Double   // this step's batch accuracy
    public let lr: Float
    public let gradNorm: Double
    public let samplesPerSecond: Double
    public let etaSeconds: Double
}

/// Trains the toy classifier with AdamW + warmup/cosine schedule + clipping on softmax cross-entropy.
///
/// Determinism: parameters are initialised from Philox streams of `seed`; the batch of step s is drawn from the
/// Philox stream 2^40 + s (uniform indices into the source), every op splits work by shape only, so a run is a
/// pure function of (options, data) whatever the thread count, and a resumed run continues exactly where the
/// interrupted one would have gone.
public final class ClassifierTrainer {
    public let model: ToyClassifier
    public let options: ClassifierTrainOptions
    public let optimizer: AdamW
    public let schedule: LRSchedule
    public private(set) var step = 0
    public var checkpointPath: String?
    public var dataSummary = ""

    public init(config: ToyClassifierConfig, options: ClassifierTrainOptions) throws {
        guard options.steps >= 1, options.batchSize >= 1, options.lr > 0, options.saveEvery >= 1 else {
            throw TrainingError.config("steps, batch size, save interval and learning rate must be positive")
        }
        model = try ToyClassifier(config: config, seed: options.seed)
        self.options = options
        optimizer = AdamW(model.parameters, beta1: 0.9, beta2: 0.95, weightDecay: options.weightDecay)
        schedule = LRSchedule(peak: options.lr, warmupSteps: options.warmupSteps, totalSteps: options.steps, decay: .cosine)
    }

    /// Continues from a checkpoint of the same model config (weights, optimizer moments, step).
    public func resume(from path: String) throws {
        let ck = try TrainCheckpoint.read(path: path, model: ToyClassifier.modelName)
        let mine = try model.config.canonicalJSON()
        guard ck.configJSON == mine else {
            throw TrainingError.checkpoint("\(path) was trained with config \(ck.configJSON), this run uses \(mine); cannot resume")
        }
        try ck.loadParameters(model.parameters)
        try ck.loadOptimizer(optimizer)
        step = ck.step
        guard step <= options.steps else {
            throw TrainingError.checkpoint("\(path) is at step \(step), beyond --steps \(options.steps)")
        }
    }

    /// Batch indices of step `s` (a pure function of seed and step).
    public func batchIndices(step s: Int, count: Int) -> [Int] {
        var rng = PhiloxRandom(seed: options.seed, stream: (1 << 40) + UInt64(s))
        return (0..<options.batchSize).map { _ in Int(rng.nextUInt32()) % count }
    }

    public func save(to path: String) throws {
        try TrainCheckpoint.write(path: path, model: ToyClassifier.modelName, configJSON: try model.config.canonicalJSON(),
                                  step: step, params: model.parameters, optimizer: optimizer,
                                  extra: ["varlab.train": try options.canonicalJSON(), "varlab.data": dataSummary])
    }

    /// Runs until `options.steps`. Checkpoints every `saveEvery` steps and at the end when `checkpointPath` is set.
    /// A non-finite loss or gradient stops training with `TrainingError.diverged` before the weights are touched;
    /// the last checkpoint on disk is the last good one.
    public func run(source: LabeledImageSource, progress: (TrainProgress) -> Void = { _ in }) throws {
        guard source.classCount == model.config.classes else {
            throw TrainingError.config("data has \(source.classCount) classes, the model \(model.config.classes)")
        }
        guard source.imageSize == model.config.imageSize else {
            throw TrainingError.config("data images are \(source.imageSize)px, the model expects \(model.config.imageSize)px")
        }
        let params = model.parameters
        let t0 = Date()
        let first = step
        var smoothed = Double.nan
        var lastSaved: String? = checkpointPath.flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil }
        while step < options.steps {
            let (x, y) = source.batch(batchIndices(step: step, count: source.count))
            for p in params { p.zeroGrad() }
            let (_, logits) = model.forward(x)
            let (loss, dl, correct) = Losses.softmaxCrossEntropy(logits: logits, labels: y)
            guard loss.isFinite else { throw TrainingError.diverged(step: step + 1, loss: loss, kept: lastSaved) }
            model.backward(dLogits: dl)
            let norm = clipGradNorm(params, maxNorm: options.clip)
            guard norm.isFinite else { throw TrainingError.diverged(step: step + 1, loss: loss, kept: lastSaved) }
            let lr = schedule.lr(step)
            optimizer.update(lr: lr)
            step += 1
            smoothed = smoothed.isNaN ? loss : 0.95 * smoothed + 0.05 * loss
            let elapsed = Date().timeIntervalSince(t0)
            let rate = Double((step - first) * options.batchSize) / max(elapsed, 1e-9)
            progress(TrainProgress(step: step, totalSteps: options.steps, loss: loss, smoothedLoss: smoothed,
                                   accuracy: Double(correct) / Double(y.count), lr: lr, gradNorm: norm,
                                   samplesPerSecond: rate,
                                   etaSeconds: Double(options.steps - step) * elapsed / Double(step - first)))
            if let path = checkpointPath, step % options.saveEvery == 0 || step == options.steps {
                try save(to: path)
                lastSaved = path
            }
        }
    }

    /// Top-1 accuracy of the model on `n` images of a source (indices 0..<n).
    public static func accuracy(_ model: ToyClassifier, source: LabeledImageSource, n: Int, batchSize: Int = 100) -> Double {
        var correct = 0, i = 0
        let total = min(n, source.count)
        while i < total {
            let j = min(total, i + batchSize)
            let (x, y) = source.batch(Array(i..<j))
            let pred = model.forward(x).logits.argmaxLastAxis()
            correct += zip(pred, y).filter { $0 == $1 }.count
            i = j
        }
        return Double(correct) / Double(max(total, 1))
    }
}
