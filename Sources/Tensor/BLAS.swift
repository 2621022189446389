import CBLAS
import CKernels
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

    /// Switches OpenBLAS to another of its kernels in this process (for tests and benchmarks that compare kernels);
    /// false when the kernel did not take (unknown name, or a build without dynamic kernel selection).
    @discardableResult
    public static func selectKernel(_ name: String) -> Bool {
        setUp()
        setupLock.lock(); defer { setupLock.unlock() }
        setenv("OPENBLAS_CORETYPE", name, 1)
        guard reinitialise() else { return false }
        openblas_set_num_threads(1)
        cachedReport = KernelReport(
            kernel: corename(), source: "OPENBLAS_CORETYPE=\(name) selected in process",
            cpu: CPUInfo.current.summary)
        return corename().lowercased() == name.lowercased()
    }

    public static func corename() -> String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }

    /// Rough capability order of OpenBLAS x86_64 kernels; unknown names rank lowest.
    static func rank(of core: String) -> Int {
        let order = [
            "prescott", "core2", "penryn", "dunnington", "nehalem", "sandybridge", "haswell", "zen",
            "skylakex", "cooperlake", "sapphirerapids",
        ]
        return order.firstIndex(of: core.lowercased()) ?? -1
    }

    private static func reinitialise() -> Bool {
        typealias Fn = @convention(c) () -> Void
        guard let handle = dlopen(nil, RTLD_NOW),
            let quit = dlsym(handle, "gotoblas_dynamic_quit"),
            let initF = dlsym(handle, "gotoblas_dynamic_init")
        else { return false }
        unsafeBitCast(quit, to: Fn.self)()
        unsafeBitCast(initF, to: Fn.self)()
        return true
    }

    /// C[M,N] = alpha * op(A) op(B) + beta * C, row-major. op(A) is M x K, op(B) is K x N.
    ///
    /// `groups`: the M rows are that many equal, independent blocks (one per sample of a batch). Each block is
    /// computed by exactly the calls it would get alone, so its result never depends on which other samples share
    /// the product (OpenBLAS's result for a row depends on the row count and on the row's place in its call:
    /// edge tiles and small-matrix paths sum in another order). The work is cut into tiles that depend only on
    /// (M / groups, N, K), each computed by a single-threaded sgemm, so every element is summed in the same order
    /// whatever the thread count or batch size. Up to `smallRows` rows per group in the A Bᵀ layout go to the
    /// fixed-order kernel of `fewRowsNT` instead.
    public static func sgemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, groups: Int = 1
    ) {
        setUp()
        let profile = Profiler.begin(.matmul)
        defer { Profiler.end(profile) }
        Profiler.countGEMM(m: m, n: n, k: k)
        precondition(groups >= 1 && m % groups == 0, "sgemm: \(m) rows do not split into \(groups) equal groups")
        if m == 0 || n == 0 { return }
        let rows = m / groups
        if k == 0 {
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        if !transA && transB && alpha == 1 && rows <= smallRows && n * k >= 1 << 14 {
            fewRowsNT(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        let ta = transA ? CblasTrans : CblasNoTrans
        let tb = transB ? CblasTrans : CblasNoTrans
        let tiles = GEMMTiling(rows: rows, n: n, k: k)
        // Samples are spread over tasks freely (a sample's calls are the same in any task); consecutive samples
        // share a task so the tile's slice of B stays in cache between them.
        let perTask =
            tiles.count >= 2 * Parallel.threads
            ? groups
            : max(1, groups / max(1, (4 * Parallel.threads + tiles.count - 1) / tiles.count))
        let chunks = (groups + perTask - 1) / perTask
        let pa = UnsafeSendable(a), pb = UnsafeSendable(b), pc = UnsafeSendable(UnsafePointer(c))
        Parallel.forEach(tiles.count * chunks) { task in
            let tile = tiles[task % tiles.count]
            let chunk = task / tiles.count
            for g in (chunk * perTask)..<min(groups, (chunk + 1) * perTask) {
                let r0 = g * rows + tile.rows.lowerBound, c0 = tile.cols.lowerBound
                let aOff = transA ? r0 : r0 * lda
                let bOff = transB ? c0 * ldb : c0
                cblas_sgemm(
                    CblasRowMajor, ta, tb, Int32(tile.rows.count), Int32(tile.cols.count), Int32(k), alpha,
                    pa.p + aOff, Int32(lda), pb.p + bOff, Int32(ldb), beta,
                    UnsafeMutablePointer(mutating: pc.p) + r0 * ldc + c0, Int32(ldc))
            }
        }
    }
}

extension BLAS {
    /// Samples with at most this many rows (tokens) take `fewRowsNT`: a few tokens per sample against a large weight
    /// matrix (VAR's first scales, conditioning MLPs), where per-sample OpenBLAS calls would re-pack the weights for
    /// every sample (measured 1.6-5.6x slower than one call for the whole batch on an AMD EPYC Zen 2, VAR-d16 shapes).
    static let smallRows = 32

    /// C = A Bᵀ (+ beta C) with B stored [n, k], by the fixed-order kernel of CKernels: every element depends only on
    /// its row of A and of B, so all rows of all samples go through together and the weights stream through once.
    /// Cut over B's rows into slices of about 256 KB (scheduling only: the split never changes a sum).
    static func fewRowsNT(
        m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        precondition(
            m <= Int(Int32.max) && n <= Int(Int32.max) && k <= Int(Int32.max) && lda <= Int(Int32.max)
                && ldb <= Int(Int32.max) && ldc <= Int(Int32.max), "sgemm dimensions beyond 32 bits")
        let cols = max(8, (1 << 16) / max(k, 1))
        let pa = UnsafeSendable(a), pb = UnsafeSendable(b), pc = UnsafeSendable(UnsafePointer(c))
        Parallel.forEach((n + cols - 1) / cols) { blk in
            let j0 = blk * cols, j1 = min(n, j0 + cols)
            varlab_sgemm_nt_rows(
                Int32(m), Int32(j0), Int32(j1), Int32(k), pa.p, Int32(lda), pb.p, Int32(ldb), beta,
                UnsafeMutablePointer(mutating: pc.p), Int32(ldc))
        }
    }
}

/// How one product of `rows` x `n` (inner size `k`) is cut into tiles for single-threaded sgemm calls. The cut depends
/// on the shape alone (never on the thread count or on the other samples of a batch), which is what makes results
/// bit-identical across thread counts and batch sizes.
struct GEMMTiling {
    struct Tile { let rows: Range<Int>; let cols: Range<Int> }
    private let tiles: [Tile]
    var count: Int { tiles.count }
    subscript(i: Int) -> Tile { tiles[i] }

    init(rows m: Int, n: Int, k: Int) {
        let flops = Double(m) * Double(n) * Double(k)
        let minRows = 64, minCols = 256
        var blocks = 1
        var byRows = m >= n
        if !(flops < 8e6 || (m < 2 * minRows && n < 2 * minRows)) {
            // At least ~16 M multiply-adds per block: every block re-packs the shared operand (measured: same wall
            // time on 2 threads, less CPU time, for the small products of the toy models' training steps). Column
            // slices narrower than 256 lose 5-20% in OpenBLAS (measured on Zen 2 for 256 tokens x 1024 x 1024).
            blocks = min(16, max(1, byRows ? m / minRows : n / minCols), max(1, Int(flops / 16e6)))
        }
        // Few rows against a large B (a conv with few output channels, or a product the few-rows kernel does not
        // take): column slices of about 512 KB of B, so the slices spread over the threads and stay in cache.
        let slab = 1 << 17
        if m <= 32 && n >= 32 && n * k > 4 * slab {
            byRows = false
            blocks = max(blocks, min(n / 16, (n * k + slab - 1) / slab))
        }
        var t: [Tile] = []
        if byRows {
            let per = (m + blocks - 1) / blocks
            for r0 in stride(from: 0, to: m, by: per) { t.append(Tile(rows: r0..<min(m, r0 + per), cols: 0..<n)) }
        } else {
            let per = (n + blocks - 1) / blocks
            for c0 in stride(from: 0, to: n, by: per) { t.append(Tile(rows: 0..<m, cols: c0..<min(n, c0 + per))) }
        }
        tiles = t
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
    /// "cpu family" / "model" of /proc/cpuinfo ("" when absent).
    public var family = "", model = ""

    public init(modelName: String, flags: Set<String>, family: String = "", model: String = "") {
        self.modelName = modelName; self.flags = flags; self.family = family; self.model = model
    }

    public static let current: CPUInfo = {
        let text = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        var name = "unknown", flags = Set<String>(), family = "", model = ""
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { continue }
            if parts[0] == "model name", name == "unknown" { name = parts[1] }
            if parts[0] == "cpu family", family.isEmpty { family = parts[1] }
            if parts[0] == "model", model.isEmpty { model = parts[1] }
            if parts[0] == "flags", flags.isEmpty { flags = Set(parts[1].split(separator: " ").map(String.init)) }
        }
        return CPUInfo(modelName: name, flags: flags, family: family, model: model)
    }()

    /// The model name with family and model numbers: under a hypervisor the name alone ("AMD EPYC") covers several
    /// generations (Zen 2 is family 23, Zen 5 family 26), which a stored benchmark baseline must not mix up.
    public var identity: String { family.isEmpty ? modelName : "\(modelName) (family \(family) model \(model))" }

    /// The OpenBLAS 0.3.21 kernel this CPU can run best, or nil to leave OpenBLAS's choice alone.
    public var bestOpenBLASCore: String? {
        let avx512 = ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"].allSatisfy(flags.contains)
        if avx512 && flags.contains("avx512_bf16") { return "Cooperlake" }
        if avx512 { return "SkylakeX" }
        if flags.contains("avx2") && flags.contains("fma") { return "Haswell" }
        return nil
    }

    /// The OpenBLAS 0.3.21 x86_64 kernels (OPENBLAS_CORETYPE names) whose instructions this CPU has, oldest first.
    public var runnableOpenBLASCores: [String] {
        var cores: [String] = []
        if flags.contains("pni") || flags.contains("sse3") { cores.append("Prescott") }
        if flags.contains("sse4_2") { cores.append("Nehalem") }
        if flags.contains("avx") { cores.append("Sandybridge") }
        if flags.contains("avx2") && flags.contains("fma") { cores += ["Haswell", "Zen"] }
        let avx512 = ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"].allSatisfy(flags.contains)
        if avx512 { cores.append("SkylakeX") }
        if avx512 && flags.contains("avx512_bf16") { cores.append("Cooperlake") }
        return cores
    }

    public var summary: String {
        let simd = ["avx512f", "avx512_bf16", "amx_tile", "avx2"].filter(flags.contains).joined(separator: ",")
        return "\(identity) [\(simd)]"
    }
}
