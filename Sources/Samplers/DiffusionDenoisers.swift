import DiT
import Foundation
import Tensor

/// Ways to turn a DiT into the loop's `Denoiser`.
public enum DiTDenoisers {
    /// No guidance: model.forward(x, t, y) (sample_ddp.py when cfg_scale <= 1).
    public static func plain(_ model: DiTModel, labels: [Int]) -> DiffusionSampler.Denoiser {
        { x, t in try model.forward(x, t: t, y: labels) }
    }

    /// The official `forward_with_cfg` on the official 2n-row batch (x rows [0, n) conditional, [n, 2n) the
    /// copies sample.py makes; labels = [y..., null...]). Used by the parity tests, which replay all 2n rows.
    public static func officialCFG(
        _ model: DiTModel, labels: [Int], scale: Float,
        channels: CFGChannels = .first3
    ) -> DiffusionSampler.Denoiser {
        { x, t in try model.forwardWithCFG(x, t: t, y: labels, scale: scale, channels: channels) }
    }

    /// Guidance on n rows: the model runs on [x; x] with labels [y; null] and the guided output of the first half
    /// is returned. Rows [0, n) are exactly those of the official 2n-row loop (the second half of that loop only
    /// feeds itself), at the cost of carrying n rows through the sampler instead of 2n.
    public static func guided(
        _ model: DiTModel, labels: [Int], scale: Float,
        channels: CFGChannels = .first3
    ) -> DiffusionSampler.Denoiser {
        let null = [Int](repeating: model.config.nullClass, count: labels.count)
        return { x, t in
            let n = x.shape[0]
            let out = try model.forwardWithCFG(Tensor.cat0([x, x]), t: t + t, y: labels + null, scale: scale, channels: channels)
            return out.slice0(0, n)
        }
    }
}
