import Foundation
import Tensor

/// Wall and process CPU seconds of one measured piece of work. CPU time close to threads x wall means every core
/// was busy; on a shared machine, CPU time / threads is what an idle machine would take.
public struct Timing: Sendable {
    public var wall: Double
    public var cpu: Double
    public init(wall: Double = 0, cpu: Double = 0) { self.wall = wall; self.cpu = cpu }

    public static func + (a: Timing, b: Timing) -> Timing { Timing(wall: a.wall + b.wall, cpu: a.cpu + b.cpu) }
    public static func / (a: Timing, n: Double) -> Timing { Timing(wall: a.wall / n, cpu: a.cpu / n) }

    /// Times `body`.
    public static func measure<R>(_ body: () throws -> R) rethrows -> (R, Timing) {
        let w0 = Date(), c0 = ProcessClock.cpuSeconds()
        let r = try body()
        return (r, Timing(wall: Date().timeIntervalSince(w0), cpu: ProcessClock.cpuSeconds() - c0))
    }
}

/// The machine's state around a benchmark.
public enum MachineState {
    /// One-minute load average (a busy machine makes every wall time longer).
    public static func loadAverage() -> Double {
        var l = [Double](repeating: 0, count: 3)
        return getloadavg(&l, 3) > 0 ? l[0] : .nan
    }

    /// Peak resident memory of this process so far, in bytes (getrusage; Linux reports KiB).
    public static func peakResidentBytes() -> Int {
        var u = rusage()
        guard getrusage(RUSAGE_SELF.rawValue, &u) == 0 else { return 0 }
        return Int(u.ru_maxrss) * 1024
    }
}

/// What `Profiler` recorded over one run: time per op kind, and the FLOPs of every sgemm (matmul, convolution
/// as GEMM, attention), which the suite divides by the timed runs' wall time.
public struct OpProfile: Sendable {
    public let table: String
    public let gemmGFLOP: Double
    /// The direct algorithms' FLOPs (`Profiler.countedDirectFLOPs`): the sgemm FLOPs plus what Winograd saved.
    public let directGFLOP: Double
}

/// Runs `body`, with `Profiler` recording if `on` (its overhead then lands in the timing: use a separate run).
func profiled<R>(_ on: Bool, _ title: String, _ body: () throws -> R) rethrows -> (R, Timing, OpProfile?) {
    if on { Profiler.start() }
    let (r, t) = try Timing.measure(body)
    guard on else { return (r, t, nil) }
    let rows = Profiler.stop()
    return (
        r, t,
        OpProfile(
            table: title + ":\n" + Profiler.table(rows, wall: t.wall), gemmGFLOP: Profiler.countedGEMMFLOPs / 1e9,
            directGFLOP: Profiler.countedDirectFLOPs / 1e9)
    )
}
