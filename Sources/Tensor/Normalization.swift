import CKernels
import Foundation

/// GroupNorm over NCHW (or [N, C, ...]); statistics in Double, biased variance, as PyTorch.
public struct GroupNorm: Sendable {
    public var groups: Int
    public var eps: Float
    public var weight: Tensor?
    public var bias: Tensor?

    public init(groups: Int, eps: Float, weight: Tensor?, bias: Tensor?) {
        self.groups = groups; self.eps = eps; self.weight = weight; self.bias = bias
    }

    /// `thenSiLU`: applies `Tensor.silu` to each channel right after normalising it, while it is in cache (the
    /// decoders' norm -> SiLU pairs; one pass and one copy less over maps of up to 160 x 256 x 256).
    public func callAsFunction(_ x: Tensor, thenSiLU: Bool = false) -> Tensor {
        let profile = Profiler.begin(.norm)
        defer { Profiler.end(profile) }
        let n = x.shape[0], c = x.shape[1]
        precondition(c % groups == 0, "GroupNorm: \(c) channels not divisible by \(groups) groups")
        let spatial = x.count / max(n * c, 1)
        let per = c / groups
        var out = x.data
        let w = weight?.data, b = bias?.data
        let groupSize = per * spatial
        out.withUnsafeMutableBufferPointer { po in
            let dst = UnsafeSendable(UnsafePointer(po.baseAddress!))
            Parallel.forEach(n * groups) { ng in
                let p = UnsafeMutablePointer(mutating: dst.p) + ng * groupSize
                var s = 0.0, s2 = 0.0
                for i in 0..<groupSize { let v = Double(p[i]); s += v; s2 += v * v }
                let mean = s / Double(groupSize)
                let varb = max(0, s2 / Double(groupSize) - mean * mean)
                let inv = 1 / (varb + Double(eps)).squareRoot()
                let g = ng % groups
                for cc in 0..<per {
                    let ch = g * per + cc
                    let sc = Float(inv) * (w?[ch] ?? 1)
                    let sh = (b?[ch] ?? 0) - Float(mean) * sc
                    let q = p + cc * spatial
                    for i in 0..<spatial { q[i] = q[i] * sc + sh }
                    if thenSiLU { varlab_silu(q, spatial) }
                }
            }
        }
        return Tensor(shape: x.shape, data: out)
    }
}

/// LayerNorm over the last axis, with or without affine parameters.
public struct LayerNorm: Sendable {
    public var eps: Float
    public var weight: Tensor?
    public var bias: Tensor?
    public init(eps: Float, weight: Tensor? = nil, bias: Tensor? = nil) {
        self.eps = eps; self.weight = weight; self.bias = bias
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let profile = Profiler.begin(.norm)
        defer { Profiler.end(profile) }
        let d = x.dim(-1)
        let rows = x.count / max(d, 1)
        var out = x.data
        let w = weight?.data, b = bias?.data
        guard rows > 0, d > 0 else { return Tensor(shape: x.shape, data: out) }
        out.withUnsafeMutableBufferPointer { po in
            let base = UnsafeMutableSendable(po.baseAddress!)
            // Rows are independent: the same bits for any split.
            Parallel.forRanges(rows, grain: Parallel.grain(rowWidth: d)) { range in
                for r in range {
                    let p = base.p + r * d
                    var s = 0.0
                    for i in 0..<d { s += Double(p[i]) }
                    let mean = s / Double(d)
                    var v = 0.0
                    for i in 0..<d { let t = Double(p[i]) - mean; v += t * t }
                    let inv = Float(1 / (v / Double(d) + Double(eps)).squareRoot())
                    let m = Float(mean)
                    if let w, let b {
                        for i in 0..<d { p[i] = (p[i] - m) * inv * w[i] + b[i] }
                    } else if let w {
                        for i in 0..<d { p[i] = (p[i] - m) * inv * w[i] }
                    } else {
                        for i in 0..<d { p[i] = (p[i] - m) * inv }
                    }
                }
            }
        }
        return Tensor(shape: x.shape, data: out)
    }
}

/// BatchNorm in inference mode over axis 1 (running statistics).
public struct BatchNorm: Sendable {
    public var eps: Float
    public var weight: Tensor, bias: Tensor, runningMean: Tensor, runningVar: Tensor
    public init(eps: Float, weight: Tensor, bias: Tensor, runningMean: Tensor, runningVar: Tensor) {
        self.eps = eps; self.weight = weight; self.bias = bias; self.runningMean = runningMean; self.runningVar = runningVar
    }
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let profile = Profiler.begin(.norm)
        defer { Profiler.end(profile) }
        let n = x.shape[0], c = x.shape[1]
        precondition(c == weight.count, "BatchNorm expects \(weight.count) channels, got \(x.shape)")
        let spatial = x.count / max(n * c, 1)
        var out = x.data
        // Same formula as PyTorch's CPU inference path: x * (w / sqrt(var + eps)) + (b - mean * that).
        let scale = (0..<c).map { weight.data[$0] / (runningVar.data[$0] + eps).squareRoot() }
        let shift = (0..<c).map { bias.data[$0] - runningMean.data[$0] * scale[$0] }
        out.withUnsafeMutableBufferPointer { p in
            for b in 0..<n {
                for ch in 0..<c {
                    let q = p.baseAddress! + (b * c + ch) * spatial
                    let s = scale[ch], t = shift[ch]
                    for i in 0..<spatial { q[i] = q[i] * s + t }
                }
            }
        }
        return Tensor(shape: x.shape, data: out)
    }
}
