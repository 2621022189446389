import Foundation
import ImageIO
import Tensor

/// The built-in procedural class-conditional dataset (`--data toy`).
///
/// Ten classes a person tells apart at a glance: five shapes (disc, square, triangle, plus-cross, ring) and five
/// textures / layouts (horizontal stripes, vertical stripes, checkerboard, dot grid, diagonal gradient). Every
/// image has its own position, scale, small rotation, foreground and background colours (with a guaranteed
/// lightness contrast), a faint background shading and a little pixel noise.
///
/// Determinism: image `index` of a split is a pure function of (seed, split, index). Its randomness is the Philox
/// stream `index` (train) or `2^32 + index` (held-out) under key `seed`, so the two splits never share a stream
/// (disjoint by construction, whatever N) and the same (seed, index) always gives the same picture, independent
/// of batch size, thread count or which other images were drawn. The label is `index % classCount` (balanced).
public struct ToyDataset: Sendable {
    public enum Split: String, Sendable, CaseIterable {
        case train, heldout
        /// Offset of this split's Philox streams; the held-out streams start at 2^32, beyond any train index.
        var streamBase: UInt64 { self == .train ? 0 : 1 << 32 }
    }

    public static let classNames = [
        "disc", "square", "triangle", "cross", "ring",
        "stripes-horizontal", "stripes-vertical", "checkerboard", "dots", "gradient",
    ]
    public static var classCount: Int { classNames.count }

    public let seed: UInt64
    public let split: Split
    public let size: Int

    public init(seed: UInt64 = 0, split: Split = .train, size: Int = 64) {
        self.seed = seed; self.split = split; self.size = size
    }

    public func label(_ index: Int) -> Int { index % ToyDataset.classCount }

    /// The RGB image (HWC, uint8) of sample `index`.
    public func image(_ index: Int) -> Image8 {
        precondition(index >= 0 && index < 1 << 32, "toy index \(index) outside 0..<2^32")
        var rng = PhiloxRandom(seed: seed, stream: split.streamBase + UInt64(index))
        let cls = label(index)
        let style = ToyStyle(rng: &rng)
        let shape = ToyShape(cls: cls, rng: &rng)
        let n = size
        var pixels = [UInt8](repeating: 0, count: n * n * 3)
        // 2x2 supersampling for antialiased edges.
        let offsets: [Double] = [0.25, 0.75]
        for py in 0..<n {
            for px in 0..<n {
                var cov = 0.0
                for oy in offsets {
                    for ox in offsets {
                        cov += shape.coverage(x: (Double(px) + ox) / Double(n), y: (Double(py) + oy) / Double(n))
                    }
                }
                cov /= 4
                let x = (Double(px) + 0.5) / Double(n), y = (Double(py) + 0.5) / Double(n)
                let shade = 1 + style.shadeAmount * ((x - 0.5) * style.shadeDir.0 + (y - 0.5) * style.shadeDir.1)
                for c in 0..<3 {
                    let bg = style.background[c] * shade
                    var v = bg + (style.foreground[c] - bg) * cov
                    // Uniform noise with standard deviation `noise` (cheaper than Gaussian, looks the same).
                    v += style.noise * 3.4641016 * (Double(rng.uniform()) - 0.5)
                    pixels[(py * n + px) * 3 + c] = UInt8(max(0, min(255, (v * 255).rounded())))
                }
            }
        }
        return Image8(width: n, height: n, channels: 3, pixels: pixels)
    }

    /// Images `indices` as a [N, 3, size, size] tensor in [-1, 1] and their labels; images are drawn in parallel
    /// (each is a pure function of its index, so the result does not depend on the thread count).
    public func batch(_ indices: [Int]) -> (images: Tensor, labels: [Int]) {
        let per = 3 * size * size
        var data = [Float](repeating: 0, count: indices.count * per)
        data.withUnsafeMutableBufferPointer { buf in
            let dst = UnsafeSendable(UnsafePointer(buf.baseAddress!))
            Parallel.forEach(indices.count) { i in
                let t = image(indices[i]).signedCHW()
                t.data.withUnsafeBufferPointer { src in
                    UnsafeMutablePointer(mutating: dst.p + i * per).update(from: src.baseAddress!, count: per)
                }
            }
        }
        return (Tensor(shape: [indices.count, 3, size, size], data: data), indices.map(label))
    }
}

/// Colours and global appearance of one sample.
struct ToyStyle {
    var background: [Double]
    var foreground: [Double]
    var shadeDir: (Double, Double)
    var shadeAmount: Double
    var noise: Double

    init(rng: inout PhiloxRandom) {
        // Background lightness anywhere; foreground at least 0.35 away in lightness so the pattern always reads.
        let bgL = 0.12 + 0.76 * Double(rng.uniform())
        let gap = 0.35 + 0.25 * Double(rng.uniform())
        let fgL = bgL > 0.5 ? max(0.05, bgL - gap) : min(0.95, bgL + gap)
        background = ToyStyle.hsl(h: Double(rng.uniform()), s: 0.15 + 0.5 * Double(rng.uniform()), l: bgL)
        foreground = ToyStyle.hsl(h: Double(rng.uniform()), s: 0.45 + 0.55 * Double(rng.uniform()), l: fgL)
        let a = 2 * Double.pi * Double(rng.uniform())
        shadeDir = (cos(a), sin(a))
        shadeAmount = 0.25 * Double(rng.uniform())
        noise = 0.01 + 0.015 * Double(rng.uniform())
    }

