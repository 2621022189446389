import Foundation
import Tensor

/// Inception Score (Salimans et al. 2016) as ADM's `Evaluator.compute_inception_score`:
/// `p = softmax(logits)` over all 1008 outputs; for each split, `exp(mean_i sum_j p_ij (log p_ij - log mean_i p_ij))`;
/// the result is the mean over splits (no standard deviation). Evaluated in float64 (ADM uses float32 numpy; the
/// two agree to ~1e-8 relative). A p_ij that underflows to 0 contributes 0 (the limit of p log p) where numpy
/// would give NaN.
public enum InceptionScore {
    /// How the samples are cut into contiguous splits.
    public enum Splits: Sendable, Equatable {
        /// ADM: rows [0, s), [s, 2s), ... (the last split may be shorter). ADM's default is 5000.
        case size(Int)
        /// `count` splits of rows [i N / count, (i + 1) N / count) (improved-gan style; `varlab sample` writes
        /// images in class order, so a contiguous split can be a single class).
        case count(Int)
        /// torch-fidelity's `isc_features_to_metric`: rows shuffled by numpy `RandomState(seed).permutation(N)`
        /// (torch-fidelity's default seed 2020), then `count` splits as above (its default 10).
        case torchFidelity(count: Int, seed: UInt32)
    }

    public static func compute(logits: Tensor, splits: Splits = .size(5000)) throws -> Double {
        guard logits.rank == 2 else { throw MetricsError.badShape(what: "IS logits", shape: logits.shape, expected: "[N, classes]") }
        let (n, c) = (logits.shape[0], logits.shape[1])
        guard n >= 1 else { throw MetricsError.tooFewSamples(what: "Inception Score", count: n, needed: 1) }
        try requireFinite(logits.data, columns: c, what: "IS logits")
        var ranges: [Range<Int>] = []
        var order = Array(0..<n)  // row of the i-th sample after any shuffle
        switch splits {
        case .size(let s):
            guard s >= 1 else { throw MetricsError.input("IS split size must be at least 1, got \(s)") }
            ranges = stride(from: 0, to: n, by: s).map { $0..<min($0 + s, n) }
        case .count(let k):
            guard k >= 1 && k <= n else { throw MetricsError.input("IS: \(k) splits for \(n) samples") }
            ranges = (0..<k).map { (($0 * n) / k)..<((($0 + 1) * n) / k) }
        case let .torchFidelity(k, seed):
            guard k >= 1 && k <= n else { throw MetricsError.input("IS: \(k) splits for \(n) samples") }
            var rng = NumpyRandomState(seed: seed)
            order = rng.permutation(n)
            ranges = (0..<k).map { (($0 * n) / k)..<((($0 + 1) * n) / k) }
        }
        // float64 softmax rows
        var p = [Double](repeating: 0, count: n * c)
        logits.data.withUnsafeBufferPointer { l in
            for i in 0..<n {
                var m = -Double.infinity
                for j in 0..<c { m = max(m, Double(l[i * c + j])) }
                var s = 0.0
                for j in 0..<c { let e = Foundation.exp(Double(l[i * c + j]) - m); p[i * c + j] = e; s += e }
                for j in 0..<c { p[i * c + j] /= s }
            }
        }
        var scores: [Double] = []
        for r in ranges {
            var marginal = [Double](repeating: 0, count: c)
            for ii in r { let i = order[ii]; for j in 0..<c { marginal[j] += p[i * c + j] } }
            for j in 0..<c { marginal[j] /= Double(r.count) }
            let logMarginal = marginal.map { Foundation.log($0) }
            var klSum = 0.0
            for ii in r {
                let i = order[ii]
                var kl = 0.0
                for j in 0..<c {
                    let v = p[i * c + j]
                    if v > 0 { kl += v * (Foundation.log(v) - logMarginal[j]) }
                }
                klSum += kl
            }
            scores.append(Foundation.exp(klSum / Double(r.count)))
        }
        return scores.reduce(0, +) / Double(scores.count)
    }
}

/// Classifier accuracy of samples against the class each was generated for.
public struct Accuracy: Sendable, Equatable {
    public var top1: Double
    public var top5: Double
    public var count: Int
    /// Top-1 counts of each class that occurs, ascending by label.
    public var perClass: [ClassCount]

    public struct ClassCount: Sendable, Equatable {
        public var label: Int, total: Int, correct: Int
        /// Wrong top-1 predictions of this class's samples: predicted label -> count (what the class is confused with).
        public var mistakes: [Int: Int] = [:]
        public var accuracy: Double { Double(correct) / Double(total) }
    }

    /// `logits` [N, classes]; correct at k if the label is among the k largest logits (PyTorch `topk`;
    /// ties, which have probability ~0 with real logits, go to the lower index).
    public init(logits: Tensor, labels: [Int], k: Int = 5) throws {
        guard logits.rank == 2 else {
            throw MetricsError.badShape(what: "classifier logits", shape: logits.shape, expected: "[N, classes]")
        }
        let (n, c) = (logits.shape[0], logits.shape[1])
        guard n >= 1 else { throw MetricsError.tooFewSamples(what: "accuracy", count: n, needed: 1) }
        guard labels.count == n else { throw MetricsError.labelCount(what: "accuracy", labels: labels.count, samples: n) }
        if let bad = labels.first(where: { $0 < 0 || $0 >= c }) {
            throw MetricsError.labelOutOfRange(what: "accuracy", label: bad, classes: c)
        }
        try requireFinite(logits.data, columns: c, what: "classifier logits")
        let top = logits.topKLastAxis(min(k, c))
        var c1 = 0, c5 = 0
        var per: [Int: ClassCount] = [:]
        for i in 0..<n {
            let predicted = top[i].first ?? -1
            let hit1 = predicted == labels[i]
            if hit1 { c1 += 1 }
            if top[i].contains(labels[i]) { c5 += 1 }
            var count = per[labels[i]] ?? ClassCount(label: labels[i], total: 0, correct: 0)
            count.total += 1
            if hit1 { count.correct += 1 } else { count.mistakes[predicted, default: 0] += 1 }
            per[labels[i]] = count
        }
        top1 = Double(c1) / Double(n)
        top5 = Double(c5) / Double(n)
        count = n
        perClass = per.keys.sorted().map { per[$0]! }
    }
}
