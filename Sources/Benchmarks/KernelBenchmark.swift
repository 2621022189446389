import Foundation
import Samplers
import Tensor

/// Micro-benchmarks of the kernels the models spend their time in, at the shapes the official models use: each
/// kernel runs after a warm-up, `repeats` times, and gives median, median absolute deviation (MAD) and minimum.
/// Against a stored baseline of the same CPU model, a kernel is a regression when its median is more than
/// `tolerance` slower and either the gap exceeds three times the two runs' MADs added (so noise is not called a
/// regression) or even its fastest run is more than `tolerance` slower than the baseline's fastest (a busy machine
/// makes runs slower, never faster, so a slow minimum is not noise however wide the spread).
public enum KernelBenchmark {
    public struct Kernel {
        public let name: String
        /// FLOPs of one run (0: not a FLOP-bound kernel; GFLOP/s is then not shown).
        public let flops: Double
        /// Builds the inputs and returns the timed work (so kernels left out by `only` allocate nothing).
        public let prepare: () -> () -> Void
    }

    /// Seconds per run over the repeats.
    public struct Stats: Codable, Sendable, Equatable {
        public var median: Double
        public var mad: Double
        public var min: Double
        public var runs: Int

        public init(_ seconds: [Double]) {
            let s = seconds.sorted()
            func med(_ v: [Double]) -> Double {
                v.isEmpty ? .nan : v.count % 2 == 1 ? v[v.count / 2] : (v[v.count / 2 - 1] + v[v.count / 2]) / 2
            }
            median = med(s)
            let m = median
            mad = med(s.map { abs($0 - m) }.sorted())
            min = s.first ?? .nan
            runs = s.count
        }
    }

    /// A stored result: the CPU it was measured on and each kernel's statistics.
    public struct Baseline: Codable, Sendable {
        public var cpu: String
        public var date: String
        public var threads: Int
        public var kernels: [String: Stats]
    }

    public struct Row: Sendable {
        public let name: String
        public let stats: Stats
        public let gflops: Double?
        /// Median against the baseline's (nil: no baseline for this kernel).
        public let ratio: Double?
        public let regression: Bool
    }

    static func random(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = PhiloxRandom(seed: seed)
        return Tensor.randn(shape, rng: &rng)
    }

