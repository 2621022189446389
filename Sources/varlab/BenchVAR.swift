import ArgumentParser
import Autoencoders
import Foundation
import ModelIO
import Samplers
import Tensor
import VAR

/// `varlab bench var`: random weights in the exact official shapes (VAR-d{depth} + the ch160/z32/v4096 VQ-VAE),
/// so it runs without downloads. Times a full 256x256 generation with CFG (official settings: cfg 1.5, top-k 900,
/// top-p 0.96) at each batch size, split into the transformer loop (10 scales, KV cache, token sampling) and the
/// VQ-VAE decode, with achieved GFLOP/s from an analytic FLOP count (multiply-adds x 2).
struct BenchVAR: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "var",
        abstract: "VAR seconds per 256x256 image (transformer / VAE decode split, GFLOP/s) with random official-shape weights.")

    @Option(help: "VAR depth (16, 20, 24, 30; 36 uses shared AdaLN as released).") var depth: Int = 16
    @Option(help: "Comma-separated batch sizes (images; the CFG batch is twice that).") var batches: String = "1,8"
    @Option(help: "Timed runs per batch size (after one warm-up run at batch 1).") var repeats: Int = 1
    @Flag(help: "One set of block weights for all blocks (same arithmetic, a fraction of the memory).") var shareBlocks = false
    @Flag(help: "Also print wall time per op kind (matmul, conv, im2col, attention, norms, elementwise, sampling, interpolation) for the last run of each batch size.")
    var profile = false
    @OptionGroup var common: CommonOptions

    func run() throws {
        let report = try common.apply()
        guard depth >= 1 && depth <= 64 else { throw ValidationError("--depth must be in 1...64, got \(depth)") }
        guard repeats >= 1 else { throw ValidationError("--repeats must be >= 1") }
        let bs = batches.split(separator: ",").compactMap { Int($0) }
        guard !bs.isEmpty && bs.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--batches must be positive integers, got '\(batches)'") }
        print(report)
        print("threads: \(Parallel.threads)")
        print(String(format: "load average at start: %.1f", Self.loadAverage()))
        let vc = VARConfig.official(depth: depth)
        let t0 = Date()
        let model = try VARModel(archive: RandomArchive(shapes: RandomArchive.varShapes(vc), shareBlocks: shareBlocks))
        let vae = try VQVAE(archive: RandomArchive(shapes: RandomArchive.vqvaeShapes(.official), shareBlocks: false),
                            patchNums: vc.patchNums)
        print(String(format: "VAR-d%d: width %d, %d heads, %d blocks%@; VQ-VAE ch160 z32 v4096; patch nums %@ (built in %.1fs)",
                     depth, vc.width, vc.heads, vc.depth, shareBlocks ? " (shared weights)" : "",
                     vc.patchNums.map(String.init).joined(separator: ","), Date().timeIntervalSince(t0)))
        let sampler = try NextScaleSampler(model: model, vae: vae, cfg: 1.5, options: TokenSamplingOptions())
        let tflop = Self.transformerFLOPs(vc) / 1e9, dflop = Self.decoderFLOPs(.official, latent: vc.patchNums.last!) / 1e9
        print(String(format: "analytic GFLOP per image: transformer (CFG pair) %.1f, VAE decode %.1f", tflop, dflop))
        _ = try sampler.sample(labels: [1], seed: 0, decode: false)   // warm-up (page in weights, BLAS buffers)
        // Wall-clock seconds, plus process CPU seconds (on a shared machine the CPU time divided by the thread
        // count is what an otherwise idle machine would take).
        print("batch   transformer s/img  GFLOP/s   decode s/img  GFLOP/s   total s/img   (CPU s/img: transformer, decode)")
        for b in bs {
            var tT = 0.0, tD = 0.0, cT = 0.0, cD = 0.0
            var profiles: [String] = []
            for r in 0..<repeats {
                let labels = (0..<b).map { ($0 * 97 + r) % vc.numClasses }
                let last = profile && r == repeats - 1
                if last { Profiler.start() }
                let s0 = Date(), c0 = Self.cpuSeconds()
                let res = try sampler.sample(labels: labels, sampleIndices: Array(0..<b), seed: UInt64(r), decode: false)
                let s1 = Date(), c1 = Self.cpuSeconds()
                if last { profiles.append("transformer phase, batch \(b):\n" + Profiler.table(Profiler.stop(), wall: s1.timeIntervalSince(s0))); Profiler.start() }
                let d1 = Date()
                _ = vae.decode(fhat: res.fhat)
                let s2 = Date(), c2 = Self.cpuSeconds()
                if last { profiles.append("VQ-VAE decode, batch \(b):\n" + Profiler.table(Profiler.stop(), wall: s2.timeIntervalSince(d1))) }
                tT += s1.timeIntervalSince(s0); tD += s2.timeIntervalSince(s1)
                cT += c1 - c0; cD += c2 - c1
            }
            let n = Double(b * repeats)
            print(String(format: "%-7d %-18.3f %-9.1f %-13.3f %-9.1f %-13.3f (%.2f, %.2f)", b, tT / n, tflop * n / tT, tD / n, dflop * n / tD,
                         (tT + tD) / n, cT / n, cD / n))
            for p in profiles { print(p) }
            fflush(stdout)
        }
    }

    static func loadAverage() -> Double {
        var l = [Double](repeating: 0, count: 3)
        return getloadavg(&l, 3) > 0 ? l[0] : .nan
    }

    static func cpuSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Multiply-add FLOPs (x2) of one image's next-scale loop with CFG (2 rows per image).
    static func transformerFLOPs(_ c: VARConfig) -> Double {
        let w = Double(c.width), rows = 2.0
        var f = 0.0, seen = 0.0
        for pn in c.patchNums {
            let l = Double(pn * pn)
            seen += l
            let linear = 2 * rows * l * (3 * w * w + w * w + 2 * w * Double(c.mlpHidden))
            let attn = 2 * 2 * rows * l * seen * w
            f += Double(c.depth) * (linear + attn) + 2 * rows * l * w * Double(c.vocabSize) + 2 * rows * l * Double(c.cvae) * w
        }
        return f
    }

    /// Conv + attention FLOPs of post_quant_conv + decoder for one image.
    static func decoderFLOPs(_ c: VQVAEConfig, latent: Int) -> Double {
        func conv(_ cin: Int, _ cout: Int, _ k: Int, _ hw: Int) -> Double { 2 * Double(cin * cout * k * k) * Double(hw * hw) }
        func res(_ cin: Int, _ cout: Int, _ hw: Int) -> Double { conv(cin, cout, 3, hw) + conv(cout, cout, 3, hw) + (cin != cout ? conv(cin, cout, 1, hw) : 0) }
        func attn(_ ch: Int, _ hw: Int) -> Double { let n = Double(hw * hw); return 4 * 2 * Double(ch * ch) * n + 2 * 2 * n * n * Double(ch) }
        var hw = latent
        var blockIn = c.ch * c.chMult.last!
        var f = conv(c.zChannels, c.zChannels, 3, hw) + conv(c.zChannels, blockIn, 3, hw)
        f += 2 * res(blockIn, blockIn, hw) + (c.midAttn ? attn(blockIn, hw) : 0)
        for l in stride(from: c.chMult.count - 1, through: 0, by: -1) {
            let out = c.ch * c.chMult[l]
            for _ in 0...c.numResBlocks {
                f += res(blockIn, out, hw); blockIn = out
                if l == c.chMult.count - 1 && c.attnAtLowest { f += attn(out, hw) }
            }
            if l != 0 { hw *= 2; f += conv(blockIn, blockIn, 3, hw) }
        }
        return f + conv(blockIn, c.inChannels, 3, hw)
    }
}

