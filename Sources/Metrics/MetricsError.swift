import Foundation

/// Errors of the metric suite: each says what was wrong with which input, so a bad run never produces a number.
public enum MetricsError: Error, CustomStringConvertible, Equatable {
    case tooFewSamples(what: String, count: Int, needed: Int)
    case nonFinite(what: String, row: Int, column: Int)
    case widthMismatch(what: String, a: Int, b: Int)
    case badShape(what: String, shape: [Int], expected: String)
    case labelsMissing(what: String)
    case labelCount(what: String, labels: Int, samples: Int)
    case labelOutOfRange(what: String, label: Int, classes: Int)
    case numerical(String)
    case input(String)

    public var description: String {
        switch self {
        case let .tooFewSamples(what, count, needed):
            return "\(what): \(count) sample(s), at least \(needed) needed"
        case let .nonFinite(what, row, column):
            return "\(what): feature [\(row), \(column)] is NaN or infinite (broken images or weights?)"
        case let .widthMismatch(what, a, b):
            return "\(what): feature widths differ (\(a) vs \(b)); were they computed by different networks?"
        case let .badShape(what, shape, expected):
            return "\(what): shape \(shape), expected \(expected)"
        case let .labelsMissing(what):
            return "\(what): class labels are needed for accuracy but none were found"
        case let .labelCount(what, labels, samples):
            return "\(what): \(labels) labels for \(samples) samples"
        case let .labelOutOfRange(what, label, classes):
            return "\(what): label \(label) outside 0..<\(classes)"
        case let .numerical(s): return s
        case let .input(s): return s
        }
    }
}

/// Throws if `x` ([N, D]) holds NaN or infinity.
func requireFinite(_ x: [Float], columns: Int, what: String) throws {
    for (i, v) in x.enumerated() where !v.isFinite {
        throw MetricsError.nonFinite(what: what, row: i / max(columns, 1), column: i % max(columns, 1))
    }
}
