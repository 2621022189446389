import Foundation

extension Tensor {
    /// Matrix product of the last two axes, batched over the leading ones (which must agree, or `other` is 2-D).
    /// `transposeSelf` / `transposeOther` use the operand's last two axes transposed, without copying.
    public func matmul(_ other: Tensor, transposeSelf: Bool = false, transposeOther: Bool = false) -> Tensor {
        precondition(rank >= 2 && other.rank >= 2, "matmul needs rank >= 2: \(shape) x \(other.shape)")
        let (ar, ac) = (dim(-2), dim(-1))
        let (br, bc) = (other.dim(-2), other.dim(-1))
        let m = transposeSelf ? ac : ar, k = transposeSelf ? ar : ac
        let k2 = transposeOther ? bc : br, n = transposeOther ? br : bc
        precondition(
            k == k2, "matmul inner dimensions differ: \(shape)\(transposeSelf ? "ᵀ" : "") x \(other.shape)\(transposeOther ? "ᵀ" : "")")
        let batchA = count / max(ar * ac, 1)
        let batchB = other.count / max(br * bc, 1)
        precondition(batchB == 1 || batchB == batchA, "matmul batch mismatch \(shape) x \(other.shape)")
        var outShape = Array(shape.dropLast(2)) + [m, n]
        if other.rank > rank { outShape = Array(other.shape.dropLast(2)) + [m, n] }
        var out = Tensor.unfilled(batchA * m * n)  // every block written by sgemm with beta = 0
        data.withUnsafeBufferPointer { pa in
            other.data.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { pc in
                    for bi in 0..<batchA {
                        BLAS.sgemm(
                            transA: transposeSelf, transB: transposeOther, m: m, n: n, k: k,
                            a: pa.baseAddress! + bi * ar * ac, lda: ac,
                            b: pb.baseAddress! + (batchB == 1 ? 0 : bi * br * bc), ldb: bc,
                            c: pc.baseAddress! + bi * m * n, ldc: n)
                    }
                }
            }
        }
        return Tensor(shape: outShape, data: out)
    }
}

/// y = x W^T + b over the last axis (PyTorch nn.Linear; weight is [out, in]).
public struct Linear: Sendable {
    public var weight: Tensor
    public var bias: Tensor?
    /// The same weight rounded to bfloat16 and packed: when set, the product runs in bf16 (`MatmulPrecision`).
    public var bf16: BFloat16Weights?

    public init(weight: Tensor, bias: Tensor?, bf16: BFloat16Weights? = nil) {
        precondition(weight.rank == 2, "Linear weight must be 2-D, got \(weight.shape)")
        if let bias { precondition(bias.shape == [weight.shape[0]], "Linear bias \(bias.shape) vs weight \(weight.shape)") }
        if let bf16 { precondition([bf16.n, bf16.k] == weight.shape, "bf16 weights [\(bf16.n), \(bf16.k)] vs \(weight.shape)") }
        self.weight = weight
        self.bias = bias
        self.bf16 = bf16
    }

    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

    /// The leading axis of `x` is the batch: each of its entries is computed alone (`BLAS.sgemm` groups), so a
    /// sample's output never depends on the other samples of the batch.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.dim(-1) == inFeatures, "Linear expects last dim \(inFeatures), got \(x.shape)")
        let rows = x.count / inFeatures
        let samples = x.rank >= 2 && x.shape[0] > 0 ? x.shape[0] : 1
        var out = Tensor.unfilled(rows * outFeatures)  // bias rows copied in, or sgemm with beta = 0
        if let bias {
            out.withUnsafeMutableBufferPointer { o in
                bias.data.withUnsafeBufferPointer { b in
                    for r in 0..<rows { (o.baseAddress! + r * outFeatures).update(from: b.baseAddress!, count: outFeatures) }
                }
            }
        }
        x.data.withUnsafeBufferPointer { px in
            weight.data.withUnsafeBufferPointer { pw in
                out.withUnsafeMutableBufferPointer { po in
                    if let bf16 {
                        bf16.multiply(
                            m: rows, x: px.baseAddress!, ldx: inFeatures, beta: bias == nil ? 0 : 1, y: po.baseAddress!,
                            ldy: outFeatures)
                        return
                    }
                    BLAS.sgemm(
                        transB: true, m: rows, n: outFeatures, k: inFeatures, a: px.baseAddress!, lda: inFeatures,
                        b: pw.baseAddress!, ldb: inFeatures, beta: bias == nil ? 0 : 1, c: po.baseAddress!, ldc: outFeatures,
                        groups: samples)
                }
            }
        }
        return Tensor(shape: Array(x.shape.dropLast()) + [outFeatures], data: out)
    }
}

/// Lookup rows of a [num, dim] table.
public struct Embedding: Sendable {
    public var weight: Tensor
    public init(weight: Tensor) {
        precondition(weight.rank == 2, "Embedding weight must be 2-D, got \(weight.shape)")
        self.weight = weight
    }
    public func callAsFunction(_ ids: [Int]) -> Tensor {
        let d = weight.shape[1]
        var out = [Float](repeating: 0, count: ids.count * d)
        for (i, id) in ids.enumerated() {
            precondition(id >= 0 && id < weight.shape[0], "embedding index \(id) outside 0..<\(weight.shape[0])")
            for j in 0..<d { out[i * d + j] = weight.data[id * d + j] }
        }
        return Tensor(shape: [ids.count, d], data: out)
    }
}
