import Autoencoders
import Foundation
import Layers
import ModelIO
import Tensor
import VAR

/// Trains a VAR transformer (or an ablation variant) on the frozen VQ-VAE's token maps with the shared `TrainLoop`
/// (deterministic batches, NaN stop, clipping, AdamW with the official no-decay group, warmup + cosine, atomic
/// checkpoints, exact resume).
///
/// Step: labels → null class with probability cond_drop_rate (official: `torch.rand(B) < cond_drop_rate`), teacher-
/// forcing input = `idxBl_to_var_input` of the batch's tokens (frozen quantiser: cumulative f_hat, area-downsampled to
/// the next scale), loss = cross-entropy over all L tokens weighted 1/L per token and averaged over the batch
/// (official `loss.mul(1/L).sum(-1).mean()`, i.e. the uniform mean over the B·L rows). Optional EMA of the weights
/// (`emaDecay`, 0 = off; not in the official trainer), kept as `ema.<name>` and exported as the sampling weights.
public final class VARTrainer {
    public let model: VARModel
    public let loop: TrainLoop
    public private(set) var ema: WeightEMA
    public let vae: VQVAE
    public let data: VARTokenSet
    public var dataSummary = ""
    /// Class names of the training data (recorded in the checkpoint for grids; empty = unknown).
    public var classNames: [String] = []

    public init(config: VARConfig, options: TrainOptions, vae: VQVAE, data: VARTokenSet, emaDecay: Float = 0) throws {
        do { try config.validateForTraining() } catch { throw TrainingError.config("\(error)") }
        guard config.vocabSize == vae.quantizer.vocabSize, config.cvae == vae.quantizer.channels,
            config.patchNums == vae.patchNums
        else {
            throw TrainingError.config(
                "the VAR config (vocab \(config.vocabSize), Cvae \(config.cvae), scales \(config.patchNums)) does not match the VQ-VAE (vocab \(vae.quantizer.vocabSize), Cvae \(vae.quantizer.channels), scales \(vae.patchNums))"
            )
        }
        let wantKind: VARTokenSet.Kind = config.variant == .ar ? .finestOnly : .multiScale
        guard data.kind == wantKind, data.perImage == config.totalTokens else {
            throw TrainingError.config(
                "token set (\(data.kind.rawValue), \(data.perImage) per image) does not fit a '\(config.variant.rawValue)' model of \(config.totalTokens) tokens"
            )
        }
        guard data.labels.allSatisfy({ $0 >= 0 && $0 < config.numClasses }) else {
            throw TrainingError.data("labels outside 0..<\(config.numClasses)")
        }
        model = try VARModel(config: config, seed: options.seed)
        loop = try TrainLoop(params: model.parameters, options: options)
        ema = try WeightEMA(decay: emaDecay, params: model.parameters)
        self.vae = vae; self.data = data
        loop.save = { [unowned self] path in try self.save(to: path) }
    }

    public var config: VARConfig { model.config }

    /// Metadata that lets the inference loaders use the file without flags: scale schedule and head count
    /// (attn_l2_norm = False models have no scale_mul_1H11 to infer the heads from), plus the variant.
    public func inferenceMetadata() -> [String: String] {
        [
            MetadataKey.patchNums.rawValue: config.patchNums.map(String.init).joined(separator: ","),
            MetadataKey.heads.rawValue: String(config.heads),
            MetadataKey.variant.rawValue: config.variant.rawValue,
        ]
    }

    public func save(to path: String) throws {
        try TrainCheckpoint.write(
            path: path, model: VARModel.checkpointName, configJSON: try config.canonicalJSON(),
            step: loop.step, params: model.parameters + ema.checkpointEntries(model.parameters), optimizer: loop.optimizer,
            extra: try savedMetadata())
    }

    /// The sampling weights alone (the EMA when kept; no optimizer moments): the file to ship / sample from.
    public func exportWeights(to path: String) throws {
        try TrainCheckpoint.write(
            path: path, model: VARModel.checkpointName, configJSON: try config.canonicalJSON(),
            step: loop.step, params: ema.samplingWeights(model.parameters), optimizer: nil,
            extra: try savedMetadata().merging([MetadataKey.weights.rawValue: ema.isOn ? "ema" : "raw"]) { $1 })
    }