/// A state dict of random tensors in given shapes, generated on demand (weights ~ N(0, 1/fan_in)-like uniform,
/// norms' weights 1), so benchmarks build the real models without files. With `shareBlocks`, every
/// `blocks.N.` tensor is the same array (copy-on-write storage is shared, so memory is one block's worth).
final class RandomArchive: TensorArchive {
    let path = "<random weights>"
    let keys: [String]
    private let shapes: [String: [Int]]
    private let shareBlocks: Bool
    private var cache: [String: Tensor] = [:]

    init(shapes list: [(String, [Int])], shareBlocks: Bool) {
        keys = list.map(\.0)
        shapes = Dictionary(list, uniquingKeysWith: { a, _ in a })
        self.shareBlocks = shareBlocks
    }

    func info(_ key: String) -> TensorInfo? {
        shapes[key].map { TensorInfo(dtype: key.hasSuffix("lvl_1L") ? .i64 : .f32, shape: $0) }
    }

    func floatTensor(_ key: String) throws -> Tensor {
        guard let shape = shapes[key] else { throw CheckpointError.missingKey(path: path, key: key, available: keys.count) }
        var cacheKey = key
        if shareBlocks, key.hasPrefix("blocks."), let dot = key.dropFirst(7).firstIndex(of: ".") {
            cacheKey = "blocks.*" + key[dot...]
            if let t = cache[cacheKey] { return t }
        }
        let n = shape.reduce(1, *)
        let t: Tensor
        if key.hasSuffix("norm1.weight") || key.hasSuffix("norm2.weight") || key.hasSuffix("norm.weight") || key.hasSuffix("norm_out.weight") {
            t = Tensor(repeating: 1, shape: shape)
        } else if key.hasSuffix("scale_mul_1H11") {
            t = Tensor(repeating: logf(4), shape: shape)
        } else {
            let fanIn = shape.count >= 2 ? shape.dropFirst().reduce(1, *) : 1
            let bound = key.hasSuffix(".bias") ? 0.01 : Float(3.0 / Double(max(fanIn, 1))).squareRoot()
            var state: UInt64 = 0x9E37_79B9_7F4A_7C15 &* UInt64(truncatingIfNeeded: key.utf8.reduce(5381) { ($0 << 5) &+ $0 &+ Int($1) })
            var d = [Float](repeating: 0, count: n)
            for i in 0..<n {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                d[i] = (Float(state >> 40) * 0x1p-24 * 2 - 1) * bound
            }
            t = Tensor(shape: shape, data: d)
        }
        if shareBlocks && cacheKey != key { cache[cacheKey] = t }
        return t
    }

