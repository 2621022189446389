import Foundation
import Layers
import ModelIO
import Tensor

/// An exponential moving average of a model's parameters, e ← d·e + (1 - d)·w after every optimizer step (DiT's
/// `update_ema`; the averaged weights are the ones to sample with). Kept in training checkpoints as `ema.<name>`
/// so a run resumes bit-identically; decay 0 keeps nothing.
public struct WeightEMA {
    public let decay: Float
    public private(set) var values: [[Float]]

    public init(decay: Float, params: [Parameter]) throws {
        try Self.validate(decay: decay)
        self.decay = decay
        values = decay > 0 ? params.map(\.value.data) : []
    }

    /// Decays in [0, 1) (NaN is refused); commands check before encoding their data.
    public static func validate(decay: Float) throws {
        guard decay >= 0, decay < 1 else { throw TrainingError.config("EMA decay must be in [0, 1), got \(decay)") }
    }

    public var isOn: Bool { decay > 0 }

    mutating func update(_ params: [Parameter]) {
        guard isOn else { return }
        let d = decay
        for (i, p) in params.enumerated() {
            values[i].withUnsafeMutableBufferPointer { e in
                p.value.data.withUnsafeBufferPointer { w in
                    for j in 0..<e.count { e[j] = d * e[j] + (1 - d) * w[j] }
                }
            }
        }
    }

    /// The averages under the parameters' own names (to sample with), or the parameters themselves when off.
    func samplingWeights(_ params: [Parameter]) -> [Parameter] {
        guard isOn else { return params }
        return zip(params, values).map { Parameter($0.name, Tensor(shape: $0.value.shape, data: $1), decay: false) }
    }

    /// The averages as `ema.<name>` entries of a training checkpoint (none when off).
    func checkpointEntries(_ params: [Parameter]) -> [Parameter] {
        zip(params, values).map { Parameter("ema." + $0.name, Tensor(shape: $0.value.shape, data: $1), decay: false) }
    }

    /// Reads the averages back from a training checkpoint being resumed.
    mutating func restore(from checkpoint: TrainCheckpoint, params: [Parameter], path: String) throws {
        guard isOn else { return }
        values = try params.map { p in
            guard checkpoint.file.info("ema." + p.name)?.shape == p.value.shape else {
                throw TrainingError.checkpoint(
                    "\(path) has no EMA weights for \(p.name) (trained without --ema?); cannot resume with EMA")
            }
            return try checkpoint.file.floatTensor("ema." + p.name).data
        }
    }
}
