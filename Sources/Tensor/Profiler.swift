import Foundation

/// Wall time per kind of op (`varlab bench ... --profile`), so an optimisation is chosen from data. Off by default:
/// then `measure` costs one flag read. Only the calling thread's ops count (an op's parallel workers are inside its
/// time), and times are exclusive: a conv's im2col is counted as im2col, not twice.
public enum Profiler {
    public enum Kind: String, CaseIterable, Sendable {
        case matmul, conv, im2col, winograd, attention, norm, elementwise, sampling, interpolation
    }

    nonisolated(unsafe) public private(set) static var enabled = false
    private static let lock = NSLock()
    nonisolated(unsafe) private static var seconds: [Kind: Double] = [:]
    nonisolated(unsafe) private static var calls: [Kind: Int] = [:]
    nonisolated(unsafe) private static var gemmFLOPs = 0.0
    nonisolated(unsafe) private static var savedFLOPs = 0.0

    /// Starts recording from zero.
    public static func start() {
        lock.lock(); seconds = [:]; calls = [:]; gemmFLOPs = 0; savedFLOPs = 0; enabled = true; lock.unlock()
    }

    /// Counts an sgemm's 2 m n k FLOPs while recording (from any thread: convolutions and attention run theirs on
    /// the workers), so a benchmark's GFLOP/s needs no per-model formula.
    @inline(__always)
    public static func countGEMM(m: Int, n: Int, k: Int) {
        guard enabled else { return }
        lock.lock(); gemmFLOPs += 2 * Double(m) * Double(n) * Double(k); lock.unlock()
    }

    /// FLOPs counted by `countGEMM` since `start()`.
    public static var countedGEMMFLOPs: Double {
        lock.lock(); defer { lock.unlock() }
        return gemmFLOPs
    }

    /// Counts the FLOPs a fast algorithm did not run (Winograd: the direct convolution's 2 cout cin 9 ho wo minus its
    /// 36 products), so a benchmark can state a rate in the direct algorithm's FLOPs next to the sgemm FLOPs it ran.
    @inline(__always)
    public static func countSavedFLOPs(_ flops: Double) {
        guard enabled else { return }
        lock.lock(); savedFLOPs += flops; lock.unlock()
    }

    /// The direct algorithms' FLOPs since `start()`: `countedGEMMFLOPs` plus what fast algorithms saved.
    public static var countedDirectFLOPs: Double {
        lock.lock(); defer { lock.unlock() }
        return gemmFLOPs + savedFLOPs
    }

    /// The sgemm FLOPs `body` performs (counted, not estimated: a training step's cost for a budget in FLOPs).
    public static func gemmFLOPs(of body: () throws -> Void) rethrows -> Double {
        start()
        defer { _ = stop() }
        try body()
        return countedGEMMFLOPs
    }

    /// Stops recording and returns (kind, seconds, calls) in descending time.
    public static func stop() -> [(kind: Kind, seconds: Double, calls: Int)] {
        lock.lock(); defer { lock.unlock() }
        enabled = false
        return seconds.map { (kind: $0.key, seconds: $0.value, calls: calls[$0.key] ?? 0) }.sorted { $0.seconds > $1.seconds }
    }

    /// An op in progress (nil when not recording).
    public struct Token {
        let kind: Kind
        let start: UInt64
        let outerNested: Double
    }

    /// Call at the start of an op and pass the result to `end` when it finishes (`defer`): the wall time in between,
    /// minus nested measured ops, is charged to `kind`.
    @inline(__always)
    public static func begin(_ kind: Kind) -> Token? {
        guard enabled else { return nil }
        let dict = Thread.current.threadDictionary
        guard dict["varlab.inParallel"] == nil else { return nil }
        let outer = dict["varlab.profileNested"] as? Double ?? 0
        dict["varlab.profileNested"] = 0.0
        return Token(kind: kind, start: DispatchTime.now().uptimeNanoseconds, outerNested: outer)
    }

    @inline(__always)
    public static func end(_ token: Token?) {
        guard let t = token else { return }
        let total = Double(DispatchTime.now().uptimeNanoseconds - t.start) * 1e-9
        let dict = Thread.current.threadDictionary
        let nested = dict["varlab.profileNested"] as? Double ?? 0
        dict["varlab.profileNested"] = t.outerNested + total
        lock.lock()
        seconds[t.kind, default: 0] += max(0, total - nested)
        calls[t.kind, default: 0] += 1
        lock.unlock()
    }

    /// A table of `stop()`'s result against the wall time it covers; the rest is "other" (Swift code outside the
    /// measured ops: embedding lookups, reshapes, copies, the samplers' bookkeeping).
    public static func table(_ rows: [(kind: Kind, seconds: Double, calls: Int)], wall: Double) -> String {
        func line(_ name: String, _ sec: Double, _ calls: String) -> String {
            name.padding(toLength: 14, withPad: " ", startingAt: 0)
                + String(format: "%8.3f  %5.1f%%  ", sec, 100 * sec / max(wall, 1e-9)) + calls + "\n"
        }
        var out = "  op kind        seconds   share   calls\n"
        var sum = 0.0
        for r in rows {
            sum += r.seconds
            out += "  " + line(r.kind.rawValue, r.seconds, String(r.calls))
        }
        out += "  " + line("other", max(0, wall - sum), "")
        out += "  " + "wall".padding(toLength: 14, withPad: " ", startingAt: 0) + String(format: "%8.3f", wall)
        return out
    }
}
