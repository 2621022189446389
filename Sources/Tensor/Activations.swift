import Foundation

extension Tensor {
    public func silu() -> Tensor { map { $0 / (1 + expf(-$0)) } }
    public func relu() -> Tensor { map { max($0, 0) } }
    /// Exact GELU: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)).
    public func gelu() -> Tensor { map { 0.5 * $0 * (1 + erff($0 * 0.70710678118654752)) } }
    /// PyTorch's approximate='tanh' GELU: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
    public func geluTanh() -> Tensor {
        map { x in 0.5 * x * (1 + tanhf(0.79788456080286536 * (x + 0.044715 * x * x * x))) }
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