    func intTensor(_ key: String) throws -> (shape: [Int], values: [Int64]) {
        let t = try floatTensor(key)
        return (t.shape, t.data.map { Int64($0) })
    }

    /// Official VAR state-dict names and shapes.
    static func varShapes(_ c: VARConfig) -> [(String, [Int])] {
        let w = c.width, L = c.totalTokens
        var s: [(String, [Int])] = [("pos_start", [1, c.firstL, w]), ("pos_1LC", [1, L, w]), ("lvl_1L", [1, L]),
                                    ("word_embed.weight", [w, c.cvae]), ("word_embed.bias", [w]),
                                    ("class_emb.weight", [c.numClasses + 1, w]), ("lvl_embed.weight", [c.patchNums.count, w])]
        if c.sharedAdaLN { s += [("shared_ada_lin.1.weight", [6 * w, w]), ("shared_ada_lin.1.bias", [6 * w])] }
        for i in 0..<c.depth {
            let p = "blocks.\(i)."
            if c.sharedAdaLN { s.append((p + "ada_gss", [1, 1, 6, w])) }
            s += [(p + "attn.scale_mul_1H11", [1, c.heads, 1, 1]), (p + "attn.q_bias", [w]), (p + "attn.v_bias", [w]),
                  (p + "attn.mat_qkv.weight", [3 * w, w]), (p + "attn.proj.weight", [w, w]), (p + "attn.proj.bias", [w]),
                  (p + "ffn.fc1.weight", [c.mlpHidden, w]), (p + "ffn.fc1.bias", [c.mlpHidden]),
                  (p + "ffn.fc2.weight", [w, c.mlpHidden]), (p + "ffn.fc2.bias", [w])]
            if !c.sharedAdaLN { s += [(p + "ada_lin.1.weight", [6 * w, w]), (p + "ada_lin.1.bias", [6 * w])] }
        }
        s += [("head_nm.ada_lin.1.weight", [2 * w, w]), ("head_nm.ada_lin.1.bias", [2 * w]),
              ("head.weight", [c.vocabSize, w]), ("head.bias", [c.vocabSize])]
        return s
    }

