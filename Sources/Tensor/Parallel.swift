import Foundation

/// Thread settings for the whole process. Work is always cut into the same pieces whatever the thread count
/// (the split depends only on the problem's shape), so results are bit-identical for any `threads` value.
public enum Parallel {
    nonisolated(unsafe) private static var _threads: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)
    private static let lock = NSLock()

    /// Worker threads used by `forEach` and the blocked GEMM. Default: the number of cores.
    public static var threads: Int {
        get { lock.lock(); defer { lock.unlock() }; return _threads }
        set { lock.lock(); _threads = max(1, newValue); lock.unlock() }
    }

    /// Runs `body(i)` for i in 0..<count on up to `threads` threads. The pieces are fixed by the caller, so
    /// only scheduling (not arithmetic) depends on the thread count.
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        let t = min(threads, count)
        if t <= 1 || Thread.current.threadDictionary["varlab.inParallel"] != nil {
            for i in 0..<count { body(i) }
            return
        }
        let next = Counter()
        DispatchQueue.concurrentPerform(iterations: t) { _ in
            Thread.current.threadDictionary["varlab.inParallel"] = true
            defer { Thread.current.threadDictionary["varlab.inParallel"] = nil }
            while true {
                let i = next.increment()
                if i >= count { break }
                body(i)
            }
        }
    }

    /// Runs `body(range)` over 0..<count cut into fixed pieces of `grain` indices (the last one shorter): the pieces
    /// depend only on `count` and `grain`, so per-piece partial sums reduced in piece order are thread-count independent.
    public static func forRanges(_ count: Int, grain: Int, _ body: (Range<Int>) -> Void) {
        forPieces(count, grain: grain) { _, range in body(range) }
    }

    /// `forRanges` that also passes the piece's index (0, 1, ...), where per-piece partial results are stored.
    public static func forPieces(_ count: Int, grain: Int, _ body: (Int, Range<Int>) -> Void) {
        guard count > 0 else { return }
        let g = max(1, grain)
        forEach((count + g - 1) / g) { p in body(p, (p * g)..<min(count, (p + 1) * g)) }
    }

    /// Rows per piece so that a piece holds about `elements` values of `width` each (at least one row).
    public static func grain(rowWidth width: Int, elements: Int = 1 << 14) -> Int { max(1, elements / max(width, 1)) }

    private final class Counter: @unchecked Sendable {
        private var value = 0
        private let lock = NSLock()
        func increment() -> Int { lock.lock(); defer { lock.unlock() }; let v = value; value += 1; return v }
    }
}
