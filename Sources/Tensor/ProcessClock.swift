import Foundation

/// CPU time of the whole process (all threads, user + system): benchmarks report it beside wall time, since the
/// machine may be shared and "both cores busy" means CPU time close to threads x wall time.
public enum ProcessClock {
    public static func cpuSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}
