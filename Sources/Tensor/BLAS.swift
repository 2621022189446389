import CBLAS
import Foundation

/// OpenBLAS with the right kernel for this CPU, and a GEMM whose results do not depend on the thread count.
///
/// Kernel selection: OpenBLAS built with DYNAMIC_ARCH picks its kernel in its load-time constructor. Debian's
/// 0.3.21 does not know recent Intel server CPUs (e.g. Emerald Rapids, family 6 model 207) and falls back to
/// the slow "Prescott" kernel. When the user has not set `OPENBLAS_CORETYPE`, we derive the best kernel from
/// the CPU flags, put it in the environment (so child processes agree) and ask OpenBLAS to run its own dynamic
/// kernel selection again (`gotoblas_dynamic_quit` + `gotoblas_dynamic_init`, both exported by DYNAMIC_ARCH
/// builds). An explicit `OPENBLAS_CORETYPE` is always honoured untouched.
public enum BLAS {
    public struct KernelReport: Sendable, CustomStringConvertible {
        public let kernel: String
        public let source: String
        public let cpu: String
        public var description: String { "OpenBLAS kernel \(kernel) (\(source)); CPU: \(cpu)" }
    }

    nonisolated(unsafe) private static var cachedReport: KernelReport?
    private static let setupLock = NSLock()

    /// Selects the kernel (once) and pins OpenBLAS to one thread: we parallelise over output blocks ourselves.
    @discardableResult
    public static func setUp() -> KernelReport {
        setupLock.lock(); defer { setupLock.unlock() }
        if let r = cachedReport { return r }
        let cpu = CPUInfo.current
        var source: String
        if let user = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"], !user.isEmpty {
            source = "OPENBLAS_CORETYPE=\(user) from the environment"
        } else {
            let detected = corename()
            let wanted = cpu.bestOpenBLASCore
            if let wanted, rank(of: detected) < rank(of: wanted) {
                setenv("OPENBLAS_CORETYPE", wanted, 1)
                if reinitialise() {
                    source = "chosen by varlab from the CPU flags; OpenBLAS alone picked \(detected)"
                } else {
                    source = "OpenBLAS's own choice; re-selection unavailable in this build (wanted \(wanted))"
                }
            } else {
                source = "OpenBLAS's own detection"
            }
        }
        openblas_set_num_threads(1)
        let r = KernelReport(kernel: corename(), source: source, cpu: cpu.summary)
        cachedReport = r
        return r
    }

    public static func corename() -> String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }

    /// Rough capability order of OpenBLAS x86_64 kernels; unknown names rank lowest.
    static func rank(of core: String) -> Int {
        let order = ["prescott", "core2", "penryn", "dunnington", "nehalem", "sandybridge", "haswell", "zen",
                     "skylakex", "cooperlake", "sapphirerapids"]
        return order.firstIndex(of: core.lowercased()) ?? -1
    }

    private static func reinitialise() -> Bool {
        typealias Fn = @convention(c) () -> Void
        guard let handle = dlopen(nil, RTLD_NOW),
              let quit = dlsym(handle, "gotoblas_dynamic_quit"),
              let initF = dlsym(handle, "gotoblas_dynamic_init") else { return false }
        unsafeBitCast(quit, to: Fn.self)()
        unsafeBitCast(initF, to: Fn.self)()
        return true
    }

    /// C[M,N] = alpha * op(A) op(B) + beta * C, row-major. op(A) is M x K, op(B) is K x N.
    /// The output is cut into fixed blocks that depend only on (M, N), each computed by a single-threaded sgemm,
    /// so every element is summed in the same order whatever the thread count.
    public static func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                             alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        setUp()
        if m == 0 || n == 0 { return }
        if k == 0 {
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        let ta = transA ? CblasTrans : CblasNoTrans
        let tb = transB ? CblasTrans : CblasNoTrans
        let flops = Double(m) * Double(n) * Double(k)
        // Blocks of at least ~4 MFLOP; the split depends on the shape only.
        let minRows = 64
        if flops < 8e6 || (m < 2 * minRows && n < 2 * minRows) {
            cblas_sgemm(CblasRowMajor, ta, tb, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb),
                        beta, c, Int32(ldc))
            return
        }
        // At least ~16 M multiply-adds per block: every block re-packs the shared operand (measured: same wall time
        // on 2 threads, less CPU time, for the small products of the toy models' training steps).
        let blocks = min(16, max(1, m >= n ? m / minRows : n / minRows), max(1, Int(flops / 16e6)))
        let pa = UnsafeSendable(a), pb = UnsafeSendable(b), pc = UnsafeSendable(UnsafePointer(c))
        if m >= n {
            let rowsPer = (m + blocks - 1) / blocks
            Parallel.forEach(blocks) { blk in
                let r0 = blk * rowsPer, r1 = min(m, r0 + rowsPer)
                if r0 >= r1 { return }
                let aOff = transA ? r0 : r0 * lda
                cblas_sgemm(CblasRowMajor, ta, tb, Int32(r1 - r0), Int32(n), Int32(k), alpha, pa.p + aOff, Int32(lda),
                            pb.p, Int32(ldb), beta, UnsafeMutablePointer(mutating: pc.p) + r0 * ldc, Int32(ldc))
            }
        } else {
            let colsPer = (n + blocks - 1) / blocks
            Parallel.forEach(blocks) { blk in
                let c0 = blk * colsPer, c1 = min(n, c0 + colsPer)
                if c0 >= c1 { return }
                let bOff = transB ? c0 * ldb : c0
                cblas_sgemm(CblasRowMajor, ta, tb, Int32(m), Int32(c1 - c0), Int32(k), alpha, pa.p, Int32(lda),
                            pb.p + bOff, Int32(ldb), beta, UnsafeMutablePointer(mutating: pc.p) + c0, Int32(ldc))
            }
        }
    }
}

/// Lets a raw pointer cross into a concurrent closure; the caller guarantees disjoint writes.
public struct UnsafeSendable<T>: @unchecked Sendable {
    public let p: UnsafePointer<T>
    public init(_ p: UnsafePointer<T>) { self.p = p }
}

/// A mutable buffer pointer handed to parallel workers that write disjoint parts of it.
public struct UnsafeMutableSendable<T>: @unchecked Sendable {
    public let p: UnsafeMutablePointer<T>
    public init(_ p: UnsafeMutablePointer<T>) { self.p = p }
}

/// CPU flags from /proc/cpuinfo (Linux), enough to choose an OpenBLAS kernel.
public struct CPUInfo: Sendable {
    public let modelName: String
    public let flags: Set<String>

    public static let current: CPUInfo = {
        let text = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        var model = "unknown", flags = Set<String>()
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { continue }
            if parts[0] == "model name", model == "unknown" { model = parts[1] }
            if parts[0] == "flags", flags.isEmpty { flags = Set(parts[1].split(separator: " ").map(String.init)) }
        }
        return CPUInfo(modelName: model, flags: flags)
    }()

    /// The OpenBLAS 0.3.21 kernel this CPU can run best, or nil to leave OpenBLAS's choice alone.
    public var bestOpenBLASCore: String? {
        let avx512 = ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"].allSatisfy(flags.contains)
        if avx512 && flags.contains("avx512_bf16") { return "Cooperlake" }
        if avx512 { return "SkylakeX" }
        if flags.contains("avx2") && flags.contains("fma") { return "Haswell" }
        return nil
    }

    public var summary: String {
        let simd = ["avx512f", "avx512_bf16", "amx_tile", "avx2"].filter(flags.contains).joined(separator: ",")
        return "\(modelName) [\(simd)]"
    }
}
