import Foundation
import ImageIO

/// A class-conditional generator: what `sample`, `edit`, the benches and the lab drive. One per model family
/// (`TokenModelGenerator` for VAR and its variants, `DiTGenerator`), built from a checkpoint and its metadata by
/// `GenerationSettings.makeGenerator`.
public protocol SampleGenerator {
    /// Its `ModelFamilies` name ("var", "dit").
    var family: String { get }
    var imageSize: Int { get }
    var numClasses: Int { get }
    /// One RGB image per request. The randomness of request (class, index) is a pure function of (seed, index),
    /// so results do not depend on how requests are batched, on the thread count or on the shard.
    func generate(_ requests: [SampleRequest], seed: UInt64, progress: (SampleProgress) -> Void) throws -> [Image8]
}

public struct SampleRequest: Sendable, Equatable {
    public var classLabel: Int
    /// Global index of the sample in the whole requested set (not within the batch or shard).
    public var index: Int
    public init(classLabel: Int, index: Int) { self.classLabel = classLabel; self.index = index }
}

/// The ordered sample set as a function of the index, never materialised: `--n 1e12 --shard 0/1e8` costs
/// nothing before its own slice is made. Sample i has class `list[i mod len]` (a class list) or `i / perClass`
/// (every class); a shard is the contiguous slice [total k / N, total (k + 1) / N).
public struct SamplePlan: Sendable {
    public enum Classes: Sendable { case list([Int]), all(classes: Int, perClass: Int) }
    public let classes: Classes
    public let total: Int

    public init(classes: Classes, count: Int?) throws {
        self.classes = classes
        switch classes {
        case let .list(l):
            guard !l.isEmpty else { throw GenerationError("the class list is empty") }
            if let count, count < 1 { throw GenerationError("the number of samples must be >= 1, got \(count)") }
            total = count ?? l.count
        case let .all(c, per):
            guard c >= 1, per >= 1 else { throw GenerationError("\(per) images per class x \(c) classes: both must be >= 1") }
            let (t, o) = c.multipliedReportingOverflow(by: per)
            guard !o else { throw GenerationError("--per-class \(per) x \(c) classes overflows") }
            total = t
        }
    }

    /// Checks every listed class against the model's class count.
    public func validate(numClasses: Int) throws {
        if case let .list(l) = classes, let c = l.first(where: { $0 < 0 || $0 >= numClasses }) {
            throw GenerationError("--class \(c) is outside 0..\(numClasses - 1) (the checkpoint has \(numClasses) classes)")
        }
    }

    public func request(_ i: Int) -> SampleRequest {
        switch classes {
        case let .list(l): return SampleRequest(classLabel: l[i % l.count], index: i)
        case let .all(_, per): return SampleRequest(classLabel: i / per, index: i)
        }
    }

    /// Global indices of shard k of n (128-bit products: no overflow for any total).
    public func shard(_ k: Int, of n: Int) -> Range<Int> {
        precondition(n >= 1 && k >= 0 && k < n, "shard \(k) of \(n)")
        func bound(_ j: Int) -> Int {
            n.dividingFullWidth(total.multipliedFullWidth(by: j)).quotient
        }
        return bound(k)..<bound(k + 1)
    }

    public func requests(_ range: Range<Int>) -> [SampleRequest] { range.map(request) }
}

/// Progress of a generator inside one batch: stage `label` (a scale, step, token or the decode) BEGINS, and
/// `stage` of `stages` (scales for VAR, steps for DiT) are done.
public struct SampleProgress {
    public var stage: Int
    public var stages: Int
    public var label: String
    public init(stage: Int, stages: Int, label: String) { self.stage = stage; self.stages = stages; self.label = label }
}

/// An error of the generation layer: one line naming the flag, file or limit at fault.
public struct GenerationError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
