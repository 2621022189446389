import Foundation
import ImageIO
import Tensor
import Training

/// Classifier rejection sampling (the trick behind the VAR paper's "VAR-d30-re", never released as code): every
/// request is drawn `candidates` times and the candidate a scoring classifier gives the highest probability of the
/// asked class is kept. Candidate 0 is exactly what the base generator gives for (seed, index); candidate j > 0 uses
/// the seed `seed + j * 0x9E3779B97F4A7C15` (wrapping), so the result still depends only on (seed, index, settings)
/// and `candidates` 1 is the base generator itself. Ties keep the lowest candidate. Use a scorer other than the
/// classifier that judges the result, or the judge rewards its own preferences.
public struct RejectionSampler: SampleGenerator {
    public let base: SampleGenerator
    public let scorer: ToyEvaluation
    public let candidates: Int

    public init(base: SampleGenerator, scorer: ToyEvaluation, candidates: Int) throws {
        guard candidates >= 1 && candidates <= 64 else { throw GenerationError("--candidates must be in 1...64, got \(candidates)") }
        guard scorer.classifier.config.classes >= base.numClasses else {
            throw GenerationError(
                "the scoring classifier \(scorer.path) knows \(scorer.classifier.config.classes) classes, the generator \(base.numClasses)")
        }
        self.base = base
        self.scorer = scorer
        self.candidates = candidates
    }

    public var family: String { base.family }
    public var imageSize: Int { base.imageSize }
    public var numClasses: Int { base.numClasses }

    static func candidateSeed(_ seed: UInt64, _ j: Int) -> UInt64 { seed &+ UInt64(j) &* 0x9E37_79B9_7F4A_7C15 }

    public func generate(_ requests: [SampleRequest], seed: UInt64, progress: (SampleProgress) -> Void) throws -> [Image8] {
        guard candidates > 1 else { return try base.generate(requests, seed: seed, progress: progress) }
        // Progress over all candidates: candidate j's stage s of S is stage j S + s of k S.
        func draw(_ j: Int) throws -> [Image8] {
            try base.generate(requests, seed: Self.candidateSeed(seed, j)) { p in
                progress(
                    SampleProgress(
                        stage: j * p.stages + p.stage, stages: candidates * p.stages, label: "candidate \(j + 1)/\(candidates) \(p.label)"))
            }
        }
        var best = try draw(0)
        var bestScore = try scores(best, requests)
        for j in 1..<candidates {
            let drawn = try draw(j)
            let s = try scores(drawn, requests)
            for i in requests.indices where s[i] > bestScore[i] {
                best[i] = drawn[i]
                bestScore[i] = s[i]
            }
        }
        return best
    }

    /// Log-probability of each image's asked class under the scorer (log-softmax of its logits).
    func scores(_ images: [Image8], _ requests: [SampleRequest]) throws -> [Float] {
        let logits = try scorer.features(images).logits
        let c = logits.shape[1]
        return requests.indices.map { i in
            let row = logits.data[(i * c)..<((i + 1) * c)]
            let m = row.max() ?? 0
            let lse = m + log(row.reduce(Float(0)) { $0 + exp($1 - m) })
            return row[row.startIndex + requests[i].classLabel] - lse
        }
    }
}
