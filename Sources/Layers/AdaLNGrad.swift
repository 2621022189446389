import Foundation
import Tensor

/// The two per-sample conditioning ops shared by VAR's AdaLN blocks and DiT's adaLN-Zero blocks, on x [B, L, D]
/// with per-sample vectors [B, D] (one row per batch element, broadcast over the L tokens):
///   modulate: y = x ⊙ (1 + scale) + shift        (VAR: `ln(x).mul(scale.add(1)).add_(shift)`, DiT: `modulate`)
///   gate:     y = g ⊙ h                             (VAR: `.mul_(gamma)`, DiT: `gate.unsqueeze(1) * h`)
/// Backward sums the per-token gradients over L in token order (fixed order: deterministic).
public enum AdaLNGrad {
    public static func modulate(_ x: Tensor, shift: Tensor, scale: Tensor) -> Tensor {
        let (b, l, d) = dims(x)
        var y = Tensor.unfilled(x.count)
        perSample(b, [x, shift, scale], &y) { bi, p, out in
            let (xs, sh, sc) = (p[0] + bi * l * d, p[1] + bi * d, p[2] + bi * d)
            for t in 0..<l { let o = t * d; for j in 0..<d { out[bi * l * d + o + j] = xs[o + j] * (1 + sc[j]) + sh[j] } }
        }
        return Tensor(shape: x.shape, data: y)
    }

    /// Returns (dx, dshift, dscale) for the modulate forward at input x.
    public static func modulateBackward(x: Tensor, scale: Tensor, dy: Tensor) -> (dx: Tensor, dShift: Tensor, dScale: Tensor) {
        let (b, l, d) = dims(x)
        var dx = Tensor.unfilled(x.count)
        var dShift = [Float](repeating: 0, count: b * d), dScale = [Float](repeating: 0, count: b * d)
        dShift.withUnsafeMutableBufferPointer { qs in
            dScale.withUnsafeMutableBufferPointer { qc in
                let s1 = UnsafeMutableSendable(qs.baseAddress!), s2 = UnsafeMutableSendable(qc.baseAddress!)
                perSample(b, [x, scale, dy], &dx) { bi, p, out in
                    let (xs, sc, g) = (p[0] + bi * l * d, p[1] + bi * d, p[2] + bi * l * d)
                    let dsh = s1.p + bi * d, dsc = s2.p + bi * d
                    for t in 0..<l {
                        let o = t * d
                        for j in 0..<d {
                            out[bi * l * d + o + j] = g[o + j] * (1 + sc[j])
                            dsh[j] += g[o + j]
                            dsc[j] += g[o + j] * xs[o + j]
                        }
                    }
                }
            }
        }
        return (Tensor(shape: x.shape, data: dx), Tensor(shape: [b, d], data: dShift), Tensor(shape: [b, d], data: dScale))
    }

    public static func gate(_ h: Tensor, gate g: Tensor) -> Tensor {
        let (b, l, d) = dims(h)
        var y = Tensor.unfilled(h.count)
        perSample(b, [h, g], &y) { bi, p, out in
            let (hs, gs) = (p[0] + bi * l * d, p[1] + bi * d)
            for t in 0..<l { let o = t * d; for j in 0..<d { out[bi * l * d + o + j] = hs[o + j] * gs[j] } }
        }
        return Tensor(shape: h.shape, data: y)
    }

    /// Returns (dh, dgate) for the gate forward at input h.
    public static func gateBackward(h: Tensor, gate g: Tensor, dy: Tensor) -> (dh: Tensor, dGate: Tensor) {
        let (b, l, d) = dims(h)
        var dh = Tensor.unfilled(h.count)
        var dGate = [Float](repeating: 0, count: b * d)
        dGate.withUnsafeMutableBufferPointer { qg in
            let sdg = UnsafeMutableSendable(qg.baseAddress!)
            perSample(b, [h, g, dy], &dh) { bi, p, out in
                let (hs, gs, dys) = (p[0] + bi * l * d, p[1] + bi * d, p[2] + bi * l * d)
                let dgs = sdg.p + bi * d
                for t in 0..<l {
                    let o = t * d
                    for j in 0..<d {
                        out[bi * l * d + o + j] = dys[o + j] * gs[j]
                        dgs[j] += dys[o + j] * hs[o + j]
                    }
                }
            }
        }
        return (Tensor(shape: h.shape, data: dh), Tensor(shape: [b, d], data: dGate))
    }

    /// Runs `body(bi, inputs, out)` for every batch element in parallel. Each sample's sums run over its own tokens
    /// in token order, so the result is the same for any thread count.
    private static func perSample(
        _ b: Int, _ inputs: [Tensor], _ out: inout [Float],
        _ body: (Int, [UnsafePointer<Float>], UnsafeMutablePointer<Float>) -> Void
    ) {
        guard b > 0, !out.isEmpty, inputs.allSatisfy({ $0.count > 0 }) else { return }
        withPointers(inputs) { ptrs in
            out.withUnsafeMutableBufferPointer { q in
                let so = UnsafeMutableSendable(q.baseAddress!)
                let sp = ptrs.map(UnsafeSendable.init)
                Parallel.forEach(b) { bi in body(bi, sp.map(\.p), so.p) }
            }
        }
    }

    /// Stable base pointers of several tensors' storage for the duration of `body`.
    private static func withPointers<R>(
        _ ts: [Tensor], _ acc: [UnsafePointer<Float>] = [],
        _ body: ([UnsafePointer<Float>]) -> R
    ) -> R {
        guard let first = ts.first else { return body(acc) }
        return first.data.withUnsafeBufferPointer { p in withPointers(Array(ts.dropFirst()), acc + [p.baseAddress!], body) }
    }

    private static func dims(_ x: Tensor) -> (Int, Int, Int) {
        precondition(x.shape.count == 3, "AdaLN ops expect [B, L, D], got \(x.shape)")
        return (x.shape[0], x.shape[1], x.shape[2])
    }
}
