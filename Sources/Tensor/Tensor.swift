import Foundation

/// A dense, row-major Float32 array with a shape. Deliberately simple: contiguous storage, no strides,
/// value semantics through the copy-on-write `[Float]`. Layout conventions follow PyTorch (NCHW, [out, in]).
public struct Tensor: Equatable, Sendable {
    public var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        precondition(shape.reduce(1, *) == data.count, "shape \(shape) does not match \(data.count) elements")
        self.shape = shape
        self.data = data
    }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, data: [Float](repeating: 0, count: shape.reduce(1, *)))
    }

    /// Storage of `count` floats left unfilled, for outputs whose every element is written next (an sgemm with
    /// beta = 0, a copy or a full elementwise pass): skips a zero fill that was a tenth of a training step.
    public static func unfilled(_ count: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { _, n in n = count }
    }

    public init(repeating value: Float, shape: [Int]) {
        self.init(shape: shape, data: [Float](repeating: value, count: shape.reduce(1, *)))
    }

    /// Scalar tensor of shape [].
    public init(scalar: Float) { self.init(shape: [], data: [scalar]) }

    public var count: Int { data.count }
    public var rank: Int { shape.count }

    /// Size of dimension `d`; negative `d` counts from the end.
    public func dim(_ d: Int) -> Int { shape[d < 0 ? shape.count + d : d] }

    public func reshaped(_ newShape: [Int]) -> Tensor {
        var s = newShape
        if let i = s.firstIndex(of: -1) {
            let known = s.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
            s[i] = known == 0 ? 0 : count / known
        }
        precondition(s.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        return Tensor(shape: s, data: data)
    }

    public subscript(flat i: Int) -> Float {
        get { data[i] }
        set { data[i] = newValue }
    }

    /// Rows [start, end) along dimension 0.
    public func slice0(_ start: Int, _ end: Int) -> Tensor {
        precondition(rank >= 1 && 0 <= start && start <= end && end <= shape[0], "slice0 \(start)..<\(end) of \(shape)")
        let inner = count / max(shape[0], 1)
        var s = shape
        s[0] = end - start
        return Tensor(shape: s, data: Array(data[(start * inner)..<(end * inner)]))
    }

    /// Concatenate along dimension 0.
    public static func cat0(_ parts: [Tensor]) -> Tensor {
        precondition(!parts.isEmpty)
        let tail = Array(parts[0].shape.dropFirst())
        var rows = 0
        var out: [Float] = []
        out.reserveCapacity(parts.reduce(0) { $0 + $1.count })
        for p in parts {
            precondition(Array(p.shape.dropFirst()) == tail, "cat0 shape mismatch \(p.shape) vs \(tail)")
            rows += p.shape[0]
            out.append(contentsOf: p.data)
        }
        return Tensor(shape: [rows] + tail, data: out)
    }

    /// Concatenate along an arbitrary dimension.
    public static func cat(_ parts: [Tensor], dim: Int) -> Tensor {
        precondition(!parts.isEmpty)
        let r = parts[0].rank
        let d = dim < 0 ? r + dim : dim
        let outer = parts[0].shape[0..<d].reduce(1, *)
        let inner = parts[0].shape[(d + 1)...].reduce(1, *)
        var total = 0
        for p in parts {
            precondition(
                p.rank == r && Array(p.shape[0..<d]) == Array(parts[0].shape[0..<d])
                    && Array(p.shape[(d + 1)...]) == Array(parts[0].shape[(d + 1)...]), "cat shape mismatch")
            total += p.shape[d]
        }
        var out = Tensor.unfilled(outer * total * inner)
        var offset = 0
        for p in parts {
            let n = p.shape[d] * inner
            p.data.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    for o in 0..<outer {
                        let s = src.baseAddress! + o * n
                        let t = dst.baseAddress! + o * total * inner + offset
                        t.update(from: s, count: n)
                    }
                }
            }
            offset += n
        }
        var s = parts[0].shape
        s[d] = total
        return Tensor(shape: s, data: out)
    }

    /// Split along dimension `dim` into pieces of the given sizes.
    public func split(_ sizes: [Int], dim: Int) -> [Tensor] {
        let d = dim < 0 ? rank + dim : dim
        precondition(sizes.reduce(0, +) == shape[d], "split \(sizes) of \(shape) along \(d)")
        let outer = shape[0..<d].reduce(1, *)
        let inner = shape[(d + 1)...].reduce(1, *)
        var result: [Tensor] = []
        var start = 0
        for sz in sizes {
            var out = Tensor.unfilled(outer * sz * inner)
            data.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    for o in 0..<outer {
                        (dst.baseAddress! + o * sz * inner).update(
                            from: src.baseAddress! + (o * shape[d] + start) * inner,
                            count: sz * inner)
                    }
                }
            }
            var s = shape
            s[d] = sz
            result.append(Tensor(shape: s, data: out))
            start += sz
        }
        return result
    }

    /// General axis permutation (like torch.permute followed by .contiguous()).
    public func permuted(_ perm: [Int]) -> Tensor {
        precondition(perm.sorted() == Array(0..<rank), "bad permutation \(perm) for rank \(rank)")
        let newShape = perm.map { shape[$0] }
        var srcStrides = [Int](repeating: 1, count: rank)
        for i in stride(from: rank - 2, through: 0, by: -1) { srcStrides[i] = srcStrides[i + 1] * shape[i + 1] }
        let permStrides = perm.map { srcStrides[$0] }
        if count == 0 || rank == 0 { return Tensor(shape: newShape, data: data) }
        var out = Tensor.unfilled(count)
        let last = rank - 1
        let lastN = newShape[last], lastStride = permStrides[last]
        let rows = count / lastN
        data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                let ss = UnsafeSendable(src.baseAddress!), sd = UnsafeMutableSendable(dst.baseAddress!)
                // Output rows (all axes but the last) in parallel pieces; a pure copy, so any split gives the same bits.
                Parallel.forRanges(rows, grain: Parallel.grain(rowWidth: lastN)) { range in
                    // Multi-index and source offset of the piece's first row, then an odometer over the rest.
                    var idx = [Int](repeating: 0, count: rank)
                    var rem = range.lowerBound, srcOff = 0
                    for ax in stride(from: last - 1, through: 0, by: -1) {
                        idx[ax] = rem % newShape[ax]; rem /= newShape[ax]
                        srcOff += idx[ax] * permStrides[ax]
                    }
                    var o = range.lowerBound * lastN
                    for _ in range {
                        var s = srcOff
                        for _ in 0..<lastN { sd.p[o] = ss.p[s]; s += lastStride; o += 1 }
                        var ax = last - 1
                        while ax >= 0 {
                            idx[ax] += 1
                            srcOff += permStrides[ax]
                            if idx[ax] < newShape[ax] { break }
                            srcOff -= permStrides[ax] * newShape[ax]
                            idx[ax] = 0
                            ax -= 1
                        }
                    }
                }
            }
        }
        return Tensor(shape: newShape, data: out)
    }

    /// 2-D transpose of the last two axes.
    public func transposedLast2() -> Tensor {
        var p = Array(0..<rank)
        p.swapAt(rank - 1, rank - 2)
        return permuted(p)
    }
}

