import Foundation

/// Codebook health of a multi-scale quantiser over a window of training steps: per scale, how many codes were
/// used and the perplexity exp(H) of the code distribution (V when every code is equally used, 1 when one code
/// takes everything); over all scales, the dead codes (not chosen once in the window). Collapse shows here first:
/// perplexity falling and dead codes rising while the reconstruction loss stalls.
public struct CodebookUsage: Sendable {
    public let vocabSize: Int
    public private(set) var counts: [[Int]]  // [scale][code] in the current window
    public private(set) var steps = 0

    public init(vocabSize: Int, scales: Int) {
        self.vocabSize = vocabSize
        counts = Array(repeating: Array(repeating: 0, count: vocabSize), count: scales)
    }

    /// Adds one step's token maps (entry s = every token id of scale s in the batch).
    public mutating func record(_ tokens: [[Int]]) {
        precondition(tokens.count == counts.count, "\(tokens.count) token maps for \(counts.count) scales")
        for (s, ids) in tokens.enumerated() { for id in ids { counts[s][id] += 1 } }
        steps += 1
    }

    public mutating func reset() {
        for s in counts.indices { counts[s] = Array(repeating: 0, count: vocabSize) }
        steps = 0
    }

    public func used(scale s: Int) -> Int { counts[s].filter { $0 > 0 }.count }

    public func perplexity(scale s: Int) -> Double {
        let total = Double(counts[s].reduce(0, +))
        guard total > 0 else { return 0 }
        let h = counts[s].reduce(0.0) { acc, c in c == 0 ? acc : acc - Double(c) / total * log(Double(c) / total) }
        return exp(h)
    }

    /// Codes no scale chose in the window.
    public var dead: Int { (0..<vocabSize).filter { v in counts.allSatisfy { $0[v] == 0 } }.count }

    /// "dead 12/512; per scale used/perplexity: 8/5.1 20/14.2 ..."
    public var summary: String {
        let per = counts.indices.map { String(format: "%d/%.1f", used(scale: $0), perplexity(scale: $0)) }
        return "dead \(dead)/\(vocabSize) over \(steps) steps; per scale used/perplexity: " + per.joined(separator: " ")
    }
}
