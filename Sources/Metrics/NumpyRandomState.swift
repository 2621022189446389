import Foundation

/// numpy's legacy `np.random.RandomState(seed)` (MT19937 seeded by `init_genrand`), only as far as
/// `permutation(n)` needs it, so conventions defined by it (torch-fidelity's shuffled Inception-Score splits,
/// `RandomState(2020).permutation(N)`) are reproduced exactly.
public struct NumpyRandomState: Sendable {
    private var mt = [UInt32](repeating: 0, count: 624)
    private var index = 624

    public init(seed: UInt32) {
        mt[0] = seed
        for i in 1..<624 { mt[i] = 1_812_433_253 &* (mt[i - 1] ^ (mt[i - 1] >> 30)) &+ UInt32(i) }
    }

    public mutating func nextUInt32() -> UInt32 {
        if index >= 624 {
            for i in 0..<624 {
                let y = (mt[i] & 0x8000_0000) | (mt[(i + 1) % 624] & 0x7fff_ffff)
                mt[i] = mt[(i + 397) % 624] ^ (y >> 1) ^ (y & 1 == 0 ? 0 : 0x9908_b0df)
            }
            index = 0
        }
        var y = mt[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9d2c_5680
        y ^= (y << 15) & 0xefc6_0000
        y ^= y >> 18
        return y
    }

    /// numpy's `random_interval(max)`: a uniform integer in [0, max] by masked rejection.
    mutating func interval(_ max: Int) -> Int {
        if max == 0 { return 0 }
        var mask = UInt64(max)
        for s in [1, 2, 4, 8, 16, 32] { mask |= mask >> UInt64(s) }
        precondition(max <= 0xffff_ffff, "numpy's 64-bit interval branch is not needed here")
        while true {
            let v = UInt64(nextUInt32()) & mask
            if v <= UInt64(max) { return Int(v) }
        }
    }

    /// `permutation(n)` = `shuffle(arange(n))`: Fisher-Yates from the last index down.
    public mutating func permutation(_ n: Int) -> [Int] {
        var a = Array(0..<n)
        var i = n - 1
        while i >= 1 {
            a.swapAt(i, interval(i))
            i -= 1
        }
        return a
    }
}
