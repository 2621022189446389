import Foundation

/// Timestep respacing as DiT's diffusion/respace.py `space_timesteps`.
public enum Respacing {
    /// The kept original timesteps, ascending.
    /// - "ddimN": the stride i (smallest first) for which range(0, T, i) has exactly N elements.
    /// - "a,b,c" (or "N"): T is cut into len sections (the first T % len one step longer); section k keeps
    ///   `count` steps at round(j * (size - 1) / (count - 1)), j = 0..<count, with the float64 index accumulated by
    ///   repeated addition and Python's round() (half to even): "25" keeps 166, 500, 832 for the exact ties.
    public static func spaceTimesteps(_ numTimesteps: Int, _ spec: String) throws -> [Int] {
        let s = spec.trimmingCharacters(in: .whitespaces)
        if s.hasPrefix("ddim") {
            guard let desired = Int(s.dropFirst(4)), desired >= 1 else {
                throw DiTError.badConfig("bad respacing '\(spec)': expected ddimN")
            }
            for i in 1..<max(numTimesteps, 2) {
                let r = Array(stride(from: 0, to: numTimesteps, by: i))
                if r.count == desired { return r }
            }
            throw DiTError.badConfig("cannot create exactly \(desired) steps with an integer stride from \(numTimesteps)")
        }
        let parts = s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        var counts: [Int] = []
        for p in parts {
            guard let v = Int(p), v >= 0 else { throw DiTError.badConfig("bad respacing '\(spec)': '\(p)' is not a step count") }
            counts.append(v)
        }
        guard !counts.isEmpty else { throw DiTError.badConfig("empty respacing") }
        return try spaceTimesteps(numTimesteps, sectionCounts: counts)
    }

    public static func spaceTimesteps(_ numTimesteps: Int, sectionCounts: [Int]) throws -> [Int] {
        let sizePer = numTimesteps / sectionCounts.count
        let extra = numTimesteps % sectionCounts.count
        var start = 0
        var all = Set<Int>()
        for (i, count) in sectionCounts.enumerated() {
            let size = sizePer + (i < extra ? 1 : 0)
            guard size >= count else {
                throw DiTError.badConfig("cannot divide a section of \(size) steps into \(count)")
            }
            let fracStride: Double = count <= 1 ? 1 : Double(size - 1) / Double(count - 1)
            var cur = 0.0
            for _ in 0..<count {
                all.insert(start + Int(cur.rounded(.toNearestOrEven)))
                cur += fracStride
            }
            start += size
        }
        return all.sorted()
    }
}
