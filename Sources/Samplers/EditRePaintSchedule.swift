// The RePaint resampling schedule (Lugmayr et al. 2022, andreas128/RePaint `get_schedule_jump`), default
// configuration (n_sample = 1, no second/third-level jumps): walk down from T; every `jumpLength` steps (at
// t = 0, L, 2L, ... below T - L) jump back up L steps, `jumpNSample - 1` times, re-noising with the forward
// process, then denoise again. The list ends with -1 (= "x_0 reached").
import Foundation

public enum RePaintSchedule {
    /// Times visited, starting at T-1 and ending at -1. Consecutive entries differ by exactly 1: a decrease is a
    /// denoising step `p_sample(t_last)`, an increase a forward re-noising step with beta at `t_cur`.
    public static func times(steps t: Int, jumpLength: Int, jumpNSample: Int) -> [Int] {
        guard t >= 1 else { return [-1] }
        var jumps: [Int: Int] = [:]
        if jumpLength >= 1 && jumpNSample > 1 {
            var j = 0
            while j < t - jumpLength { jumps[j] = jumpNSample - 1; j += jumpLength }
        }
        var cur = t
        var ts: [Int] = []
        while cur >= 1 {
            cur -= 1
            ts.append(cur)
            if let left = jumps[cur], left > 0 {
                jumps[cur] = left - 1
                for _ in 0..<jumpLength { cur += 1; ts.append(cur) }
            }
        }
        ts.append(-1)
        return ts
    }

    /// Plain descent T-1, ..., 0, -1 (no resampling).
    public static func plain(steps t: Int) -> [Int] { Array((0..<max(t, 0)).reversed()) + [-1] }

    /// Number of denoising (model) calls of a schedule.
    public static func denoisingSteps(_ ts: [Int]) -> Int {
        zip(ts, ts.dropFirst()).filter { $1 < $0 }.count
    }
}