    /// HSL -> RGB in [0, 1].
    static func hsl(h: Double, s: Double, l: Double) -> [Double] {
        let c = (1 - abs(2 * l - 1)) * s
        let hp = h * 6
        let x = c * (1 - abs(hp.truncatingRemainder(dividingBy: 2) - 1))
        let (r, g, b): (Double, Double, Double)
        switch Int(hp) % 6 {
        case 0: (r, g, b) = (c, x, 0)
        case 1: (r, g, b) = (x, c, 0)
        case 2: (r, g, b) = (0, c, x)
        case 3: (r, g, b) = (0, x, c)
        case 4: (r, g, b) = (x, 0, c)
        default: (r, g, b) = (c, 0, x)
        }
        let m = l - c / 2
        return [r + m, g + m, b + m]
    }
}

/// The class-specific pattern: `coverage(x, y)` in [0, 1] is the foreground fraction at a point of the unit square.
struct ToyShape {
    let cls: Int
    let cx: Double, cy: Double, r: Double
    let cosA: Double, sinA: Double
    let a: Double, b: Double  // class-specific extra parameters
    let phaseX: Double, phaseY: Double
    let triangle: [(Double, Double)]  // vertices, computed once

    init(cls: Int, rng: inout PhiloxRandom) {
        self.cls = cls
        func u(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * Double(rng.uniform()) }
        let r = u(0.15, 0.30)
        self.r = r
        // Keep the whole shape inside the frame.
        let margin = min(0.48, r * 1.25)
        cx = u(margin, 1 - margin); cy = u(margin, 1 - margin)
        // Small rotations only, so stripes stay horizontal/vertical and squares do not become diamonds.
        let maxAngle: Double = (cls <= 4) ? 20 : 8
        let angle = u(-maxAngle, maxAngle) * Double.pi / 180
        cosA = cos(angle); sinA = sin(angle)
        switch cls {
        case 4: a = u(0.5, 0.68); b = 0  // ring: inner / outer radius
        case 5, 6: a = u(0.07, 0.15); b = u(0.4, 0.6)  // stripes: period, duty
        case 7: a = u(0.09, 0.18); b = 0  // checkerboard cell
        case 8: a = u(0.12, 0.2); b = u(0.22, 0.32)  // dots: spacing, radius / spacing
        case 9: a = Double(Int(u(0, 4)) % 4); b = u(2.5, 4.5)  // gradient: which diagonal, steepness
        default: a = 0; b = 0
        }
        phaseX = u(0, 1); phaseY = u(0, 1)
        let R = r * 1.2  // equilateral triangle pointing up, circumradius 1.2 r
        triangle = [(0.0, -R), (R * 0.8660254, R * 0.5), (-R * 0.8660254, R * 0.5)]
    }

    func coverage(x: Double, y: Double) -> Double {
        // Rotated coordinates around the shape centre.
        let dx = x - cx, dy = y - cy
        let lu = cosA * dx + sinA * dy, lv = -sinA * dx + cosA * dy
        func frac(_ v: Double) -> Double { v - v.rounded(.down) }
        switch cls {
        case 0: return (dx * dx + dy * dy) < r * r ? 1 : 0
        case 1: let s = r * 0.85; return (abs(lu) < s && abs(lv) < s) ? 1 : 0
        case 2:
            // Inside all three edge half-planes.
            let p = triangle
            for i in 0..<3 {
                let (x0, y0) = p[i], (x1, y1) = p[(i + 1) % 3]
                if (x1 - x0) * (lv - y0) - (y1 - y0) * (lu - x0) < 0 { return 0 }
            }
            return 1
        case 3:
            let arm = r * 1.1, half = r * 0.3
            return ((abs(lu) < arm && abs(lv) < half) || (abs(lv) < arm && abs(lu) < half)) ? 1 : 0
        case 4:
            let d = (dx * dx + dy * dy).squareRoot(), outer = r * 1.1
            return (d < outer && d > outer * a) ? 1 : 0
        case 5: return frac(lv / a + phaseY) < b ? 1 : 0
        case 6: return frac(lu / a + phaseX) < b ? 1 : 0
        case 7:
            let i = Int((lu / a + phaseX).rounded(.down)), j = Int((lv / a + phaseY).rounded(.down))
            return (i + j) & 1 == 0 ? 1 : 0
        case 8:
            let fx = frac(x / a + phaseX) - 0.5, fy = frac(y / a + phaseY) - 0.5
            return (fx * fx + fy * fy) < b * b ? 1 : 0
        default:
            // Smooth ramp along one of the four diagonals, saturating before the corners.
            let sx: Double = (Int(a) & 1) == 0 ? 1 : -1, sy: Double = (Int(a) & 2) == 0 ? 1 : -1
            let t = ((x - 0.5) * sx + (y - 0.5) * sy) / 2 * b + 0.5
            return max(0, min(1, t))
        }
    }
}
