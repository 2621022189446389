import Foundation
import Tensor

/// The fixed and learned embeddings of DiT (models.py: TimestepEmbedder, LabelEmbedder, get_2d_sincos_pos_embed).
public enum DiTEmbeddings {
    /// Sinusoidal timestep features, `[cos(t f), sin(t f)]` (cos first), f_i = exp(-ln(maxPeriod) i / half).
    /// Float32 as the official code: freqs and t * freqs are rounded to float32; cos/sin are evaluated in double
    /// on those float32 arguments (PyTorch's float32 cos/sin are within an ulp of that).
    public static func timestepFeatures(_ t: [Float], dim: Int = DiTConfig.frequencyEmbeddingSize,
                                        maxPeriod: Double = 10000) -> Tensor {
        let half = dim / 2
        let negLog = Float(-Foundation.log(maxPeriod))
        let freqs: [Float] = (0..<half).map { i in Float(Foundation.exp(Double(negLog * Float(i) / Float(half)))) }
        var out = [Float](repeating: 0, count: t.count * dim)
        for (r, tv) in t.enumerated() {
            for i in 0..<half {
                let arg = Double(tv * freqs[i])
                out[r * dim + i] = Float(Foundation.cos(arg))
                out[r * dim + half + i] = Float(Foundation.sin(arg))
            }
            // Odd dims get a zero column in the official code; 256 is even.
        }
        return Tensor(shape: [t.count, dim], data: out)
    }

    /// 2-D sin-cos position table [gridSize * gridSize, dim] (MAE's get_2d_sincos_pos_embed, as DiT uses it).
    /// The first half of the channels encodes the column (w) coordinate, the second half the row (h); each half
    /// is `[sin(pos * omega), cos(pos * omega)]`, omega_i = 1 / 10000^(i / (dim/4)). Computed in float64 and
    /// rounded once, as numpy does before the official code copies it into the float32 parameter.
    public static func sinCos2D(dim: Int, gridSize: Int) -> Tensor {
        precondition(dim % 4 == 0, "2-D sin-cos embedding needs dim divisible by 4")
        let quarter = dim / 4
        let omega: [Double] = (0..<quarter).map { 1.0 / Foundation.pow(10000.0, Double($0) / Double(quarter)) }
        var out = [Float](repeating: 0, count: gridSize * gridSize * dim)
        for h in 0..<gridSize {
            for w in 0..<gridSize {
                let row = (h * gridSize + w) * dim
                for (half, pos) in [(0, Double(w)), (1, Double(h))] {
                    for i in 0..<quarter {
                        let a = pos * omega[i]
                        out[row + half * 2 * quarter + i] = Float(Foundation.sin(a))
                        out[row + half * 2 * quarter + quarter + i] = Float(Foundation.cos(a))
                    }
                }
            }
        }
        return Tensor(shape: [gridSize * gridSize, dim], data: out)
    }
}
