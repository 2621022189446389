import Autoencoders
import DiT
import Foundation
import Generation
import ModelIO
import Tensor
import Training
import VAR

/// A VAR-family transformer as the lab trains it: variant and size (the rest is the built-in toy recipe).
public struct VARSpec: Sendable, Equatable {
    public var variant: VARVariant
    public var depth: Int
    public var width: Int
    public var heads: Int

    public init(_ variant: VARVariant = .next, depth: Int, width: Int, heads: Int) {
        self.variant = variant; self.depth = depth; self.width = width; self.heads = heads
    }

    /// "VAR d4 w128", "raster AR d4 w128", "VAR without AdaLN d4 w128".
    public var name: String {
        let family = ["var": "VAR", "ar": "raster AR", "plain-ln": "VAR without AdaLN"][variant.rawValue] ?? variant.rawValue
        return "\(family) d\(depth) w\(width)"
    }

    var inputs: [String: String] {
        ["variant": variant.rawValue, "depth": "\(depth)", "width": "\(width)", "heads": "\(heads)"]
    }

    init(inputs i: [String: String], prefix: String = "") throws {
        guard let v = i[prefix + "variant"].flatMap(VARVariant.init(rawValue:)), let d = i[prefix + "depth"].flatMap(Int.init),
            let w = i[prefix + "width"].flatMap(Int.init), let h = i[prefix + "heads"].flatMap(Int.init)
        else { throw LabError("cell inputs do not describe a VAR model: \(i)") }
        self.init(v, depth: d, width: w, heads: h)
    }

    var tokenKind: VARTokenSet.Kind { variant == .ar ? .finestOnly : .multiScale }

    func config(tokenizer: VQVAE, classes: Int) throws -> VARConfig {
        var c = VARConfig()
        c.variant = variant; c.depth = depth; c.width = width; c.heads = heads
        c.vocabSize = tokenizer.quantizer.vocabSize; c.cvae = tokenizer.quantizer.channels; c.patchNums = tokenizer.patchNums
        c.numClasses = classes
        do { try c.validateForTraining() } catch { throw LabError("\(name): \(error)") }
        return c
    }
}

/// A DiT as the lab trains it on the tokenizer's f-hat (patch 2, no learned sigma, the official uniform loss).
public struct DiTSpec: Sendable, Equatable {
    public var depth: Int
    public var hidden: Int
    public var heads: Int
    public init(depth: Int, hidden: Int, heads: Int) { self.depth = depth; self.hidden = hidden; self.heads = heads }

    public var name: String { "DiT d\(depth) h\(hidden)" }
    var inputs: [String: String] { ["depth": "\(depth)", "hidden": "\(hidden)", "heads": "\(heads)"] }

    init(inputs i: [String: String]) throws {
        guard let d = i["depth"].flatMap(Int.init), let h = i["hidden"].flatMap(Int.init), let n = i["heads"].flatMap(Int.init) else {
            throw LabError("cell inputs do not describe a DiT: \(i)")
        }
        self.init(depth: d, hidden: h, heads: n)
    }

    func config(latentShape: [Int], classes: Int) throws -> DiTConfig {
        let c = DiTConfig(
            inputSize: latentShape[1], patchSize: 2, inChannels: latentShape[0], hiddenSize: hidden, depth: depth, numHeads: heads,
            numClasses: classes, learnSigma: false)
        do { try c.validate() } catch { throw LabError("\(name): \(error)") }
        return c
    }
}

/// The cells that train: encode the toy data once with the tokenizer (tokens for VAR, f-hat for DiT; train and
/// held-out splits), train a model for a number of steps or a FLOP budget, and measure its held-out loss. Shared by
/// the ablation and scaling studies (and open to new ones); a cell's hash does not name its study, so studies on the
/// same data reuse one encoding.
public struct TrainingCells: Sendable {
    public let vae: String
    public let vaeSHA: String
    public let trainImages: Int
    public let heldOutImages: Int
    public let data: DataSpec
    /// The data in every encoding cell's inputs (none for the toy data).
    let dataInputs: [String: String]