// MARK: - Elementwise arithmetic (shapes must match exactly, or the right side is a scalar / broadcast row)

extension Tensor {
    @inlinable
    public func map(_ f: (Float) -> Float) -> Tensor {
        Tensor(shape: shape, data: data.map(f))
    }

    public static func + (a: Tensor, b: Tensor) -> Tensor { a.zipWith(b, +) }
    public static func - (a: Tensor, b: Tensor) -> Tensor { a.zipWith(b, -) }
    public static func * (a: Tensor, b: Tensor) -> Tensor { a.zipWith(b, *) }
    public static func / (a: Tensor, b: Tensor) -> Tensor { a.zipWith(b, /) }
    public static func * (a: Tensor, s: Float) -> Tensor { a.map { $0 * s } }
    public static func * (s: Float, a: Tensor) -> Tensor { a.map { s * $0 } }
    public static func + (a: Tensor, s: Float) -> Tensor { a.map { $0 + s } }
    public static func - (a: Tensor, s: Float) -> Tensor { a.map { $0 - s } }
    public static func += (a: inout Tensor, b: Tensor) { a.addInPlace(b) }
    public static func -= (a: inout Tensor, b: Tensor) { a.addInPlace(b, scale: -1) }

    /// `self += scale * b` (b same shape).
    public mutating func addInPlace(_ b: Tensor, scale: Float = 1) {
        precondition(shape == b.shape || b.count == count, "addInPlace shape \(shape) vs \(b.shape)")
        let n = count
        data.withUnsafeMutableBufferPointer { d in
            b.data.withUnsafeBufferPointer { s in
                guard n > 0 else { return }
                let sd = UnsafeMutableSendable(d.baseAddress!), ss = UnsafeSendable(s.baseAddress!)
                Parallel.forRanges(n, grain: 1 << 16) { r in
                    if scale == 1 { for i in r { sd.p[i] += ss.p[i] } } else { for i in r { sd.p[i] += scale * ss.p[i] } }
                }
            }
        }
    }

