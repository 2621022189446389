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

/// Progress of a generator inside one batch: `stage` i of `stages` (scale for VAR, step for DiT).
struct SampleProgress {
    var stage: Int
    var stages: Int
    var label: String
}
