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
        var y = x.data
        for bi in 0..<b {
            for t in 0..<l {
                let o = (bi * l + t) * d
                for j in 0..<d { y[o + j] = x.data[o + j] * (1 + scale.data[bi * d + j]) + shift.data[bi * d + j] }
            }
        }
        return Tensor(shape: x.shape, data: y)
    }

    /// Returns (dx, dshift, dscale) for the modulate forward at input x.
    public static func modulateBackward(x: Tensor, scale: Tensor, dy: Tensor) -> (dx: Tensor, dShift: Tensor, dScale: Tensor) {
        let (b, l, d) = dims(x)
        var dx = dy.data
        var dShift = [Float](repeating: 0, count: b * d), dScale = [Float](repeating: 0, count: b * d)
        for bi in 0..<b {
            for t in 0..<l {
                let o = (bi * l + t) * d
                for j in 0..<d {
                    let g = dy.data[o + j]
                    dx[o + j] = g * (1 + scale.data[bi * d + j])
                    dShift[bi * d + j] += g
                    dScale[bi * d + j] += g * x.data[o + j]
                }
            }
        }
        return (Tensor(shape: x.shape, data: dx), Tensor(shape: [b, d], data: dShift), Tensor(shape: [b, d], data: dScale))
    }

    public static func gate(_ h: Tensor, gate g: Tensor) -> Tensor {
        let (b, l, d) = dims(h)
        var y = h.data
        for bi in 0..<b { for t in 0..<l { let o = (bi * l + t) * d; for j in 0..<d { y[o + j] *= g.data[bi * d + j] } } }
        return Tensor(shape: h.shape, data: y)
    }

    /// Returns (dh, dgate) for the gate forward at input h.
    public static func gateBackward(h: Tensor, gate g: Tensor, dy: Tensor) -> (dh: Tensor, dGate: Tensor) {
        let (b, l, d) = dims(h)
        var dh = dy.data
        var dGate = [Float](repeating: 0, count: b * d)
        for bi in 0..<b {
            for t in 0..<l {
                let o = (bi * l + t) * d
                for j in 0..<d {
                    dh[o + j] = dy.data[o + j] * g.data[bi * d + j]
                    dGate[bi * d + j] += dy.data[o + j] * h.data[o + j]
                }
            }
        }
        return (Tensor(shape: h.shape, data: dh), Tensor(shape: [b, d], data: dGate))
    }

    private static func dims(_ x: Tensor) -> (Int, Int, Int) {
        precondition(x.shape.count == 3, "AdaLN ops expect [B, L, D], got \(x.shape)")
        return (x.shape[0], x.shape[1], x.shape[2])
    }
}
