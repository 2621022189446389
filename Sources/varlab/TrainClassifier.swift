import ArgumentParser
import Foundation
import ImageIO
import Tensor
import Training

/// `varlab train classifier`: the toy classifier (its penultimate features are the toy feature extractor).
struct TrainClassifier: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classifier",
        abstract: "Train the small conv classifier on toy data or an image folder.",
        discussion: """
            Checkpoints (safetensors, config in the metadata, optimizer state included) are written atomically every \
            --save-every steps and at the end; the previous one stays intact until the new one is complete. \
            --resume continues from the -o checkpoint (same config required) and reproduces the uninterrupted run. \
            Deterministic given --seed, for any --threads. At the end the held-out toy accuracy is measured.
            """)

    @Option(help: "Training data: toy or imagefolder:PATH (one sub-folder per class).") var data: String = "toy"
    @Option(help: "Optimizer steps.") var steps: Int = 1200
    @Option(help: "Images per step.") var batchSize: Int = 64
    @Option(help: "Peak learning rate (AdamW, beta 0.9/0.95).") var lr: Float = 2e-3
    @Option(help: "Linear warmup steps (then cosine decay to 1% of the peak).") var warmup: Int = 100
    @Option(help: "Decoupled weight decay (not applied to biases and norm weights).") var weightDecay: Float = 0.05
    @Option(help: "Clip gradients to this global L2 norm.") var clip: Float = 2
    @Option(help: "Seed: initialisation and batch order.") var seed: UInt64 = 0
    @Option(help: "Checkpoint every N steps.") var saveEvery: Int = 250
    @Option(help: "Toy data: size of the training split (indices 0..<N).") var trainSize: Int = 100_000
    @Option(help: "Toy data: dataset seed (the held-out split of the same seed is used for accuracy).") var dataSeed: UInt64 = 0
    @Option(help: "Held-out images for the final accuracy (toy data).") var evalN: Int = 1000
    @Option(help: "Conv block widths, comma-separated.") var channels: String = "32,64,96,128"
    @Option(help: "Penultimate feature width.") var featureDim: Int = 128
    @Option(help: "Probability of turning a training image gray (colour is not part of a toy class).") var grayProb: Float = 0.5
    @Option(help: "Print progress every N steps.") var logEvery: Int = 10
    @Flag(
        help:
            "imagefolder: keep every 10th image of each class out of training and report the accuracy on them (the held-out part `varlab lab --data` judges against)."
    ) var holdOut = false
    @Flag(help: "Continue from the checkpoint at -o.") var resume = false
    @Option(name: [.short, .customLong("output")], help: "Checkpoint path (.safetensors).") var output: String
    @OptionGroup var common: CommonOptions

    func run() throws {
        try common.apply()
        guard logEvery >= 1 else { throw ValidationError("--log-every must be at least 1") }
        let widths = channels.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !widths.isEmpty, widths.count == channels.split(separator: ",").count else {
            throw ValidationError("--channels: expected comma-separated integers, got '\(channels)'")
        }
        var config = ToyClassifierConfig()
        config.channels = widths
        config.featureDim = featureDim
        let source = try TrainData.source(data, trainSize: trainSize, dataSeed: dataSeed, size: config.imageSize, holdOut: holdOut)
        config.classes = source.classCount
        var opts = TrainOptions.classifier
        opts.steps = steps; opts.batchSize = batchSize; opts.lr = lr; opts.warmupSteps = warmup
        opts.weightDecay = weightDecay; opts.clip = clip; opts.seed = seed; opts.saveEvery = saveEvery
        let trainer: ClassifierTrainer
        do { trainer = try ClassifierTrainer(config: config, options: opts) } catch { throw ValidationError("\(error)") }
        trainer.checkpointPath = output
        trainer.dataSummary = source.summary
        guard grayProb >= 0 && grayProb <= 1 else { throw ValidationError("--gray-prob must be in [0, 1], got \(grayProb)") }
        trainer.grayProbability = grayProb
        if resume {
            try trainer.resume(from: output)
            note("resuming from \(output) at step \(trainer.step)")
        } else if FileManager.default.fileExists(atPath: output) {
            note("note: \(output) exists and will be replaced when the first new checkpoint is complete (use --resume to continue it)")
        }
        note("data: \(source.summary)")
        note(
            "model: toy classifier \(widths) -> \(featureDim) features -> \(config.classes) classes, "
                + "\(trainer.model.parameters.reduce(0) { $0 + $1.value.count }) parameters; \(Parallel.threads) threads")
        let t0 = Date()
        do {
            try trainer.run(source: source) { p in
                if p.step % logEvery == 0 || p.step == p.totalSteps {
                    note(TrainData.progressLine(p, String(format: "acc %.2f", p.accuracy)))
                }
            }
        } catch let e as TrainingError {
            throw ValidationError(e.description)
        }
        let seconds = Date().timeIntervalSince(t0)
        note(String(format: "trained to step %d in %@; checkpoint %@", trainer.step, TrainData.duration(seconds), output))
        if data == "toy" && evalN > 0 {
            let held = ToySource(dataset: ToyDataset(seed: dataSeed, split: .heldout, size: config.imageSize), count: evalN)
            let acc = ClassifierTrainer.accuracy(trainer.model, source: held, n: evalN)
            print(
                String(format: "held-out toy accuracy: %.4f on %d images (seed %llu); training time %.1fs", acc, evalN, dataSeed, seconds))
        } else if holdOut {
            let held = try DataSpec(parsing: data).heldOutSource(count: 0, dataSeed: dataSeed, size: config.imageSize)
            let acc = ClassifierTrainer.accuracy(trainer.model, source: held, n: held.count)
            print(
                String(
                    format: "held-out accuracy: %.4f on the %d held-out images of %@; training time %.1fs", acc, held.count, data, seconds))
        }
    }
}

