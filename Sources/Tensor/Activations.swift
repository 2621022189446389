import CKernels
import Foundation

extension Tensor {
    /// Applies `body` to fixed chunks of a copy of the data on all threads. The chunks depend only on the size,
    /// so results are the same for any thread count (large decoder maps have ~10M values; one thread was slow).
    @inline(__always)
    func elementwise(_ body: (UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
        let profile = Profiler.begin(.elementwise)
        defer { Profiler.end(profile) }
        var out = self
        let n = count
        let chunk = 1 << 15
        out.data.withUnsafeMutableBufferPointer { p in
            guard let base0 = p.baseAddress else { return }
            let base = UnsafeSendable(UnsafePointer(base0))
            Parallel.forEach((n + chunk - 1) / chunk) { c in
                let start = c * chunk
                body(UnsafeMutablePointer(mutating: base.p) + start, min(chunk, n - start))
            }
        }
        return out
    }

    /// x / (1 + e^-x) with CKernels' vectorised exp (within 2 ulp of libm's, the same bits on every path).
    public func silu() -> Tensor { elementwise { q, n in varlab_silu(q, n) } }
    public func relu() -> Tensor { elementwise { q, n in for i in 0..<n { q[i] = max(q[i], 0) } } }
    /// Exact GELU: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)).
    public func gelu() -> Tensor {
        elementwise { q, n in for i in 0..<n { q[i] = 0.5 * q[i] * (1 + erff(q[i] * 0.70710678118654752)) } }
    }
    /// PyTorch's approximate='tanh' GELU: 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), evaluated as the
    /// identical x / (1 + exp(-2u)) with CKernels' vectorised exp (libm's tanhf, then scalar expf, was a quarter,
    /// then a twentieth, of a transformer step). Differs from PyTorch's float32 tanh path by a few ulp.
    public func geluTanh() -> Tensor { elementwise { q, n in varlab_gelu_tanh(q, n) } }
    /// CLIP's quick GELU: x * sigmoid(1.702 x).
    public func quickGELU() -> Tensor {
        elementwise { q, n in for i in 0..<n { q[i] = q[i] / (1 + expf(-1.702 * q[i])) } }
    }
    public func sigmoid() -> Tensor { map { 1 / (1 + expf(-$0)) } }

    /// Softmax over the last axis (max-subtracted; sums in Float like PyTorch's CPU kernel would in blocks).
    public func softmaxLastAxis() -> Tensor {
        var out = data
        let d = dim(-1)
        let rows = count / max(d, 1)
        out.withUnsafeMutableBufferPointer { p in
            for r in 0..<rows { softmaxInPlace(p.baseAddress! + r * d, d) }
        }
        return Tensor(shape: shape, data: out)
    }

    /// Index of the largest element of each row of the last axis (first on ties).
    public func argmaxLastAxis() -> [Int] {
        let d = dim(-1)
        return (0..<(count / max(d, 1))).map { r in
            var best = 0
            var bv = data[r * d]
            for i in 1..<d where data[r * d + i] > bv { bv = data[r * d + i]; best = i }
            return best
        }
    }

    /// Indices of the k largest of each last-axis row, descending by value (ties: lower index first).
    public func topKLastAxis(_ k: Int) -> [[Int]] {
        let d = dim(-1)
        return (0..<(count / max(d, 1))).map { r in
            let row = data[(r * d)..<(r * d + d)]
            let idx = Array(0..<d).sorted { (a, b) in
                let va = row[row.startIndex + a], vb = row[row.startIndex + b]
                return va > vb || (va == vb && a < b)
            }
            return Array(idx.prefix(min(k, d)))
        }
    }
}

/// In-place softmax of n contiguous floats.
@inline(__always)
public func softmaxInPlace(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
    var m = -Float.infinity
    for i in 0..<n { m = max(m, p[i]) }
    if m == -.infinity { for i in 0..<n { p[i] = .nan }; return }
    var s: Float = 0
    for i in 0..<n { let e = expf(p[i] - m); p[i] = e; s += e }
    let inv = 1 / s
    for i in 0..<n { p[i] *= inv }
}
