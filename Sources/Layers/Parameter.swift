import Foundation
import Tensor

/// A trainable tensor with its gradient accumulator. A class so that layers and the optimizer share it. The
/// gradient is allocated on first use, so a model loaded only for inference carries no second copy of its weights.
/// `decay` says whether AdamW's decoupled weight decay applies (false for biases, norm weights, embeddings and
/// position tables, as the official VAR / DiT trainers group them).
public final class Parameter {
    public let name: String
    public var value: Tensor
    private var storedGrad: Tensor?
    /// The gradient's shape, fixed at creation: the lazy allocation must not read `value`, which the optimizer may
    /// be writing at that moment.
    private let gradShape: [Int]
    public let decay: Bool

    public init(_ name: String, _ value: Tensor, decay: Bool) {
        self.name = name; self.value = value; self.decay = decay
        gradShape = value.shape
    }

    public var grad: Tensor {
        get {
            if storedGrad == nil { storedGrad = Tensor(zeros: gradShape) }
            return storedGrad!
        }
        set { storedGrad = newValue }
    }

    public func zeroGrad() {
        if storedGrad == nil { storedGrad = Tensor(zeros: gradShape); return }
        storedGrad!.data.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    }

    /// grad += g (shapes must agree).
    public func accumulate(_ g: Tensor) {
        if storedGrad == nil { storedGrad = Tensor(zeros: gradShape) }
        precondition(g.count == storedGrad!.count, "gradient for \(name): \(g.shape) vs \(value.shape)")
        storedGrad!.data.withUnsafeMutableBufferPointer { d in
            g.data.withUnsafeBufferPointer { s in
                for i in 0..<d.count { d[i] += s[i] }
            }
        }
    }
}

/// Parameters in a fixed order (the order they were registered); the optimizer state follows it.
public struct ParameterList {
    public private(set) var items: [Parameter] = []
    public init() {}
    public mutating func add(_ p: Parameter) -> Parameter {
        precondition(!items.contains { $0.name == p.name }, "duplicate parameter \(p.name)")
        items.append(p); return p
    }
    public func zeroGrad() { items.forEach { $0.zeroGrad() } }
    public var count: Int { items.reduce(0) { $0 + $1.value.count } }
    public subscript(name: String) -> Parameter? { items.first { $0.name == name } }
}
