import Foundation

/// Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11), the generator family used by
/// cuRAND and JAX. A stream is identified by (seed, stream id); its n-th block of four 32-bit words is a pure
/// function of (seed, stream, n). varlab uses one stream per sample index, so a sample's randomness does not
/// depend on batch size, thread count or shard.
///
/// Conversions (documented so other tools can reproduce them):
/// - uniform in [0, 1): (word >> 8) * 2^-24 (24 random bits, exactly representable in Float32);
/// - normal: Box-Muller on two uniforms u1, u2 taken as (word >> 8 + 0.5) * 2^-24 (never 0 or 1),
///   z = sqrt(-2 ln u1) cos(2 pi u2), computed in Double and rounded to Float; one normal per two words;
/// - exponential(1): -ln(u) with u = (word >> 8 + 0.5) * 2^-24.
public struct PhiloxRandom: Sendable {
    public let key: (UInt32, UInt32)
    public let stream: UInt64
    private var counter: UInt64 = 0
    private var buffer: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
    private var used = 4

    public init(seed: UInt64, stream: UInt64 = 0) {
        key = (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32))
        self.stream = stream
    }

    /// The Philox4x32 block for a counter (c0, c1) = counter, (c2, c3) = stream.
    public static func block(key: (UInt32, UInt32), counter: UInt64, stream: UInt64) -> (UInt32, UInt32, UInt32, UInt32) {
        var c0 = UInt32(truncatingIfNeeded: counter), c1 = UInt32(truncatingIfNeeded: counter >> 32)
        var c2 = UInt32(truncatingIfNeeded: stream), c3 = UInt32(truncatingIfNeeded: stream >> 32)
        var k0 = key.0, k1 = key.1
        for _ in 0..<10 {
            let p0 = UInt64(0xD251_1F53) &* UInt64(c0)
            let p1 = UInt64(0xCD9E_8D57) &* UInt64(c2)
            let n0 = UInt32(truncatingIfNeeded: p1 >> 32) ^ c1 ^ k0
            let n1 = UInt32(truncatingIfNeeded: p1)
            let n2 = UInt32(truncatingIfNeeded: p0 >> 32) ^ c3 ^ k1
            let n3 = UInt32(truncatingIfNeeded: p0)
            c0 = n0; c1 = n1; c2 = n2; c3 = n3
            k0 = k0 &+ 0x9E37_79B9
            k1 = k1 &+ 0xBB67_AE85
        }
        return (c0, c1, c2, c3)
    }

    public mutating func nextUInt32() -> UInt32 {
        if used == 4 {
            buffer = PhiloxRandom.block(key: key, counter: counter, stream: stream)
            counter &+= 1
            used = 0
        }
        defer { used += 1 }
        switch used {
        case 0: return buffer.0
        case 1: return buffer.1
        case 2: return buffer.2
        default: return buffer.3
        }
    }

    /// Uniform in [0, 1).
    public mutating func uniform() -> Float { Float(nextUInt32() >> 8) * 0x1p-24 }

    /// Uniform in (0, 1): never exactly 0 or 1, safe for logarithms.
    public mutating func openUniform() -> Double { (Double(nextUInt32() >> 8) + 0.5) * 0x1p-24 }

    public mutating func normal() -> Float {
        let u1 = openUniform(), u2 = openUniform()
        return Float((-2 * Foundation.log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }

    public mutating func exponential() -> Float { Float(-Foundation.log(openUniform())) }

    public mutating func normals(_ n: Int) -> [Float] { (0..<n).map { _ in normal() } }
    public mutating func uniforms(_ n: Int) -> [Float] { (0..<n).map { _ in uniform() } }

    /// Draw an index from unnormalised non-negative weights (inverse CDF on a Double cumulative sum).
    public mutating func categorical(_ weights: UnsafeBufferPointer<Float>) -> Int {
        var total = 0.0
        for w in weights { total += Double(w) }
        precondition(total > 0 && total.isFinite, "categorical: weights sum to \(total)")
        let u = Double(uniform()) * total
        var acc = 0.0
        var last = 0
        for (i, w) in weights.enumerated() where w > 0 {
            acc += Double(w)
            last = i
            if u < acc { return i }
        }
        return last
    }
}

extension Tensor {
    /// Standard normal tensor from a Philox stream.
    public static func randn(_ shape: [Int], rng: inout PhiloxRandom) -> Tensor {
        Tensor(shape: shape, data: rng.normals(shape.reduce(1, *)))
    }
}
