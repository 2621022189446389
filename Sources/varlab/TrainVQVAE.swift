import ArgumentParser
import Foundation
import Tensor
import Training

/// `varlab train vqvae`: the VAR multi-scale VQ-VAE on toy data or an image folder.
struct TrainVQVAE: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vqvae",
        abstract: "Train the multi-scale VQ-VAE (VAR tokenizer): mse reconstruction + the quantiser's commitment loss.",
        discussion: """
            The defaults are the colour recipe for the toy tokenizer: 64 px, 8x8x16 latent, 512 codes, scales \
            1,2,3,4,5,6,8, GroupNorm in one group, He init with identity ResNet blocks, codebook from the first batch's \
            residuals, dead codes restarted every 100 steps (the shipped, grey tokenizer used --norm-groups 32 \
            --conv-init torch --codebook-init uniform --dead-code-restart 0; scripts/train_builtin.sh). The checkpoint uses the official VQ-VAE key names (it loads in the inference VQ-VAE; its patch numbers are \
            in the metadata), includes the optimizer state, and is written atomically every --save-every steps and at the \
            end. --resume continues from -o (same config). Deterministic given --seed, for any --threads. \
            --finetune-decoder BASE trains only the decoder of a trained tokenizer (mse; its tokens, f-hat and codebook \
            stay BASE's, so generators trained on BASE keep working with the result).
            """)

    @Option(help: "Training data: toy or imagefolder:PATH.") var data: String = "toy"
    @Option(help: "Optimizer steps.") var steps: Int = 1000
    @Option(help: "Images per step.") var batchSize: Int = 16
    @Option(help: "Peak learning rate.") var lr: Float = 8e-4
    @Option(help: "Warmup steps.") var warmup: Int = 50
    @Option(help: "Decoupled weight decay.") var weightDecay: Float = 0.05
    @Option(help: "Gradient clipping (global L2 norm).") var clip: Float = 2
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Checkpoint every N steps.") var saveEvery: Int = 100
    @Option(help: "Base width (multiple of 32 with every --ch-mult).") var ch: Int = 32
    @Option(help: "Width multipliers per level, comma-separated (downsampling = 2^(levels-1)).") var chMult: String = "1,1,2,2"
    @Option(help: "ResNet blocks per level.") var resBlocks: Int = 1
    @Option(help: "GroupNorm groups (official 32; every width must be a multiple). 32 groups of one channel each normalise colour away.")
    var normGroups: Int = 1
    @Option(help: "Conv initialisation: he (He, ResNet blocks start as the identity) or torch (PyTorch's default, as the official code).")
    var convInit: String = "he"
    @Option(help: "Codebook initialisation: data (residuals of the first batch) or uniform (the classic ±1/V).") var codebookInit: String =
        "data"
    @Option(help: "Restart codes unused for this many steps as residuals of the batch (0 = never).") var deadCodeRestart: Int = 100
    @Option(help: "Latent channels.") var zChannels: Int = 16
    @Option(help: "Codebook size.") var vocab: Int = 512
    @Option(help: "Scale schedule (patch numbers), the last = latent size.") var patchNums: String = "1,2,3,4,5,6,8"
    @Option(help: "Toy data: training split size.") var trainSize: Int = 100_000
    @Option(help: "Toy data: dataset seed.") var dataSeed: UInt64 = 0
    @Option(help: "Held-out images for the final reconstruction error (toy data).") var evalN: Int = 64
    @Option(help: "Print progress every N steps.") var logEvery: Int = 10
    @Option(
        help: ArgumentHelp(
            "Fine-tune only the decoder (and post_quant_conv) of this trained tokenizer (a checkpoint or its export): every image keeps its tokens, so VAR and DiT trained on BASE stay valid. Architecture and codebook options come from BASE.",
            valueName: "base"))
    var finetuneDecoder: String?
    @Flag(help: "Continue from the checkpoint at -o.") var resume = false
    @Option(name: [.short, .customLong("output")], help: "Checkpoint path (.safetensors).") var output: String
    @OptionGroup var common: CommonOptions

    func ints(_ s: String, _ name: String) throws -> [Int] {
        let v = s.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !v.isEmpty, v.allSatisfy({ $0 != nil }) else {
            throw ValidationError("\(name): expected comma-separated integers, got '\(s)'")
        }
        return v.map { $0! }
    }

    func run() throws {
        try common.apply()
        guard logEvery >= 1 else { throw ValidationError("--log-every must be at least 1") }
        var config = VQVAERunConfig()
        config.model.ch = ch; config.model.chMult = try ints(chMult, "--ch-mult"); config.model.numResBlocks = resBlocks
        config.model.normGroups = normGroups
        guard codebookInit == "data" || codebookInit == "uniform" else {
            throw ValidationError("--codebook-init must be data or uniform, got '\(codebookInit)'")
        }
        guard deadCodeRestart >= 0 else {
            throw ValidationError("--dead-code-restart must be 0 (off) or a step count, got \(deadCodeRestart)")
        }
        config.dataInitCodebook = codebookInit == "data"; config.deadCodeRestartEvery = deadCodeRestart
        guard convInit == "he" || convInit == "torch" else { throw ValidationError("--conv-init must be he or torch, got '\(convInit)'") }
        config.heInit = convInit == "he"
        config.model.zChannels = zChannels; config.model.vocabSize = vocab; config.patchNums = try ints(patchNums, "--patch-nums")
        config.imageSize = 64
        var opts = TrainOptions()
        opts.steps = steps; opts.batchSize = batchSize; opts.lr = lr; opts.warmupSteps = warmup
        opts.weightDecay = weightDecay; opts.clip = clip; opts.seed = seed; opts.saveEvery = saveEvery
        let trainer: VQVAETrainer
        do {
            if let base = finetuneDecoder {
                trainer = try VQVAETrainer(finetuningDecoderOf: base, options: opts)
                config = trainer.config
            } else {
                trainer = try VQVAETrainer(config: config, options: opts)
            }
        } catch { throw ValidationError("\(error)") }
        let source = try TrainData.source(data, trainSize: trainSize, dataSeed: dataSeed, size: config.imageSize)
        trainer.dataSummary = source.summary
        trainer.loop.checkpointPath = output
        do {
            if resume { try trainer.resume(from: output); note("resuming from \(output) at step \(trainer.loop.step)") }
        } catch let e as TrainingError { throw ValidationError(e.description) }
        note("data: \(source.summary)")
        let trained = trainer.loop.params.reduce(0) { $0 + $1.value.count }
        note(
            "model: VQ-VAE ch \(config.model.ch) x \(config.model.chMult), z \(config.model.zChannels), vocab \(config.model.vocabSize), "
                + "scales \(config.patchNums); \(trainer.model.parameters.reduce(0) { $0 + $1.value.count }) parameters"
                + (config.decoderOnly ? ", \(trained) trained (decoder fine-tuning of \(trainer.finetunedFrom ?? "?"))" : "")
                + "; \(Parallel.threads) threads")
        let t0 = Date()
        do {
            try trainer.run(source: source) { p in
                if p.step % logEvery == 0 || p.step == p.totalSteps {
                    note(TrainData.progressLine(p, String(format: "recon %.4f  vq %.4f", trainer.lastRecon, trainer.lastVQ)))
                    note("  codebook: " + trainer.usage.summary + "; restarted \(trainer.restartedCodes) so far")
                    trainer.usage.reset()
                }
            }
        } catch let e as TrainingError { throw ValidationError(e.description) }
        let seconds = Date().timeIntervalSince(t0)
        note(String(format: "trained to step %d in %@; checkpoint %@", trainer.loop.step, TrainData.duration(seconds), output))
        if data == "toy" && evalN > 0 {
            let held = ToySource(dataset: ToyDataset(seed: dataSeed, split: .heldout, size: config.imageSize), count: evalN)
            print(
                String(
                    format: "held-out reconstruction mse: %.5f on %d toy images; training time %.1fs",
                    trainer.reconstructionMSE(source: held, n: evalN), evalN, seconds))
        }
    }
}