    func savedMetadata() throws -> [String: String] {
        var extra = inferenceMetadata()
        extra[.emaDecay] = String(ema.decay)
        extra[.train] = try loop.options.canonicalJSON()
        extra[.data] = dataSummary
        if !classNames.isEmpty { extra[ClassNamesMetadata.key] = ClassNamesMetadata.encode(classNames) }
        return extra
    }

    public func resume(from path: String) throws {
        let ck = try loop.resume(
            from: path, model: VARModel.checkpointName, configJSON: try config.canonicalJSON(), params: model.parameters)
        try ema.restore(from: ck, params: model.parameters, path: path)
    }

    /// Labels after class dropout for step `step` (Philox stream 2^41 + step: a pure function of seed and step).
    public func droppedLabels(_ labels: [Int], step: Int) -> [Int] {
        var rng = PhiloxRandom(seed: loop.options.seed, stream: (1 << 41) + UInt64(step))
        return labels.map { rng.uniform() < config.condDropRate ? config.numClasses : $0 }
    }

    /// Targets (B x L, sequence order) and the teacher-forcing input for dataset rows `indices`.
    public func batch(_ indices: [Int]) -> (targets: [Int], input: VARModel.Input) { batch(indices, from: data) }

    func batch(_ indices: [Int], from data: VARTokenSet) -> (targets: [Int], input: VARModel.Input) {
        let c = config, b = indices.count
        let targets = indices.flatMap { data.row($0).map { Int($0) } }
        if c.variant == .ar { return (targets, .tokens(targets)) }
        var maps: [[Int]] = []
        var offset = 0
        for pn in c.patchNums {
            let l = pn * pn
            maps.append(
                indices.flatMap { i in
                    data.row(i)[(data.row(i).startIndex + offset)..<(data.row(i).startIndex + offset + l)].map { Int($0) }
                })
            offset += l
        }
        return (targets, .features(vae.quantizer.varInput(tokens: maps, batch: b)))
    }

    /// One forward + backward on dataset rows; returns (loss, token accuracy).
    public func trainStep(indices: [Int], step: Int) -> (loss: Double, accuracy: Double) {
        let (targets, input) = batch(indices)
        let labels = droppedLabels(indices.map { data.labels[$0] }, step: step)
        let logits: Tensor
        do { logits = try model.forward(labels: labels, input: input) } catch { return (.nan, .nan) }
        let (loss, dl, correct) = Losses.softmaxCrossEntropy(logits: logits, labels: targets)
        if loss.isFinite { model.backward(dLogits: dl) }
        return (loss, Double(correct) / Double(targets.count))
    }

    /// Mean token cross-entropy (nats) of a held-out token set of the same kind, with the true labels (no class
    /// dropout), in batches of `batchSize`: the loss a scaling law is fitted to.
    public func heldOutLoss(_ set: VARTokenSet, batchSize: Int = 50) throws -> Double {
        guard set.kind == data.kind, set.perImage == data.perImage, set.count >= 1 else {
            throw TrainingError.data("held-out tokens (\(set.kind.rawValue), \(set.perImage) per image) do not fit the training set's")
        }
        var sum = 0.0
        var start = 0
        while start < set.count {
            let idx = Array(start..<min(set.count, start + batchSize))
            let (targets, input) = batch(idx, from: set)
            let logits = try model.forward(labels: idx.map { set.labels[$0] }, input: input)
            sum += Losses.softmaxCrossEntropy(logits: logits, labels: targets).loss * Double(idx.count)
            start += batchSize
        }
        return sum / Double(set.count)
    }

    public func run(progress: (TrainProgress) -> Void = { _ in }) throws {
        try loop.run(count: data.count, step: { idx in self.trainStep(indices: idx, step: self.loop.step) }) { p in
            self.ema.update(self.model.parameters)
            progress(p)
        }
    }
}