    /// `vae`: the tokenizer file (VAR VQ-VAE); the data's first `trainImages` training images (an image folder's
    /// without its held-out part) and first `heldOutImages` held-out images.
    public init(vae: String, trainImages: Int, heldOutImages: Int, data: DataSpec = .toy) throws {
        self.vae = vae
        vaeSHA = try LabFiles.sha256(vae)
        self.trainImages = trainImages
        self.heldOutImages = heldOutImages
        self.data = data
        dataInputs = try LabFiles.inputs(data)
    }

    static let dataSeed: UInt64 = 0

    /// The data of a budget's trained studies (one per budget, so the studies share their encoding cells).
    init(_ budget: Budget, vae: String, data: DataSpec) throws {
        try self.init(
            vae: vae, trainImages: budget == .small ? 4000 : 10000, heldOutImages: budget == .small ? 500 : 1000, data: data)
    }

    public enum Split: String, Sendable { case train, heldout }

    public func tokens(_ kind: VARTokenSet.Kind, _ split: Split) -> Cell {
        Cell(
            kind: "encode-tokens", group: "\(kind.rawValue) tokens, \(split.rawValue)", seed: Self.dataSeed,
            inputs: [
                "vae_sha256": vaeSHA, "token_kind": kind.rawValue, "split": split.rawValue,
                "n": "\(split == .train ? trainImages : heldOutImages)",
            ].merging(dataInputs) { $1 })
    }

    public func latents(_ split: Split) -> Cell {
        Cell(
            kind: "encode-latents", group: "f-hat latents, \(split.rawValue)", seed: Self.dataSeed,
            inputs: ["vae_sha256": vaeSHA, "split": split.rawValue, "n": "\(split == .train ? trainImages : heldOutImages)"]
                .merging(dataInputs) { $1 })
    }

    /// Train `spec` with `seed` for `steps` steps, or (with `matching`) for as many steps as give the FLOPs of
    /// `matching` trained for `steps` steps (GEMM FLOPs of one step, counted).
    public func trainVAR(
        _ spec: VARSpec, steps: Int, matching: VARSpec? = nil, batch: Int, lr: Float, seed: UInt64, group: String? = nil
    )
        -> Cell
    {
        var i = spec.inputs
        i["vae_sha256"] = vaeSHA
        i["steps"] = "\(steps)"
        i["batch"] = "\(batch)"
        i["lr"] = "\(lr)"
        if let m = matching { for (k, v) in m.inputs { i["match_" + k] = v } }
        return Cell(
            kind: "train-var", group: group ?? spec.name, seed: seed, inputs: i,
            needs: [tokens(spec.tokenKind, .train).hash, tokens(spec.tokenKind, .heldout).hash])
    }

    public func trainDiT(_ spec: DiTSpec, steps: Int, batch: Int, lr: Float, seed: UInt64) -> Cell {
        var i = spec.inputs
        i["vae_sha256"] = vaeSHA
        i["steps"] = "\(steps)"
        i["batch"] = "\(batch)"
        i["lr"] = "\(lr)"
        return Cell(kind: "train-dit", group: spec.name, seed: seed, inputs: i, needs: [latents(.train).hash, latents(.heldout).hash])
    }

    /// Runs a training-kind cell; nil for other kinds.
    public func run(_ cell: Cell, context: LabContext) throws -> (metrics: [String: Double], outputs: [String: String])? {
        switch cell.kind {
        case "encode-tokens", "encode-latents": return try encode(cell, context: context)
        case "train-var": return try trainVAR(cell, context: context)
        case "train-dit": return try trainDiT(cell, context: context)
        default: return nil
        }
    }

    /// The first `count` images of a split (fewer when an image folder's part has fewer).
    func source(_ split: String, count: Int, size: Int) throws -> LabeledImageSource {
        split == "train"
            ? try data.trainSource(trainSize: count, dataSeed: Self.dataSeed, size: size, holdOut: true)
            : try data.heldOutSource(count: count, dataSeed: Self.dataSeed, size: size)
    }

