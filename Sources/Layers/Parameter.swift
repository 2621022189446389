import Foundation
import Tensor

/// A trainable tensor with its gradient accumulator. A class so that layers and the optimizer share it.
/// `decay` says whether AdamW's decoupled weight decay applies (false for biases, norm weights, embeddings and
/// position tables, as the official VAR / DiT trainers group them).
public final class Parameter {
    public let name: String
    public var value: Tensor
    public var grad: Tensor
    public let decay: Bool

    public init(_ name: String, _ value: Tensor, decay: Bool) {
        self.name = name; self.value = value; self.decay = decay
        grad = Tensor(zeros: value.shape)
    }

    public func zeroGrad() {
        grad.data.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    }

    /// grad += g (shapes must agree).
    public func accumulate(_ g: Tensor) {
        precondition(g.count == grad.count, "gradient for \(name): \(g.shape) vs \(grad.shape)")
        grad.data.withUnsafeMutableBufferPointer { d in g.data.withUnsafeBufferPointer { s in
            for i in 0..<d.count { d[i] += s[i] }
        } }
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