    /// Elementwise combination. `b` may have the same shape, a trailing shape that repeats (row broadcast,
    /// e.g. a bias of shape [C] against [N, C]), or be a single element.
    public func zipWith(_ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
        if b.count == count {
            precondition(shape == b.shape || b.count == count, "shape mismatch \(shape) vs \(b.shape)")
            var out = [Float](repeating: 0, count: count)
            data.withUnsafeBufferPointer { x in
                b.data.withUnsafeBufferPointer { y in
                    for i in 0..<count { out[i] = f(x[i], y[i]) }
                }
            }
            return Tensor(shape: shape, data: out)
        }
        if b.count == 1 {
            let v = b.data[0]
            return map { f($0, v) }
        }
        precondition(
            b.count > 0 && count % b.count == 0 && Array(shape.suffix(b.rank)) == b.shape,
            "cannot broadcast \(b.shape) against \(shape)")
        var out = [Float](repeating: 0, count: count)
        let n = b.count
        data.withUnsafeBufferPointer { x in
            b.data.withUnsafeBufferPointer { y in
                for i in 0..<count { out[i] = f(x[i], y[i % n]) }
            }
        }
        return Tensor(shape: shape, data: out)
    }

    public func sum() -> Double { data.reduce(0.0) { $0 + Double($1) } }
    public func mean() -> Double { count == 0 ? .nan : sum() / Double(count) }
    public func maxAbs() -> Float { data.reduce(0) { Swift.max($0, abs($1)) } }

    /// Largest absolute elementwise difference (NaN if shapes differ or any NaN appears).
    public func maxAbsDiff(_ other: Tensor) -> Float {
        guard shape == other.shape else { return .nan }
        var m: Float = 0
        for i in 0..<count {
            let d = abs(data[i] - other.data[i])
            if d.isNaN { return .nan }
            m = Swift.max(m, d)
        }
        return m
    }

    public func clamped(_ lo: Float, _ hi: Float) -> Tensor { map { Swift.min(Swift.max($0, lo), hi) } }
}

/// A model stage produced NaN or infinity (non-finite weights or inputs): generation stops and names the stage
/// instead of writing an image of token 0 or black pixels.
public struct NonFiniteError: Error, CustomStringConvertible, Equatable {
    public let stage: String
    public let index: Int
    public let value: Float
    public var description: String {
        "\(stage) is not finite (element \(index) is \(value)): the checkpoint's weights or the inputs hold NaN or infinity"
    }
}

extension Tensor {
    /// Throws `NonFiniteError` naming `stage` when any element is NaN or infinite.
    public func requireFinite(_ stage: @autoclosure () -> String) throws {
        if let bad = data.firstIndex(where: { !$0.isFinite }) { throw NonFiniteError(stage: stage(), index: bad, value: data[bad]) }
    }
}
