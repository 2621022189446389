import Foundation
import Tensor

/// The fixed and learned embeddings of DiT (models.py: TimestepEmbedder, LabelEmbedder, get_2d_sincos_pos_embed).
public enum DiTEmbeddings {
    /// Sinusoidal timestep features, `[cos(t f), sin(t f)]` (cos first), f_i = exp(-ln(maxPeriod) i / half).
    /// Float32 as the official code: freqs and t * freqs are rounded to float32; cos/sin are evaluated in double
    /// on those float32 arguments (PyTorch's float32 cos/sin are within an ulp of that).
    /// The freqs must be PyTorch's float32 `exp` values, not correctly rounded ones: t multiplies them (up to 999),
    /// so a 1-ulp difference in f_i moves the argument by up to ~3e-5 and the feature by as much, which the model
    /// carries into epsilon and sqrt(1/abar_t - 1) (~157 at t = 999) into pred_xstart. For the official size
    /// (256, max period 10000) the table below holds them bit for bit.
    public static func timestepFeatures(
        _ t: [Float], dim: Int = DiTConfig.frequencyEmbeddingSize,
        maxPeriod: Double = 10000
    ) -> Tensor {
        let half = dim / 2
        let freqs = timestepFrequencies(half: half, maxPeriod: maxPeriod)
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

    /// f_i = exp(float32(-ln(maxPeriod)) * i / half) in float32. For half = 128 and maxPeriod = 10000 (every DiT)
    /// these are the values PyTorch's CPU float32 `torch.exp` returns (not correctly rounded: i = 12
    /// and i = 106 are 1 ulp above the correctly rounded exp); other sizes use the correctly rounded exp.
    public static func timestepFrequencies(half: Int, maxPeriod: Double = 10000) -> [Float] {
        if half == officialFrequencyBits.count && maxPeriod == 10000 {
            return officialFrequencyBits.map { Float(bitPattern: $0) }
        }
        let negLog = Float(-Foundation.log(maxPeriod))
        return (0..<half).map { i in Float(Foundation.exp(Double(negLog * Float(i) / Float(half)))) }
    }

    /// Bit patterns of torch.exp(-math.log(10000) * torch.arange(0, 128, dtype=torch.float32) / 128) (float32).
    static let officialFrequencyBits: [UInt32] = [
        0x3F800000, 0x3F6E39F8, 0x3F5DAFD6, 0x3F4E4BAC, 0x3F3FF911, 0x3F32A506, 0x3F263DE0, 0x3F1AB32B,
        0x3F0FF59A, 0x3F05F6EE, 0x3EF953CE, 0x3EE80460, 0x3ED7E89B, 0x3EC8EB23, 0x3EBAF81B, 0x3EADFCFF,
        0x3EA1E89B, 0x3E96AAEA, 0x3E8C3503, 0x3E827908, 0x3E72D422, 0x3E61F836, 0x3E5247ED, 0x3E43AE7C,
        0x3E361887, 0x3E297409, 0x3E1DB03F, 0x3E12BD90, 0x3E088D77, 0x3DFE24DF, 0x3DEC7FD5, 0x3DDC1464,
        0x3DCCCCCC, 0x3DBE94C7, 0x3DB15978, 0x3DA50957, 0x3D99940D, 0x3D8EEA6C, 0x3D84FE4C, 0x3D778511,
        0x3D6655C1, 0x3D5657E3, 0x3D477640, 0x3D399D18, 0x3D2CBA15, 0x3D20BC1B, 0x3D159348, 0x3D0B30CB,
        0x3D0186E2, 0x3CF11177, 0x3CE054D1, 0x3CD0C1A8, 0x3CC2434E, 0x3CB4C691, 0x3CA83989, 0x3C9C8B96,
        0x3C91AD39, 0x3C879009, 0x3C7C4D30, 0x3C6AC8E6, 0x3C5A7BF1, 0x3C4B50B5, 0x3C3D330E, 0x3C301050,
        0x3C23D70A, 0x3C187706, 0x3C0DE12E, 0x3C040777, 0x3BF5B9AD, 0x3BE4AA45, 0x3BD4CA15, 0x3BC6040A,
        0x3BB8449A, 0x3BAB7982, 0x3B9F91CC, 0x3B947DAF, 0x3B8A2E75, 0x3B80967C, 0x3B6F520D, 0x3B5EB47A,
        0x3B4F3E33, 0x3B40DAC2, 0x3B33770D, 0x3B270153, 0x3B1B690D, 0x3B109ED8, 0x3B06946D, 0x3AFA78F0,
        0x3AE91528, 0x3AD8E675, 0x3AC9D759, 0x3ABBD3EB, 0x3AAEC98E, 0x3AA2A6F7, 0x3A975C0B, 0x3A8CD9D9,
        0x3A83126E, 0x3A73F1A2, 0x3A6301E3, 0x3A533F24, 0x3A44948A, 0x3A36EE9D, 0x3A2A3B44, 0x3A1E69A2,
        0x3A136A14, 0x3A092E01, 0x39FF4FAD, 0x39ED95E4, 0x39DD1721, 0x39CDBD93, 0x39BF74D6, 0x39B229FB,
        0x39A5CB61, 0x399A48A0, 0x398F9275, 0x39859AA4, 0x3978A80D, 0x3967648C, 0x395753E2, 0x394860BF,
        0x393A7753, 0x392D852A, 0x39217919, 0x39164326, 0x390BD46D, 0x39021F28, 0x38F22CDD, 0x38E15C8E,
    ]

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