    /// Class count and names of the data (the models' label space).
    func classes(size: Int) throws -> (count: Int, names: [String]) {
        let s = try data.trainSource(trainSize: 1, dataSeed: Self.dataSeed, size: size)
        return (s.classCount, s.classNames)
    }

    func encode(_ cell: Cell, context: LabContext) throws -> (metrics: [String: Double], outputs: [String: String]) {
        let vq = try VQLatentCodec.loadVQVAE(path: vae)
        guard let asked = cell.inputs["n"].flatMap(Int.init), let split = cell.inputs["split"] else { throw LabError("bad encode cell") }
        let src = try source(split, count: asked, size: vq.imageSize)
        let n = min(asked, src.count)
        let folder = try context.outputFolder(cell)
        let t0 = Date()
        var last = Date()
        let progress: (Int) -> Void = { done in
            if Date().timeIntervalSince(last) > 15 || done == n {
                last = Date()
                context.log(String(format: "  encoded %d/%d (%.0f images/s)", done, n, Double(done) / Date().timeIntervalSince(t0)))
            }
        }
        if cell.kind == "encode-tokens" {
            guard let kind = cell.inputs["token_kind"].flatMap(VARTokenSet.Kind.init(rawValue:)) else { throw LabError("bad token kind") }
            let set = try VARTokenSet.encode(vae: vq, source: src, count: n, kind: kind, progress: progress)
            try set.write(to: (folder.absolute as NSString).appendingPathComponent("tokens.safetensors"), fingerprint: cell.hash)
            return (["images": Double(n)], ["tokens": folder.relative + "/tokens.safetensors"])
        }
        let set = try LatentSet.encode(source: src, count: n, codec: VQLatentCodec(vae: vq, scale: 1), progress: progress)
        try set.write(path: (folder.absolute as NSString).appendingPathComponent("latents.safetensors"), key: cell.hash)
        return (["images": Double(n)], ["latents": folder.relative + "/latents.safetensors"])
    }

    /// The output file `role` of a finished cell this one needs.
    func needed(_ cell: Cell, _ hash: String, _ role: String, context: LabContext) throws -> String {
        guard let r = context.results[hash], let rel = r.outputs[role] else {
            throw LabError("cell \(cell.group) (seed \(cell.seed)) needs cell \(hash) first")
        }
        return context.absolute(rel)
    }

    func loadTokens(_ cell: Cell, _ kind: VARTokenSet.Kind, _ split: Split, context: LabContext) throws -> VARTokenSet {
        let c = tokens(kind, split)
        let path = try needed(cell, c.hash, "tokens", context: context)
        guard let set = try VARTokenSet.read(path: path, fingerprint: c.hash) else {
            throw LabError("\(path): not the tokens of cell \(c.hash)")
        }
        return set
    }

    func loadLatents(_ cell: Cell, _ split: Split, context: LabContext) throws -> LatentSet {
        let c = latents(split)
        let path = try needed(cell, c.hash, "latents", context: context)
        guard let set = try LatentSet.read(path: path, key: c.hash) else { throw LabError("\(path): not the latents of cell \(c.hash)") }
        return set
    }

    func options(_ cell: Cell, steps: Int) throws -> TrainOptions {
        guard let batch = cell.inputs["batch"].flatMap(Int.init), let lr = cell.inputs["lr"].flatMap(Float.init) else {
            throw LabError("training cell without batch / lr")
        }
        var o = TrainOptions()
        o.steps = steps; o.batchSize = batch; o.lr = lr; o.seed = cell.seed; o.saveEvery = steps
        o.warmupSteps = min(50, max(1, steps / 10))
        return o
    }