    /// The kernels: the GEMMs of a VAR-d16 block at its last scale (with CFG: 2 x 256 tokens, width 1024) and of a
    /// DiT-XL/2 MLP (and the bf16 product where the CPU has it), the VQ-VAE decoder's 3x3 convolution, VAR's last-scale attention, LayerNorm, GroupNorm and
    /// top-k / top-p masking over VAR's 4096-code vocabulary.
    public static func kernels() -> [Kernel] {
        var out: [Kernel] = []
        func gemm(_ name: String, m: Int, k: Int, n: Int) {
            out.append(
                Kernel(name: name, flops: 2 * Double(m) * Double(k) * Double(n)) {
                    let a = random([m, k], seed: 1), b = random([k, n], seed: 2)
                    return { _ = a.matmul(b) }
                })
        }
        gemm("gemm VAR-d16 qkv (512x1024x3072)", m: 512, k: 1024, n: 3072)
        gemm("gemm VAR-d16 fc2 (512x4096x1024)", m: 512, k: 4096, n: 1024)
        gemm("gemm DiT-XL fc1 (512x1152x4608)", m: 512, k: 1152, n: 4608)
        gemm("gemm one token (2x1024x4096)", m: 2, k: 1024, n: 4096)
        // The opt-in bf16 product (`--bf16`) at the fc2 shape, on CPUs with AVX512-BF16.
        if MatmulPrecision.bfloat16Available {
            let (m, k, n) = (512, 4096, 1024)
            out.append(
                Kernel(name: "gemm bf16 VAR-d16 fc2 (512x4096x1024)", flops: 2 * Double(m) * Double(k) * Double(n)) {
                    let w = random([n, k], seed: 2)
                    let linear = Linear(weight: w, bias: nil, bf16: BFloat16Weights(w))
                    let x = random([m, k], seed: 1)
                    return { _ = linear(x) }
                })
        }
        // A 3x3 convolution, c -> c channels at size x size, by the default route or forced to im2col + sgemm.
        func conv(_ name: String, channels c: Int, size: Int, seed: UInt64, im2col: Bool = false) {
            out.append(
                Kernel(name: name, flops: 2 * Double(c * c * 9 * size * size)) {
                    let x = random([1, c, size, size], seed: seed)
                    let conv = Conv2d(
                        weight: random([c, c, 3, 3], seed: seed + 1), bias: random([c], seed: seed + 2), stride: 1, padding: 1)
                    return {
                        let saved = Conv2d.algorithm
                        if im2col { Conv2d.algorithm = .im2col }
                        defer { Conv2d.algorithm = saved }
                        _ = conv(x)
                    }
                })
        }
        conv("conv3x3 128->128 at 64x64", channels: 128, size: 64, seed: 3)
        // The VQ-VAE decoder's (VAR-d16's, ch 160) last stage: the largest convolution of VAR's generation.
        conv("conv3x3 160->160 at 256x256", channels: 160, size: 256, seed: 16)
        // The same 64 x 64 convolution by im2col + sgemm, the route Winograd replaced: the ratio of the two is its gain.
        conv("conv3x3 128->128 at 64x64 im2col", channels: 128, size: 64, seed: 3, im2col: true)
        // VAR-d16's last scale: 16 heads of 64, 256 queries against the 680 keys of every scale, CFG pair.
        out.append(
            Kernel(name: "attention VAR-d16 last scale (2x16x256x680x64)", flops: 2 * 2 * 2 * 16 * 256 * 680 * 64) {
                let q = random([2, 16, 256, 64], seed: 6), k = random([2, 16, 680, 64], seed: 7), v = random([2, 16, 680, 64], seed: 8)
                return { _ = scaledDotProductAttention(q: q, k: k, v: v, scale: 0.125) }
            })
        out.append(
            Kernel(name: "layernorm 512x1024", flops: 0) {
                let rows = random([512, 1024], seed: 9)
                let ln = LayerNorm(eps: 1e-6, weight: random([1024], seed: 10), bias: random([1024], seed: 11))
                return { _ = ln(rows) }
            })
        out.append(
            Kernel(name: "groupnorm 128x128x128 (32 groups)", flops: 0) {
                let img = random([1, 128, 128, 128], seed: 12)
                let gn = GroupNorm(groups: 32, eps: 1e-6, weight: random([128], seed: 13), bias: random([128], seed: 14))
                return { _ = gn(img) }
            })
        out.append(
            Kernel(name: "top-k 900 / top-p 0.96 masking, 256 rows of 4096", flops: 0) {
                let logits = random([256, 4096], seed: 15)
                return {
                    var l = logits.data
                    l.withUnsafeMutableBufferPointer { p in
                        for r in 0..<256 { TokenSampling.mask(p.baseAddress! + r * 4096, count: 4096, topK: 900, topP: 0.96) }
                    }
                }
            })
        return out
    }

    /// Times every kernel whose name contains `only` (all when nil), compared against `baseline` when given.
    public static func run(
        repeats: Int, only: String? = nil, baseline: Baseline? = nil, tolerance: Double = 0.10, progress: (String) -> Void = { _ in }
    ) -> [Row] {
        kernels().filter { only == nil || $0.name.contains(only!) }.map { kernel in
            progress(kernel.name)
            let work = kernel.prepare()
            work()  // warm-up: caches, page faults, thread pool
            var seconds: [Double] = []
            for _ in 0..<max(1, repeats) {
                let t0 = DispatchTime.now().uptimeNanoseconds
                work()
                seconds.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
            let stats = Stats(seconds)
            let base = baseline?.kernels[kernel.name]
            let ratio = base.map { stats.median / $0.median }
            let regression = base.map { isRegression(stats, against: $0, tolerance: tolerance) } ?? false
            return Row(
                name: kernel.name, stats: stats, gflops: kernel.flops > 0 ? kernel.flops / stats.median / 1e9 : nil, ratio: ratio,
                regression: regression)
        }
    }

    /// Median slower than the baseline's by more than `tolerance`, and either by more than three MADs of the two runs
    /// together or with the fastest run also more than `tolerance` slower than the baseline's fastest.
    public static func isRegression(_ s: Stats, against b: Stats, tolerance: Double) -> Bool {
        let slowerThanNoise = s.median - b.median > 3 * (s.mad + b.mad)
        let slowerAtBest = s.min > b.min * (1 + tolerance)
        return s.median > b.median * (1 + tolerance) && (slowerThanNoise || slowerAtBest)
    }

    public static func baseline(_ rows: [Row]) -> Baseline {
        Baseline(
            cpu: CPUInfo.current.identity, date: ISO8601DateFormatter().string(from: Date()), threads: Parallel.threads,
            kernels: Dictionary(rows.map { ($0.name, $0.stats) }, uniquingKeysWith: { a, _ in a }))
    }
}
