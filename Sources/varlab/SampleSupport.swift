import ArgumentParser
import Foundation
import ImageIO

/// A class-conditional generator as `sample` (and `edit`) see it. Implemented by the VAR and DiT back ends.
protocol SampleGenerator {
    /// "var" or "dit"
    var family: String { get }
    var imageSize: Int { get }
    var numClasses: Int { get }
    /// One RGB image per request. The randomness of request (class, index) is a pure function of (seed, index),
    /// so results do not depend on how requests are batched, on the thread count or on the shard.
    func generate(_ requests: [SampleRequest], seed: UInt64, progress: (SampleProgress) -> Void) throws -> [Image8]
}

struct SampleRequest: Sendable, Equatable {
    var classLabel: Int
    /// Global index of the sample in the whole requested set (not within the batch or shard).
    var index: Int
}

/// The ordered sample set as a function of the index, never materialised: `--n 1e12 --shard 0/1e8` costs
/// nothing before its own slice is made. Sample i has class `list[i mod len]` (--class) or `i / perClass`
/// (--classes all); a shard is the contiguous slice [total k / N, total (k + 1) / N).
struct SamplePlan: Sendable {
    enum Classes: Sendable { case list([Int]), all(classes: Int, perClass: Int) }
    let classes: Classes
    let total: Int

    init(classes: Classes, count: Int?) throws {
        self.classes = classes
        switch classes {
        case let .list(l): total = count ?? l.count
        case let .all(c, per):
            let (t, o) = c.multipliedReportingOverflow(by: per)
            guard !o else { throw ValidationError("--per-class \(per) x \(c) classes overflows") }
            total = t
        }
    }

    func request(_ i: Int) -> SampleRequest {
        switch classes {
        case let .list(l): return SampleRequest(classLabel: l[i % l.count], index: i)
        case let .all(_, per): return SampleRequest(classLabel: i / per, index: i)
        }
    }

    /// Global indices of shard k of n (128-bit products: no overflow for any total).
    func shard(_ k: Int, of n: Int) -> Range<Int> {
        func bound(_ j: Int) -> Int {
            n.dividingFullWidth(total.multipliedFullWidth(by: j)).quotient
        }
        return bound(k)..<bound(k + 1)
    }

    func requests(_ range: Range<Int>) -> [SampleRequest] { range.map(request) }
}

/// Progress of a generator inside one batch: stage `label` (a scale, step, token or the decode) BEGINS, and
/// `stage` of `stages` (scales for VAR, steps for DiT) are done.
struct SampleProgress {
    var stage: Int
    var stages: Int
    var label: String
}