    /// GEMM FLOPs of one VAR training step of `spec` at `batch` (on an all-zero batch: the count depends on shapes only).
    static func varStepFLOPs(_ spec: VARSpec, tokenizer: VQVAE, classes: Int, batch: Int) throws -> Double {
        let config = try spec.config(tokenizer: tokenizer, classes: classes)
        let per = spec.tokenKind == .multiScale ? tokenizer.quantizer.totalTokens : config.totalTokens
        let zeros = VARTokenSet(
            kind: spec.tokenKind, labels: [Int](repeating: 0, count: batch), tokens: [UInt16](repeating: 0, count: batch * per),
            perImage: per, summary: "zeros")
        var o = TrainOptions()
        o.batchSize = batch
        let t = try VARTrainer(config: config, options: o, vae: tokenizer, data: zeros)
        return Profiler.gemmFLOPs { _ = t.trainStep(indices: Array(0..<batch), step: 0) }
    }

    static func ditStepFLOPs(_ config: DiTConfig, batch: Int) throws -> Double {
        var o = TrainOptions()
        o.batchSize = batch
        let t = try DiTTrainer(config: config, options: o)
        let x = Tensor(zeros: [batch, config.inChannels, config.inputSize, config.inputSize])
        return Profiler.gemmFLOPs { _ = t.trainStep(x, [Int](repeating: 0, count: batch), step: 0) }
    }

    func trainVAR(_ cell: Cell, context: LabContext) throws -> (metrics: [String: Double], outputs: [String: String]) {
        let spec = try VARSpec(inputs: cell.inputs)
        let vq = try VQLatentCodec.loadVQVAE(path: vae)
        guard let baseSteps = cell.inputs["steps"].flatMap(Int.init), let batch = cell.inputs["batch"].flatMap(Int.init) else {
            throw LabError("train-var cell without steps / batch")
        }
        let classes = try self.classes(size: vq.imageSize)
        let stepFLOPs = try Self.varStepFLOPs(spec, tokenizer: vq, classes: classes.count, batch: batch)
        var steps = baseSteps
        if cell.inputs["match_variant"] != nil {
            let base = try VARSpec(inputs: cell.inputs, prefix: "match_")
            let budget = try Self.varStepFLOPs(base, tokenizer: vq, classes: classes.count, batch: batch) * Double(baseSteps)
            steps = max(1, Int((budget / stepFLOPs).rounded()))
        }
        let train = try loadTokens(cell, spec.tokenKind, .train, context: context)
        let held = try loadTokens(cell, spec.tokenKind, .heldout, context: context)
        let trainer = try VARTrainer(
            config: try spec.config(tokenizer: vq, classes: classes.count), options: try options(cell, steps: steps), vae: vq, data: train)
        trainer.dataSummary = train.summary
        trainer.classNames = classes.names
        return try trained(
            cell, context: context, what: "\(spec.name), seed \(cell.seed): \(steps) steps x \(batch) images", steps: steps,
            stepFLOPs: stepFLOPs, parameters: trainer.model.parameters.reduce(0) { $0 + $1.value.count },
            train: { progress in try trainer.run(progress: progress) }, export: trainer.exportWeights(to:),
            heldOutLoss: { try trainer.heldOutLoss(held) })
    }

    /// Trains (logging every tenth of the run), writes the model, measures the held-out loss: the training cells' row.
    func trained(
        _ cell: Cell, context: LabContext, what: String, steps: Int, stepFLOPs: Double, parameters: Int,
        train: ((TrainProgress) -> Void) throws -> Void, export: (String) throws -> Void, heldOutLoss: () throws -> Double
    ) throws -> (metrics: [String: Double], outputs: [String: String]) {
        let folder = try context.outputFolder(cell)
        context.log("  \(what), \(Self.gflop(stepFLOPs * Double(steps))) GFLOP")
        let t0 = Date()
        var last = 0.0
        try train { p in
            last = p.smoothedLoss
            if p.step % max(1, p.totalSteps / 10) == 0 || p.step == p.totalSteps {
                context.log(String(format: "  step %d/%d, loss %.4f", p.step, p.totalSteps, p.smoothedLoss))
            }
        }
        let seconds = Date().timeIntervalSince(t0)
        try export((folder.absolute as NSString).appendingPathComponent("model.safetensors"))
        let held = try heldOutLoss()
        context.log(String(format: "  held-out loss %.4f", held))
        return (
            [
                "parameters": Double(parameters), "steps": Double(steps), "train_flops": stepFLOPs * Double(steps), "train_loss": last,
                "held_out_loss": held, "train_seconds": seconds,
            ], ["checkpoint": folder.relative + "/model.safetensors"]
        )
    }