    /// Official VQVAE state-dict names and shapes (taming encoder/decoder + quantiser).
    static func vqvaeShapes(_ c: VQVAEConfig) -> [(String, [Int])] {
        var s: [(String, [Int])] = []
        func conv(_ n: String, _ cin: Int, _ cout: Int, _ k: Int = 3) { s += [(n + ".weight", [cout, cin, k, k]), (n + ".bias", [cout])] }
        func norm(_ n: String, _ ch: Int) { s += [(n + ".weight", [ch]), (n + ".bias", [ch])] }
        func res(_ p: String, _ cin: Int, _ cout: Int) {
            norm(p + "norm1", cin); conv(p + "conv1", cin, cout); norm(p + "norm2", cout); conv(p + "conv2", cout, cout)
            if cin != cout { conv(p + "nin_shortcut", cin, cout, 1) }
        }
        func attn(_ p: String, _ ch: Int) { norm(p + "norm", ch); conv(p + "qkv", ch, 3 * ch, 1); conv(p + "proj_out", ch, ch, 1) }
        let levels = c.chMult.count
        conv("encoder.conv_in", c.inChannels, c.ch)
        var blockIn = c.ch
        let inMult = [1] + c.chMult
        for l in 0..<levels {
            blockIn = c.ch * inMult[l]
            let out = c.ch * c.chMult[l]
            for b in 0..<c.numResBlocks {
                res("encoder.down.\(l).block.\(b).", blockIn, out); blockIn = out
                if l == levels - 1 && c.attnAtLowest { attn("encoder.down.\(l).attn.\(b).", out) }
            }
            if l != levels - 1 { conv("encoder.down.\(l).downsample.conv", blockIn, blockIn) }
        }
        res("encoder.mid.block_1.", blockIn, blockIn); attn("encoder.mid.attn_1.", blockIn); res("encoder.mid.block_2.", blockIn, blockIn)
        norm("encoder.norm_out", blockIn); conv("encoder.conv_out", blockIn, c.zChannels)
        blockIn = c.ch * c.chMult.last!
        conv("decoder.conv_in", c.zChannels, blockIn)
        res("decoder.mid.block_1.", blockIn, blockIn); attn("decoder.mid.attn_1.", blockIn); res("decoder.mid.block_2.", blockIn, blockIn)
        for l in stride(from: levels - 1, through: 0, by: -1) {
            let out = c.ch * c.chMult[l]
            for b in 0...c.numResBlocks {
                res("decoder.up.\(l).block.\(b).", blockIn, out); blockIn = out
                if l == levels - 1 && c.attnAtLowest { attn("decoder.up.\(l).attn.\(b).", out) }
            }
            if l != 0 { conv("decoder.up.\(l).upsample.conv", blockIn, blockIn) }
        }
        norm("decoder.norm_out", blockIn); conv("decoder.conv_out", blockIn, c.inChannels)
        for k in 0..<4 { conv("quantize.quant_resi.qresi_ls.\(k)", c.zChannels, c.zChannels) }
        s.append(("quantize.embedding.weight", [c.vocabSize, c.zChannels]))
        conv("quant_conv", c.zChannels, c.zChannels); conv("post_quant_conv", c.zChannels, c.zChannels)
        return s
    }
}