/// Shared data wiring for the trainers.
enum TrainData {
    /// `toy` or `imagefolder:PATH` (`holdOut`: without the folder's held-out part).
    static func source(_ spec: String, trainSize: Int, dataSeed: UInt64, size: Int, holdOut: Bool = false) throws -> LabeledImageSource {
        do {
            let d = try DataSpec(parsing: spec)
            guard holdOut == false || d != .toy else {
                throw ValidationError("--hold-out is for imagefolder data (toy data has its own held-out split)")
            }
            let src = try d.trainSource(trainSize: trainSize, dataSeed: dataSeed, size: size, holdOut: holdOut)
            if case .imageFolder(let path) = d, let f = try? DataSpec.folder(path, size: size), !f.skipped.isEmpty {
                note("imagefolder: skipped \(f.skipped.count) unreadable files (first: \(f.skipped[0]))")
            }
            return src
        } catch let e as TrainingError { throw ValidationError(e.description) }
    }

    /// One progress line of any trainer: step, loss (and its running average), the trainer's own numbers, lr,
    /// gradient norm, throughput and ETA.
    static func progressLine(_ p: TrainProgress, _ extra: String = "") -> String {
        String(
            format: "step %d/%d  loss %.4f (avg %.4f)  %@lr %.2e  |g| %.2f  %.1f samples/s  ETA %@", p.step, p.totalSteps,
            p.loss, p.smoothedLoss, extra.isEmpty ? "" : extra + "  ", p.lr, p.gradNorm, p.samplesPerSecond, duration(p.etaSeconds))
    }

    static func duration(_ s: Double) -> String {
        guard s.isFinite else { return "?" }
        let t = Int(s.rounded())
        return t >= 3600
            ? "\(t / 3600)h\(String(format: "%02d", t / 60 % 60))m" : t >= 60 ? "\(t / 60)m\(String(format: "%02d", t % 60))s" : "\(t)s"
    }
}
