import Foundation
import ModelIO
import Tensor

/// conv (no bias) -> BatchNorm (running statistics) -> optional ReLU, as torchvision's `BasicConv2d` and the
/// ResNet convolutions. The BatchNorm is folded into the convolution at load time:
/// `w' = w * gamma / sqrt(var + eps)`, `b' = beta - mean * gamma / sqrt(var + eps)`; this changes only float32
/// rounding (about 1e-7 relative), far inside the parity tolerance, and saves a pass over every activation.
struct ConvBN: Sendable {
    let conv: Conv2d
    let relu: Bool

    /// Reads `<conv>.weight` and `<bn>.{weight,bias,running_mean,running_var}` (`num_batches_tracked` ignored).
    /// Padding: `same == true` pads (k - 1) / 2 on each side of each axis (read from the weight's own kernel
    /// shape, so 1x7 / 7x1 / 1x3 / 3x1 kernels get the right orientation); otherwise no padding.
    static func load(_ a: TensorArchive, conv: String, bn: String, eps: Float, stride: Int = 1, same: Bool,
                     relu: Bool = true) throws -> ConvBN {
        let w = try a.floatTensor(conv + ".weight", shape: [-1, -1, -1, -1])
        let cout = w.shape[0]
        let gamma = try a.floatTensor(bn + ".weight", shape: [cout])
        let beta = try a.floatTensor(bn + ".bias", shape: [cout])
        let mean = try a.floatTensor(bn + ".running_mean", shape: [cout])
        let variance = try a.floatTensor(bn + ".running_var", shape: [cout])
        if let bad = variance.data.firstIndex(where: { !($0 >= 0) }) {
            throw CheckpointError.malformed(path: a.path, reason: "\(bn).running_var[\(bad)] = \(variance.data[bad]) is not a variance")
        }
        let per = w.count / max(cout, 1)
        var folded = w.data
        var bias = [Float](repeating: 0, count: cout)
        for o in 0..<cout {
            let scale = gamma.data[o] / (variance.data[o] + eps).squareRoot()
            for i in 0..<per { folded[o * per + i] *= scale }
            bias[o] = beta.data[o] - mean.data[o] * scale
        }
        let (kh, kw) = (w.shape[2], w.shape[3])
        let ph = same ? (kh - 1) / 2 : 0, pw = same ? (kw - 1) / 2 : 0
        let c = Conv2d(weight: Tensor(shape: w.shape, data: folded), bias: Tensor(shape: [cout], data: bias),
                       stride: stride, pads: (pw, pw, ph, ph))
        return ConvBN(conv: c, relu: relu)
    }

    var inChannels: Int { conv.inChannels }
    var outChannels: Int { conv.outChannels }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var y = conv(x)
        if relu {
            y.data.withUnsafeMutableBufferPointer { p in for i in 0..<p.count where !(p[i] > 0) && !p[i].isNaN { p[i] = 0 } }
        }
        return y
    }
}
