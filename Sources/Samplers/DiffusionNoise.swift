import Foundation
import Tensor

/// Where a diffusion loop gets its Gaussian noise: the initial x_T and one tensor per step (drawn at EVERY step,
/// including the last one whose noise is multiplied by zero, as the official `p_sample` calls randn_like).
public protocol DiffusionNoise {
    mutating func initial(shape: [Int]) throws -> Tensor
    /// Noise for step `k` of the loop (k = 0 is the first step, at the largest timestep).
    mutating func step(_ k: Int, shape: [Int]) throws -> Tensor
}

/// The production source: row r uses its own Philox stream (seed, stream = sampleIndices[r]), drawing x_T first
/// and then one C*H*W block per step. A sample's noise is therefore a pure function of (seed, sample index),
/// independent of batch composition, shard and thread count.
public struct PerSampleNoise: DiffusionNoise {
    public private(set) var streams: [PhiloxRandom]

    public init(seed: UInt64, sampleIndices: [Int]) {
        streams = sampleIndices.map { PhiloxRandom(seed: seed, stream: UInt64($0)) }
    }

    mutating func draw(_ shape: [Int]) throws -> Tensor {
        guard shape.first == streams.count else {
            throw DiffusionSamplerError.badNoise("noise for \(shape.first ?? 0) rows requested from \(streams.count) sample streams")
        }
        let per = shape.dropFirst().reduce(1, *)
        var data: [Float] = []
        data.reserveCapacity(per * streams.count)
        for r in 0..<streams.count { data.append(contentsOf: streams[r].normals(per)) }
        return Tensor(shape: shape, data: data)
    }

    public mutating func initial(shape: [Int]) throws -> Tensor { try draw(shape) }
    public mutating func step(_ k: Int, shape: [Int]) throws -> Tensor { try draw(shape) }
}

/// Injected noise (parity tests): the given x_T and a [steps, N, ...] stack of per-step noises.
public struct RecordedNoise: DiffusionNoise {
    public var x0: Tensor
    public var steps: Tensor?

    public init(initial: Tensor, steps: Tensor?) { x0 = initial; self.steps = steps }

    public mutating func initial(shape: [Int]) throws -> Tensor {
        guard x0.shape == shape else { throw DiffusionSamplerError.badNoise("recorded x_T has shape \(x0.shape), loop wants \(shape)") }
        return x0
    }

    public mutating func step(_ k: Int, shape: [Int]) throws -> Tensor {
        // Without recorded step noises (DDIM with eta = 0 never uses them) zeros stand in.
        guard let steps else { return Tensor(zeros: shape) }
        guard steps.rank == shape.count + 1, Array(steps.shape.dropFirst()) == shape, k < steps.shape[0] else {
            throw DiffusionSamplerError.badNoise("recorded step noise \(steps.shape) has no step \(k) of shape \(shape)")
        }
        return steps.slice0(k, k + 1).reshaped(shape)
    }
}