    func trainDiT(_ cell: Cell, context: LabContext) throws -> (metrics: [String: Double], outputs: [String: String]) {
        let spec = try DiTSpec(inputs: cell.inputs)
        let vq = try VQLatentCodec.loadVQVAE(path: vae)
        guard let steps = cell.inputs["steps"].flatMap(Int.init), let batch = cell.inputs["batch"].flatMap(Int.init) else {
            throw LabError("train-dit cell without steps / batch")
        }
        let train = try loadLatents(cell, .train, context: context)
        // The held-out latents are scaled as the training set is (the model sees unit-variance training data).
        let raw = try loadLatents(cell, .heldout, context: context)
        let held = LatentSet(
            latents: raw.latents, labels: raw.labels, latentShape: raw.latentShape, classCount: raw.classCount, summary: raw.summary,
            scale: train.scale)
        let classes = try self.classes(size: vq.imageSize)
        let config = try spec.config(latentShape: train.latentShape, classes: classes.count)
        let stepFLOPs = try Self.ditStepFLOPs(config, batch: batch)
        let trainer = try DiTTrainer(config: config, options: try options(cell, steps: steps))
        trainer.metadata = DiTTrainer.vqLatentMetadata(
            set: train, patchNums: vq.patchNums, classNames: classes.names, sampler: "ddim", steps: 25, cfg: 4)
        return try trained(
            cell, context: context, what: "\(spec.name), seed \(cell.seed): \(steps) steps x \(batch) latents", steps: steps,
            stepFLOPs: stepFLOPs, parameters: trainer.model.parameters.reduce(0) { $0 + $1.value.count },
            train: { progress in try trainer.run(source: train, progress: progress) }, export: trainer.export(to:),
            heldOutLoss: { try trainer.heldOutLoss(held) })
    }

    static func gflop(_ f: Double) -> String { String(format: "%.0f", f / 1e9) }
}

/// What the studies that train their own models share: the tokenizer and the judge, the budget's training data,
/// the real-data row, sample cells for the trained models, and running all of these cell kinds.
struct TrainedModels {
    let vae: String
    let judge: LabJudge
    let training: TrainingCells
    /// Samples per quality row.
    let n: Int
    let files: [String: String]

    /// `vae` nil: the built-in toy tokenizer. The models train on the judge's data.
    init(_ budget: Budget, vae: String?, judge: LabJudge, n: Int) throws {
        self.vae = try vae ?? BuiltinModels.path(BuiltinModels.vqvae, instead: "--vae")
        self.judge = judge
        training = try TrainingCells(budget, vae: self.vae, data: judge.data)
        self.n = n
        files = judge.inputs.merging(["vae_sha256": training.vaeSHA, "n": "\(n)", "data_seed": "0"]) { $1 }
    }

    var realCell: Cell {
        Cell(kind: "real", group: "real held-out images", seed: 0, inputs: files.filter { $0.key != "vae_sha256" })
    }

    func sample(_ train: Cell, family: String) -> Cell { TrainedSampling.cell(of: train, family: family, base: files) }

    /// Runs a training, real or sample cell (a grid for sampling seed `gridSeed`).
    func run(
        _ cell: Cell, study: String, gridSeed: UInt64, context: LabContext
    ) throws -> (
        metrics: [String: Double], outputs: [String: String]
    ) {
        if let r = try training.run(cell, context: context) { return r }
        let judge = try self.judge.quality(n: n)
        switch cell.kind {
        case "real": return (try judge.realMeasures(), [:])
        case "sample": return try TrainedSampling.run(cell, vae: vae, judge: judge, grid: cell.seed == gridSeed, context: context)
        default: throw LabError("study '\(study)' has no cell kind '\(cell.kind)'")
        }
    }
}
