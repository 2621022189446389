import Foundation
import Tensor

/// Elementwise activation gradients: dx = dy * f'(x), f' evaluated at the forward input x.
public enum ActivationGrad {
    /// SiLU x σ(x): σ(x) (1 + x (1 - σ(x))).
    public static func silu(x: Tensor, dy: Tensor) -> Tensor {
        x.zipWith(dy) { v, g in let s = 1 / (1 + expf(-v)); return g * s * (1 + v * (1 - s)) }
    }

    public static func relu(x: Tensor, dy: Tensor) -> Tensor { x.zipWith(dy) { v, g in v > 0 ? g : 0 } }

    /// GELU, tanh approximation (as `Tensor.geluTanh`): 0.5 x (1 + tanh u), u = c (x + 0.044715 x³), c = √(2/π);
    /// derivative 0.5 (1 + t) + 0.5 x (1 - t²) c (1 + 3·0.044715 x²).
    public static func geluTanh(x: Tensor, dy: Tensor) -> Tensor {
        let c: Float = 0.7978845608028654
        return x.zipWith(dy) { v, g in
            let t = tanhf(c * (v + 0.044715 * v * v * v))
            return g * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * c * (1 + 3 * 0.044715 * v * v))
        }
    }
}
