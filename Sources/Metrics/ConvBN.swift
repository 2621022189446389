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
    static func load(
        _ a: TensorArchive, conv: String, bn: String, eps: Float, stride: Int = 1, same: Bool,
        relu: Bool = true
    ) throws -> ConvBN {
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
        let c = Conv2d(
            weight: Tensor(shape: w.shape, data: folded), bias: Tensor(shape: [cout], data: bias),
            stride: stride, pads: (pw, pw, ph, ph))
        return ConvBN(conv: c, relu: relu)
    }

    var inChannels: Int { conv.inChannels }
    var outChannels: Int { conv.outChannels }

    /// Output of the conv (+ folded BN, + ReLU). Images are convolved together: their im2col columns are laid
    /// side by side so one sgemm covers several images (the late Inception layers have 17x17 and 8x8 planes,
    /// too small for an efficient GEMM one image at a time). Chunks of images keep the column buffer near
    /// 8M floats.
    func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.rank == 4 && x.shape[1] == inChannels, "conv expects [N, \(inChannels), H, W], got \(x.shape)")
        let p = conv.padding
        let geometry = ConvGeometry(
            x: x.shape, weight: conv.weight.shape, stride: conv.stride,
            pads: (p.left, p.right, p.top, p.bottom))
        let (n, cin, h, w, ho, wo) = (geometry.n, geometry.cin, geometry.h, geometry.w, geometry.ho, geometry.wo)
        let plane = geometry.plane, cout = outChannels, kdim = geometry.kdim
        let perChunk = max(1, min(n, (8 << 20) / max(kdim * plane, 1)))
        if perChunk == 1 {
            var y = conv(x)
            if relu { ConvBN.reluInPlace(&y.data) }
            return y
        }
        // Every element of `out` is written below (all images, channels and positions).
        var out = [Float](unsafeUninitializedCapacity: n * cout * plane) { _, c in c = n * cout * plane }
        // The column and product buffers are reused across calls (thread-local): fresh ~32 MB arrays would be
        // mmap'd and page-cleared by the kernel on every conv, which cost more than the im2col itself.
        let scratch = Scratch.current
        scratch.reserve(col: kdim * perChunk * plane, res: cout * perChunk * plane)
        let bias = conv.bias!.data
        var b0 = 0
        while b0 < n {
            let nb = min(perChunk, n - b0)
            let ld = nb * plane
            x.data.withUnsafeBufferPointer { px in
                scratch.col.withUnsafeMutableBufferPointer { pc in
                    for b in 0..<nb {
                        geometry.im2col(px.baseAddress! + (b0 + b) * cin * h * w, into: pc.baseAddress! + b * plane, ld: ld)
                    }
                }
            }
            conv.weight.data.withUnsafeBufferPointer { pw in
                scratch.col.withUnsafeBufferPointer { pc in
                    scratch.res.withUnsafeMutableBufferPointer { pr in
                        BLAS.sgemm(
                            m: cout, n: ld, k: kdim, a: pw.baseAddress!, lda: kdim, b: pc.baseAddress!, ldb: ld,
                            c: pr.baseAddress!, ldc: ld)
                    }
                }
            }
            // [cout, nb, plane] -> [nb, cout, plane], + bias, ReLU
            scratch.res.withUnsafeBufferPointer { pr in
                out.withUnsafeMutableBufferPointer { po in
                    for b in 0..<nb {
                        for o in 0..<cout {
                            let s = pr.baseAddress! + o * ld + b * plane
                            let d = po.baseAddress! + ((b0 + b) * cout + o) * plane
                            let bo = bias[o]
                            if relu {
                                for i in 0..<plane { let v = s[i] + bo; d[i] = v > 0 ? v : (v.isNaN ? v : 0) }
                            } else {
                                for i in 0..<plane { d[i] = s[i] + bo }
                            }
                        }
                    }
                }
            }
            b0 += nb
        }
        return Tensor(shape: [n, cout, ho, wo], data: out)
    }

    /// max(v, 0), keeping NaN (so broken inputs surface as NaN features, which are refused, not as zeros).
    static func reluInPlace(_ a: inout [Float]) {
        a.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count { let v = p[i]; p[i] = v > 0 ? v : (v.isNaN ? v : 0) }
        }
    }
}

/// Per-thread reusable buffers for `ConvBN` (grown on demand, never shrunk).
final class Scratch {
    var col: [Float] = []
    var res: [Float] = []

    static var current: Scratch {
        let key = "varlab.metrics.convScratch"
        if let s = Thread.current.threadDictionary[key] as? Scratch { return s }
        let s = Scratch()
        Thread.current.threadDictionary[key] = s
        return s
    }

    func reserve(col c: Int, res r: Int) {
        if col.count < c { col = [Float](repeating: 0, count: c) }
        if res.count < r { res = [Float](repeating: 0, count: r) }
    }
}
