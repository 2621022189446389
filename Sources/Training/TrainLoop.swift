import Foundation
import Layers
import Tensor

/// Options every trainer shares (stored as JSON in the checkpoint's `varlab.train`).
public struct TrainOptions: Codable, Equatable, Sendable {
    public var steps = 1000
    public var batchSize = 16
    public var lr: Float = 3e-4
    public var warmupSteps = 50
    public var weightDecay: Float = 0.05
    public var clip: Float = 2
    public var seed: UInt64 = 0
    public var saveEvery = 100
    public init() {}

    /// The toy classifier's defaults (the measured 1200-step run).
    public static var classifier: TrainOptions {
        var o = TrainOptions()
        o.steps = 1200; o.batchSize = 64; o.lr = 2e-3; o.warmupSteps = 100; o.saveEvery = 250
        return o
    }

    public func validate() throws {
        guard steps >= 1, batchSize >= 1, lr > 0, saveEvery >= 1, warmupSteps >= 0, clip >= 0, weightDecay >= 0 else {
            throw TrainingError.config("steps, batch size, save interval and learning rate must be positive")
        }
    }
}

/// One progress report.
public struct TrainProgress: Sendable {
    public let step: Int  // steps done (1-based)
    public let totalSteps: Int
    public let loss: Double  // this step's loss
    public let smoothedLoss: Double
    public let accuracy: Double  // this step's batch accuracy (NaN where it has no meaning)
    public let lr: Float
    public let gradNorm: Double
    public let samplesPerSecond: Double
    public let etaSeconds: Double
}

/// The shared optimisation loop: batch of step s = Philox stream 2^40 + s (pure function of seed and step),
/// zero grads -> `step(batch)` (forward + backward, returns the loss and, for classifiers, the batch accuracy)
/// -> NaN check -> global-norm clipping ->
/// AdamW with warmup + cosine -> progress -> atomic checkpoint every `saveEvery` steps and at the end.
/// A non-finite loss or gradient stops with `TrainingError.diverged` before the weights change; the checkpoint
/// on disk is then the last good one.
public final class TrainLoop {
    public let options: TrainOptions
    public let params: [Parameter]
    public let optimizer: AdamW
    public let schedule: LRSchedule
    public var step = 0
    public var checkpointPath: String?
    /// Writes a checkpoint of the current state to a path (the trainer knows the model name and config).
    public var save: (String) throws -> Void = { _ in }

    public init(params: [Parameter], options: TrainOptions) throws {
        try options.validate()
        self.options = options; self.params = params
        optimizer = AdamW(params, beta1: 0.9, beta2: 0.95, weightDecay: options.weightDecay)
        schedule = LRSchedule(peak: options.lr, warmupSteps: options.warmupSteps, totalSteps: options.steps, decay: .cosine)
    }

    public func batchIndices(step s: Int, count: Int) -> [Int] {
        var rng = PhiloxRandom(seed: options.seed, stream: (1 << 40) + UInt64(s))
        return (0..<options.batchSize).map { _ in Int(rng.nextUInt32()) % count }
    }

    public func run(
        source: LabeledImageSource, step body: (Tensor, [Int]) -> (loss: Double, accuracy: Double),
        progress: (TrainProgress) -> Void = { _ in }
    ) throws {
        try run(
            count: source.count,
            step: { indices in
                let (x, y) = source.batch(indices); return body(x, y)
            },
            progress: progress)
    }

    /// The same loop over any indexed training set of `count` items (e.g. precomputed token maps): `body` gets
    /// the step's batch indices (`batchIndices(step:count:)`); `step` is still the 0-based step being run.
    public func run(
        count: Int, step body: ([Int]) -> (loss: Double, accuracy: Double),
        progress: (TrainProgress) -> Void = { _ in }
    ) throws {
        let t0 = Date()
        let first = step
        var smoothed = Double.nan
        var lastSaved: String? = checkpointPath.flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil }
        while step < options.steps {
            let indices = batchIndices(step: step, count: count)
            for p in params { p.zeroGrad() }
            let (loss, accuracy) = body(indices)
            guard loss.isFinite else { throw TrainingError.diverged(step: step + 1, loss: loss, kept: lastSaved) }
            let norm = clipGradNorm(params, maxNorm: options.clip)
            guard norm.isFinite else { throw TrainingError.diverged(step: step + 1, loss: loss, kept: lastSaved) }
            let lr = schedule.lr(step)
            optimizer.update(lr: lr)
            step += 1
            smoothed = smoothed.isNaN ? loss : 0.95 * smoothed + 0.05 * loss
            let elapsed = Date().timeIntervalSince(t0)
            progress(
                TrainProgress(
                    step: step, totalSteps: options.steps, loss: loss, smoothedLoss: smoothed, accuracy: accuracy,
                    lr: lr, gradNorm: norm,
                    samplesPerSecond: Double((step - first) * options.batchSize) / max(elapsed, 1e-9),
                    etaSeconds: Double(options.steps - step) * elapsed / Double(step - first)))
            if let path = checkpointPath, step % options.saveEvery == 0 || step == options.steps {
                try save(path)
                lastSaved = path
            }
        }
    }
}
