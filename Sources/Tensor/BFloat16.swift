import CKernels
import Foundation

/// The precision of a model's Linear products. `.bfloat16` (opt-in, `--bf16`) rounds the activations and weights to
/// bfloat16 (8 bits of mantissa) and sums the exact products in float32 with AVX512-BF16; everything else (attention,
/// norms, convolutions, sampling) stays float32. Results stay bit-identical for any thread count and batch.
public enum MatmulPrecision: String, Sendable, CaseIterable {
    case float32, bfloat16

    /// Whether this CPU runs the bf16 kernel (AVX512-BF16: Intel Cooper Lake and later Xeons, AMD Zen 4 and later).
    public static var bfloat16Available: Bool { varlab_bf16_supported() != 0 }

    /// `.bfloat16` where the CPU has it; otherwise `.float32` and the reason, for the caller to print.
    public static func resolve(bf16 requested: Bool) -> (precision: MatmulPrecision, note: String?) {
        guard requested else { return (.float32, nil) }
        if bfloat16Available { return (.bfloat16, nil) }
        return (.float32, "--bf16: this CPU (\(CPUInfo.current.identity)) has no AVX512-BF16; computing in float32")
    }
}

/// A weight matrix W [n, k] rounded to bfloat16 once and packed in panels of 32 output columns, for y = x Wᵀ.
public final class BFloat16Weights: Sendable {
    public let n: Int, k: Int
    private let packed: [UInt16]

    /// Packs `weight` [n, k]. Needs `MatmulPrecision.bfloat16Available`.
    public init(_ weight: Tensor) {
        precondition(weight.rank == 2, "bf16 weights must be 2-D, got \(weight.shape)")
        precondition(MatmulPrecision.bfloat16Available, "the bf16 kernel needs AVX512-BF16")
        let (n, k) = (weight.shape[0], weight.shape[1])
        precondition(n <= Int(Int32.max) && k <= Int(Int32.max), "bf16 weights beyond 32-bit sizes: \(weight.shape)")
        self.n = n
        self.k = k
        let panels = (n + 31) / 32
        packed = [UInt16](unsafeUninitializedCapacity: varlab_bf16_packed_count(Int32(n), Int32(k))) { buf, count in
            count = 0
            guard let base = buf.baseAddress, k > 0 else { return }
            let out = UnsafeMutableSendable(base)
            weight.data.withUnsafeBufferPointer { w in
                let src = UnsafeSendable(w.baseAddress!)
                Parallel.forRanges(panels, grain: 4) { r in
                    varlab_bf16_pack_weights(
                        Int32(n), Int32(k), src.p, Int32(k), Int32(r.lowerBound), Int32(r.upperBound), out.p)
                }
            }
            count = buf.count
        }
    }

    /// y[m, n] = x[m, k] Wᵀ + beta y (row-major, x with row stride ldx, y with ldy). Each element is summed over k in
    /// one order whatever m, the thread count or the cut into tasks, so a sample never depends on its batch.
    public func multiply(
        m: Int, x: UnsafePointer<Float>, ldx: Int, beta: Float, y: UnsafeMutablePointer<Float>, ldy: Int
    ) {
        precondition(m <= Int(Int32.max) && ldx <= Int(Int32.max) && ldy <= Int(Int32.max), "bf16 product beyond 32 bits")
        guard m > 0 && n > 0 else { return }
        guard k > 0 else {
            // An empty sum: y = beta y, as sgemm does.
            for i in 0..<m { for j in 0..<n { y[i * ldy + j] = beta == 0 ? 0 : beta * y[i * ldy + j] } }
            return
        }
        let profile = Profiler.begin(.matmul)
        defer { Profiler.end(profile) }
        Profiler.countGEMM(m: m, n: n, k: k)
        let rowLength = varlab_bf16_row_length(Int32(k))
        // Every element is written by varlab_bf16_round_rows (the odd k's partner as 0).
        var rounded = [UInt16](unsafeUninitializedCapacity: m * rowLength) { _, count in count = m * rowLength }
        let panels = (n + 31) / 32
        // Tasks of up to 4 panels x a row block of about 192 KB of bf16 activations (a multiple of the 12-row tile),
        // so a task's rows stay in L2 while its panels stream past them. The cut only schedules: no sum depends on it.
        let blockRows = max(12, (192 * 1024 / (2 * rowLength)) / 12 * 12)
        let rowBlocks = (m + blockRows - 1) / blockRows
        let panelGroups = (panels + 3) / 4
        rounded.withUnsafeMutableBufferPointer { a in
            let pa = UnsafeMutableSendable(a.baseAddress!), px = UnsafeSendable(x)
            Parallel.forRanges(m, grain: blockRows) { r in
                varlab_bf16_round_rows(
                    Int32(r.count), Int32(k), px.p + r.lowerBound * ldx, Int32(ldx), pa.p + r.lowerBound * rowLength)
            }
            let py = UnsafeMutableSendable(y)
            packed.withUnsafeBufferPointer { w in
                let pw = UnsafeSendable(w.baseAddress!), pr = UnsafeSendable(UnsafePointer(pa.p))
                Parallel.forEach(rowBlocks * panelGroups) { task in
                    let rb = task / panelGroups, pg = task % panelGroups
                    varlab_bf16_gemm_nt(
                        Int32(rb * blockRows), Int32(min(m, (rb + 1) * blockRows)), Int32(pg * 4),
                        Int32(min(panels, pg * 4 + 4)), Int32(n), Int32(k), pr.p, pw.p, beta, py.p, Int32(ldy))
                }
            }
        }
    }
}
