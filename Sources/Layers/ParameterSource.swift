import Foundation
import ModelIO
import Tensor

/// Where a model's tensors come from when it is built: a checkpoint (by name, shape checked) or a fresh
/// initialisation. A model is written once against this, so a file written by `varlab train`, an official
/// checkpoint and a new model go through the same construction code.
public protocol ParameterSource {
    /// The tensor `name` of `shape`; `initial` gives its value when the model is new (never called for a file).
    func tensor(_ name: String, shape: [Int], initial: () -> Tensor) throws -> Tensor
    /// Whether the source holds `name` (models ask only about optional tensors; a fresh model has none).
    func has(_ name: String) -> Bool
    /// Where the tensors come from, for error messages (the file's path).
    var origin: String { get }
}

extension ParameterSource {
    /// A parameter read from the source; `decay` says whether AdamW's weight decay applies.
    public func parameter(_ name: String, shape: [Int], decay: Bool, initial: () -> Tensor) throws -> Parameter {
        Parameter(name, try tensor(name, shape: shape, initial: initial), decay: decay)
    }

    /// `name.weight` (weight decay) and `name.bias` (none) of a Linear or conv layer; `initial` gives both at once
    /// for a new layer and is called at most once.
    public func weightAndBias(
        _ name: String, weight: [Int], bias: [Int], initial: () -> (weight: Tensor, bias: Tensor)
    ) throws
        -> (weight: Parameter, bias: Parameter)
    {
        var fresh: (weight: Tensor, bias: Tensor)?
        func value() -> (weight: Tensor, bias: Tensor) {
            if fresh == nil { fresh = initial() }
            return fresh!
        }
        return (
            try parameter(name + ".weight", shape: weight, decay: true) { value().weight },
            try parameter(name + ".bias", shape: bias, decay: false) { value().bias }
        )
    }
}

/// A new model: every tensor is its initial value.
public struct FreshParameters: ParameterSource {
    public init() {}
    public func tensor(_ name: String, shape: [Int], initial: () -> Tensor) throws -> Tensor {
        let t = initial()
        precondition(t.shape == shape, "initial value of \(name): \(t.shape) vs \(shape)")
        return t
    }
    public func has(_ name: String) -> Bool { false }
    public var origin: String { "a new model" }
}

/// A checkpoint: a wrong or missing tensor fails with the file, key and shapes.
public struct ArchiveParameters: ParameterSource {
    public let reader: WeightReader
    public init(_ archive: TensorArchive) { reader = WeightReader(archive) }
    public func tensor(_ name: String, shape: [Int], initial: () -> Tensor) throws -> Tensor {
        try reader.tensor(name, shape: shape)
    }
    public func has(_ name: String) -> Bool { reader.has(name) }
    public var origin: String { reader.archive.path }
}

/// A layer that cannot be built as asked (sizes that do not fit together).
public struct LayerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
