import Foundation
import Layers
import ModelIO
import Tensor

/// varlab training checkpoints: safetensors with the parameters under their names, the AdamW moments under
/// `optimizer.m.<name>` / `optimizer.v.<name>`, and metadata: `varlab.model`, `varlab.config` (model config JSON),
/// `varlab.step`, `varlab.optimizer.step`, `varlab.train` (training options JSON, informative).
/// Written atomically (temporary file + rename), so the previous checkpoint stays intact until the new one is
/// complete.
public struct TrainCheckpoint {
    public let file: SafetensorsFile
    public var model: String { file.metadata[.model] ?? "" }
    public var configJSON: String { file.metadata[.config] ?? "" }
    public var step: Int { file.metadata.int(.step) ?? 0 }

    public static func read(path: String, model: String) throws -> TrainCheckpoint {
        guard FileManager.default.fileExists(atPath: path) else {
            throw TrainingError.checkpoint("\(path): no such file")
        }
        let f = try SafetensorsFile(path: path)
        let ck = TrainCheckpoint(file: f)
        guard ck.model == model else {
            throw TrainingError.checkpoint("\(path) holds a '\(ck.model.isEmpty ? "non-varlab" : ck.model)' model, expected '\(model)'")
        }
        return ck
    }

    public func loadParameters(_ params: [Parameter]) throws {
        for p in params {
            guard let info = file.info(p.name) else { throw TrainingError.checkpoint("\(file.path): missing \(p.name)") }
            guard info.shape == p.value.shape else {
                throw TrainingError.checkpoint("\(file.path): \(p.name) has shape \(info.shape), the model expects \(p.value.shape)")
            }
            p.value = try file.floatTensor(p.name)
        }
    }

    public func loadOptimizer(_ opt: AdamW) throws {
        var m: [[Float]] = [], v: [[Float]] = []
        for p in opt.params {
            for (key, into) in [("optimizer.m.\(p.name)", 0), ("optimizer.v.\(p.name)", 1)] {
                guard file.info(key)?.shape == p.value.shape else {
                    throw TrainingError.checkpoint("\(file.path): optimizer state \(key) missing or mis-shaped (cannot resume)")
                }
                let t = try file.floatTensor(key).data
                if into == 0 { m.append(t) } else { v.append(t) }
            }
        }
        try opt.restore(step: Int(file.metadata[.optimizerStep] ?? "") ?? 0, m: m, v: v)
    }

    public static func write(
        path: String, model: String, configJSON: String, step: Int, params: [Parameter],
        optimizer: AdamW?, extra: [String: String] = [:]
    ) throws {
        var w = SafetensorsWriter()
        for p in params { w.add(p.name, p.value) }
        if let optimizer {
            for (i, p) in optimizer.params.enumerated() {
                w.add("optimizer.m.\(p.name)", Tensor(shape: p.value.shape, data: optimizer.m[i]))
                w.add("optimizer.v.\(p.name)", Tensor(shape: p.value.shape, data: optimizer.v[i]))
            }
            w.metadata[.optimizerStep] = String(optimizer.step)
        }
        w.metadata[.model] = model
        w.metadata[.config] = configJSON
        w.metadata[.step] = String(step)
        for (k, v) in extra { w.metadata[k] = v }
        try w.write(to: path)
    }
}

extension Encodable {
    /// Canonical JSON (sorted keys) for metadata and config comparison.
    public func canonicalJSON() throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return String(decoding: try e.encode(self), as: UTF8.self)
    }
}

extension TrainCheckpoint {
    /// Writes the inference weights of a training checkpoint: every tensor except the optimizer state, with the
    /// metadata (model, config, step, training options) and `varlab.exported_from`, plus `metadata` (e.g. recommended
    /// sampling settings); `half` stores floats as F16.
    /// Returns the number of tensors written. Atomic, like every checkpoint.
    @discardableResult
    /// A checkpoint with an EMA (`ema.<name>` entries) exports the averages under the official names (`useEMA`, the
    /// sampling weights, as the trainers' `--export` does) or the raw weights; never both.
    public static func export(
        from path: String, to out: String, half: Bool = false, useEMA: Bool = true, metadata extra: [String: String] = [:]
    ) throws -> Int {
        let f = try SafetensorsFile(path: path)
        guard f.metadata[.model] != nil else {
            throw TrainingError.checkpoint("\(path) is not a varlab training checkpoint (no varlab.model metadata)")
        }
        let keys = f.keys.sorted().filter { !$0.hasPrefix("optimizer.") }
        let emaKeys = Set(keys.filter { $0.hasPrefix("ema.") })
        let hasEMA = !emaKeys.isEmpty
        var w = SafetensorsWriter()
        var n = 0
        for key in keys where !key.hasPrefix("ema.") {
            // Buffers outside the EMA (DiT's fixed pos_embed) keep their one value.
            let source = useEMA && emaKeys.contains("ema." + key) ? "ema." + key : key
            w.add(key, try f.floatTensor(source), as: half ? .f16 : .f32)
            n += 1
        }
        w.metadata = f.metadata.filter { $0.key != MetadataKey.optimizerStep.rawValue }
        if hasEMA { w.metadata[.weights] = useEMA ? "ema" : "raw" }
        w.metadata[.exportedFrom] = URL(fileURLWithPath: path).lastPathComponent
        for (k, v) in extra { w.metadata[k] = v }
        try w.write(to: out)
        return n
    }
}

extension TrainLoop {
    /// The checkpoint at `path` if a run of `model` with `configJSON` can continue it, else the reason. Cheap
    /// (reads the checkpoint only), so commands call it before encoding their data set.
    @discardableResult
    public static func resumable(_ path: String, model: String, configJSON: String) throws -> TrainCheckpoint {
        let ck = try TrainCheckpoint.read(path: path, model: model)
        guard ck.configJSON == configJSON else {
            throw TrainingError.checkpoint("\(path) was trained with config \(ck.configJSON), this run uses \(configJSON); cannot resume")
        }
        return ck
    }

    /// Continues from a checkpoint of the same model and config: restores the weights `params`, the AdamW moments and
    /// the step; refuses another model, another config or a step beyond `steps`. Returns the checkpoint (for extra
    /// state such as an EMA).
    @discardableResult
    public func resume(from path: String, model: String, configJSON: String, params: [Parameter]) throws -> TrainCheckpoint {
        let ck = try TrainLoop.resumable(path, model: model, configJSON: configJSON)
        try ck.loadParameters(params)
        try ck.loadOptimizer(optimizer)
        step = ck.step
        guard step <= options.steps else {
            throw TrainingError.checkpoint("\(path) is at step \(step), beyond --steps \(options.steps)")
        }
        return ck
    }
}
