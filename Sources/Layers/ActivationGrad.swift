import Foundation
import Tensor

/// Elementwise activation gradients: dx = dy * f'(x), f' evaluated at the forward input x.
public enum ActivationGrad {
    /// SiLU x σ(x): σ(x) (1 + x (1 - σ(x))).
    public static func silu(x: Tensor, dy: Tensor) -> Tensor {
        x.zipWith(dy) { v, g in
            let s = 1 / (1 + expf(-v)); return g * s * (1 + v * (1 - s))
        }
    }

    public static func relu(x: Tensor, dy: Tensor) -> Tensor { x.zipWith(dy) { v, g in v > 0 ? g : 0 } }
}
