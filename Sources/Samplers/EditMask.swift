// Token-grid edit masks for VAR zero-shot editing, as the official demo_zero_shot_edit.ipynb computes them.
//
// Convention (the official one): a mask value 1 = KEEP the input image's token, 0 = GENERATE a new token.
// The mask lives on the final token grid (P x P, P = patch_nums.last); each scale pn gets its own keep map by a
// float32 bilinear resize (align_corners=False, no antialias) thresholded strictly at 0.5, and the coarsest
// scales whose map has at most 3 tokens are always kept.
import Foundation

/// The final-scale keep mask (`edit_mask` of the notebook), P x P row-major, 1 = keep, 0 = generate.
public struct TokenEditMask: Equatable, Sendable {
    public let size: Int
    public var values: [Float]

    public init(size: Int, values: [Float]) throws {
        guard size >= 1, values.count == size * size else {
            throw EditError.invalid("token edit mask: \(values.count) values for a \(size)x\(size) grid")
        }
        self.size = size; self.values = values
    }

    /// From per-cell decisions (true = keep).
    public init(size: Int, keep: [Bool]) throws {
        try self.init(size: size, values: keep.map { $0 ? 1 : 0 })
    }

    /// Python 3 `round()` on a float64: round half to even (`round(0.5) = 0`, `round(2.5) = 2`).
    public static func pythonRound(_ x: Double) -> Int { Int(x.rounded(.toNearestOrEven)) }

    /// Token cells of a fractional box on a P x P grid: rows [r0, r1) x cols [c0, c1), each bound
    /// `round(fraction * P)` computed on float64 exactly like `get_edit_mask`, clamped into [0, P] (the fractions
    /// are validated to lie in [0, 1] by the callers, so clamping only guards rounding at the ends).
    public static func boxCells(
        gridSize p: Int, y0: Double, x0: Double, y1: Double, x1: Double
    )
        -> (r0: Int, c0: Int, r1: Int, c1: Int)
    {
        let pd = Double(p)
        func b(_ v: Double) -> Int { min(max(pythonRound(v * pd), 0), p) }
        return (b(y0), b(x0), b(y1), b(x1))
    }

    /// `get_edit_mask(patch_nums, y0, x0, y1, x1, inpainting)`: NOTE the official argument order is y first.
    /// The box is given in fractions of the token grid. `inpainting = true`: box regenerated, the rest kept;
    /// `false` (out-painting): box kept, the rest regenerated.
    public static func box(gridSize p: Int, y0: Double, x0: Double, y1: Double, x1: Double, inpainting: Bool) throws -> TokenEditMask {
        guard p >= 1 else { throw EditError.invalid("token grid size must be positive, got \(p)") }
        for (name, v) in [("y0", y0), ("x0", x0), ("y1", y1), ("x1", x1)] where !(v >= 0 && v <= 1) {
            throw EditError.invalid("box \(name) = \(v) is not a fraction in [0, 1]")
        }
        let c = boxCells(gridSize: p, y0: y0, x0: x0, y1: y1, x1: x1)
        var m = [Float](repeating: 0, count: p * p)
        // Python slices: an empty range when end <= start.
        if c.r1 > c.r0 && c.c1 > c.c0 {
            for r in c.r0..<c.r1 { for col in c.c0..<c.c1 { m[r * p + col] = 1 } }
        }
        if inpainting { m = m.map { 1 - $0 } }
        return try TokenEditMask(size: p, values: m)
    }

    /// `F.interpolate(mask, size=(pn, pn), mode='bilinear', align_corners=False)` in float32, reproducing
    /// PyTorch's CPU kernel bit for bit (fixture README, "Per-scale keep mask"):
    /// `src = ratio*(d+0.5) - 0.5` with ONE rounding (fused multiply-add), clamped at 0; `i0 = floor(src)`,
    /// `i1 = i0 + (i0 < P-1)`, `l1 = src - i0`, `l0 = 1 - l1`; the four weight products are each rounded to float32
    /// and accumulated left to right. A separable or exact-arithmetic resize would flip some keep bits.
    public func bilinear(to pn: Int) -> [Float] {
        let p = size
        if pn == p { return values }  // PyTorch copies when the size is unchanged
        let ratio = Float(p) / Float(pn)
        func taps(_ d: Int) -> (i0: Int, i1: Int, l0: Float, l1: Float) {
            // Swift's addingProduct is fused: fma(ratio, d+0.5, -0.5) with a single rounding.
            var src = (-0.5 as Float).addingProduct(ratio, Float(d) + 0.5)
            if src < 0 { src = 0 }
            let i0 = min(Int(src.rounded(.down)), p - 1)
            let i1 = i0 + (i0 < p - 1 ? 1 : 0)
            let l1 = min(max(src - Float(i0), 0), 1)
            return (i0, i1, 1 - l1, l1)
        }
        let t = (0..<pn).map(taps)
        var out = [Float](repeating: 0, count: pn * pn)
        for r in 0..<pn {
            let h = t[r]
            for c in 0..<pn {
                let w = t[c]
                let hw00: Float = h.l0 * w.l0, hw01: Float = h.l0 * w.l1
                let hw10: Float = h.l1 * w.l0, hw11: Float = h.l1 * w.l1
                let a: Float = hw00 * values[h.i0 * p + w.i0]
                let b: Float = hw01 * values[h.i0 * p + w.i1]
                let cc: Float = hw10 * values[h.i1 * p + w.i0]
                let d: Float = hw11 * values[h.i1 * p + w.i1]
                var v: Float = a + b
                v = v + cc
                v = v + d
                out[r * pn + c] = v
            }
        }
        return out
    }

    /// `replace_embedding`'s `force_gt`: keep where the bilinear value is strictly above 0.5 (an exact 0.5 means
    /// generate); every cell is kept when the scale has at most 3 tokens (`pn*pn <= 3`).
    public func keep(at pn: Int) -> [Bool] {
        if pn * pn <= 3 { return [Bool](repeating: true, count: pn * pn) }
        return bilinear(to: pn).map { $0 > 0.5 }
    }

    /// All cells kept (reproduces the plain reconstruction) / none kept.
    public static func all(size: Int, keep: Bool) throws -> TokenEditMask {
        try TokenEditMask(size: size, values: [Float](repeating: keep ? 1 : 0, count: size * size))
    }

    public var keptCount: Int { values.filter { $0 > 0.5 }.count }
}

/// Errors of the editing samplers and their inputs: a clear message, never a crash.
public enum EditError: Error, CustomStringConvertible, Equatable {
    case invalid(String)
    public var description: String {
        switch self {
        case let .invalid(s): return s
        }
    }
}
