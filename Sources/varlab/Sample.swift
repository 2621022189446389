import ArgumentParser
import Foundation
import ImageIO
import Samplers
import Tensor

/// `varlab sample`: class-conditional images from VAR (or DiT) to a grid PNG, a directory of PNGs or an ADM `.npz`.
/// The sample set is an ordered list of (class, index); the randomness of sample `index` is a pure function of
/// (seed, index), so `--shard K/N` produces exactly the slice one machine would produce of the whole set.
struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate class-conditional images (VAR next-scale sampling or DiT diffusion).",
        discussion: """
        Examples:
          varlab sample --model var --class 3 -o out.png      (the built-in toy model in assets/models)
          varlab sample --model var --checkpoint var_d16.pth --vae vae_ch160v4096z32.pth --class 207,88 --n 4 -o out.png
          varlab sample --checkpoint var_d16.pth --vae vae_ch160v4096z32.pth --classes all --per-class 50 --shard 3/8 -o shard3.npz
        Sample order: with --class a,b,... and --n N, sample i has class list[i mod len]; with --classes all, classes
        0..C-1 each --per-class times in class order. Shards are contiguous slices, K counted from 0.
        """)

    @Option(help: "var or dit.") var model: String = "var"
    @Option(help: "Transformer checkpoint (VAR: var_d16.pth / .safetensors; DiT: DiT-XL-2-256x256.pt).") var checkpoint: String?
    @Option(help: "Autoencoder (VAR: vae_ch160v4096z32.pth; DiT: a diffusers AutoencoderKL).") var vae: String?
    @Option(help: "VAR: nested state dict inside the checkpoint, e.g. trainer.var_wo_ddp.") var key: String?
    @Option(name: .customLong("class"), parsing: .unconditional, help: "Comma-separated class ids.") var classList: String?
    @Option(help: "'all' for every class (with --per-class).") var classes: String?
    @Option(help: "Number of images with --class (default: one per listed class).") var n: Int?
    @Option(help: "Images per class with --classes all.") var perClass: Int = 1
    @Option(help: "Classifier-free guidance (VAR ramps it over the scales: t = cfg*si/(S-1)). Default 1.5, or the checkpoint's varlab.sample_cfg.") var cfg: Double?
    @Option(help: "VAR: top-k (0 = off). Default 900, or the checkpoint's varlab.sample_top_k.") var topK: Int?
    @Option(help: "VAR: top-p in [0, 1] (0 = off). Default 0.96, or the checkpoint's varlab.sample_top_p.") var topP: Double?
    @Flag(inversion: .prefixedNo, help: "VAR: Gumbel-softmax smoothing of the next-scale input (official more_smooth). Default off, or the checkpoint's varlab.sample_more_smooth.")
    var moreSmooth: Bool?
    @Option(help: "VAR: logits are divided by this before top-k/top-p.") var temperature: Float = 1
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "VAR: scale schedule, e.g. 1,2,3,4 (default: from the checkpoint's sequence length).") var patchNums: String?
    @Option(help: "Images generated together.") var batchSize: Int = 4
    @Option(help: "Produce only slice K of N (K from 0), e.g. 3/8.") var shard: String?
    @Option(name: .shortAndLong, help: "out.png (grid), dir/ (one PNG per image: class_index_seed.png) or samples.npz (ADM layout).")
    var output: String

    @OptionGroup var dit: DiTSampleOptions
    @OptionGroup var common: CommonOptions

    /// What a grid or .npz output may hold in memory (16 GB: far more than any FID set of 50k 256x256 images).
    static let maxInMemoryBytes = 16_000_000_000

    func validate() throws {
        guard ["var", "dit"].contains(model) else { throw ValidationError("--model must be var or dit, got '\(model)'") }
        if let cfg, !(cfg >= 0 && cfg.isFinite) { throw ValidationError("--cfg must be >= 0, got \(cfg)") }
        if let topK, topK < 0 { throw ValidationError("--top-k must be >= 0, got \(topK)") }
        if let topP, !(topP >= 0 && topP <= 1) { throw ValidationError("--top-p must be in [0, 1], got \(topP)") }
        guard temperature > 0 && temperature.isFinite else { throw ValidationError("--temperature must be > 0, got \(temperature)") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be >= 1, got \(batchSize)") }
        guard perClass >= 1 else { throw ValidationError("--per-class must be >= 1, got \(perClass)") }
        if let n, n < 1 { throw ValidationError("--n must be >= 1, got \(n)") }
        guard (classList == nil) != (classes == nil) else { throw ValidationError("give exactly one of --class a,b,... or --classes all") }
        if let classes, classes != "all" { throw ValidationError("--classes only accepts 'all', got '\(classes)'") }
        _ = try parsedClassList()
        _ = try parsedShard()
        _ = try parsedPatchNums()
        _ = try SampleOutput(path: output)
    }

    func parsedClassList() throws -> [Int]? {
        guard let classList else { return nil }
        let parts = classList.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let ids = parts.compactMap { Int($0) }
        guard !parts.isEmpty, ids.count == parts.count else { throw ValidationError("--class must be comma-separated integers, got '\(classList)'") }
        return ids
    }

    func parsedShard() throws -> (Int, Int)? {
        guard let shard else { return nil }
        let p = shard.split(separator: "/").compactMap { Int($0) }
        guard p.count == 2, p[1] >= 1, p[0] >= 0, p[0] < p[1] else {
            throw ValidationError("--shard must be K/N with 0 <= K < N, got '\(shard)'")
        }
        return (p[0], p[1])
    }

    func parsedPatchNums() throws -> [Int]? {
        guard let patchNums else { return nil }
        let parts = patchNums.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let v = parts.compactMap { Int($0) }
        guard v.count == parts.count, v.count >= 2, v.allSatisfy({ $0 >= 1 }), zip(v, v.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw ValidationError("--patch-nums must be at least two strictly increasing positive integers, got '\(patchNums)'")
        }
        return v
    }

    func resolvedCheckpoint() throws -> String { try BuiltinModels.resolve(family: model, checkpoint: checkpoint, vae: vae).checkpoint }

    func makeGenerator() throws -> SampleGenerator {
        let files = try BuiltinModels.resolve(family: model, checkpoint: checkpoint, vae: vae)
        if files.builtin { note("no --checkpoint / --vae: using the built-in toy \(model) model \(files.checkpoint) with \(files.vae)") }
        if model == "dit" {
            return try dit.makeGenerator(checkpoint: files.checkpoint, vae: files.vae, cfg: cfg.map { Float($0) })
        }
        let (checkpoint, vae) = (files.checkpoint, files.vae)
        // Unset flags take the checkpoint's recommended settings (varlab-trained files), else the official FID settings.
        let d = VARSampleDefaults(path: checkpoint)
        let opts = TokenSamplingOptions(topK: topK ?? d.topK ?? 900, topP: topP ?? d.topP ?? 0.96, temperature: temperature,
                                        moreSmooth: moreSmooth ?? d.moreSmooth ?? false)
        let guidance = cfg ?? d.cfg ?? 1.5
        if let g = try VARVariantGenerator.loadIfVariant(checkpoint: checkpoint, vae: vae, cfg: guidance, options: opts) { return g }
        return try VARGenerator.load(checkpoint: checkpoint, vae: vae, key: key, patchNums: try parsedPatchNums(),
                                     cfg: guidance, options: opts)
    }

    /// The ordered sample set (lazy: see `SamplePlan`).
    func plan(numClasses: Int) throws -> SamplePlan {
        if let list = try parsedClassList() {
            for c in list where c < 0 || c >= numClasses {
                throw ValidationError("--class \(c) is outside 0..\(numClasses - 1) (the checkpoint has \(numClasses) classes)")
            }
            return try SamplePlan(classes: .list(list), count: n)
        }
        return try SamplePlan(classes: .all(classes: numClasses, perClass: perClass), count: nil)
    }

    /// Every request of the set, in order (for callers that take it whole, such as the quality bench).
    func requests(numClasses: Int) throws -> [SampleRequest] {
        let p = try plan(numClasses: numClasses)
        return p.requests(0..<p.total)
    }

    func run() throws {
        try common.apply()
        let out = try SampleOutput(path: output)
        try out.prepare()
        let generator = try makeGenerator()
        let plan = try self.plan(numClasses: generator.numClasses)
        var range = 0..<plan.total
        if let (k, nShards) = try parsedShard() {
            range = plan.shard(k, of: nShards)
            note("shard \(k)/\(nShards): samples \(range.lowerBound)..<\(range.upperBound) of \(plan.total)")
        }
        guard !range.isEmpty else { throw ValidationError("this shard has no samples (\(plan.total) in total)") }
        // A grid or an .npz is assembled in memory; refuse what could never fit instead of failing hours later.
        let bytes = Double(range.count) * Double(generator.imageSize * generator.imageSize * 3)
        if case .directory = out {} else if bytes > Double(Sample.maxInMemoryBytes) {
            throw ValidationError("\(range.count) images of \(generator.imageSize)x\(generator.imageSize) need " + String(format: "%.1f", bytes / 1e9)
                                  + " GB in memory for -o \(output) (limit \(Sample.maxInMemoryBytes / 1_000_000_000) GB): write a folder (-o dir/) or use --shard")
        }
        let count = range.count
        note("\(generator.family): \(count) images of \(generator.imageSize)x\(generator.imageSize), batch \(batchSize), seed \(seed), threads \(Parallel.threads)")
        var images: [Image8] = []
        let start = Date()
        var done = 0
        for b in stride(from: 0, to: count, by: batchSize) {
            let batch = plan.requests((range.lowerBound + b)..<(range.lowerBound + min(count, b + batchSize)))
            // Progress on stderr, at most about one line a second: each line names the stage that just FINISHED
            // with its own time (a tick arrives when the next stage starts), then the batch's total.
            var lastTick = Date(), lastLabel: String?, lastPrint = Date.distantPast
            let batchStart = Date()
            let imgs = try generator.generate(batch, seed: seed) { p in
                let now = Date()
                defer { lastTick = now; lastLabel = p.label }
                guard let finished = lastLabel, now.timeIntervalSince(lastPrint) >= 1 else { return }
                lastPrint = now
                let fraction = (Double(done) + Double(batch.count) * Double(p.stage) / Double(max(p.stages, 1))) / Double(count)
                let elapsed = now.timeIntervalSince(start)
                let eta = fraction > 0 ? String(format: "%.0fs", elapsed / fraction * (1 - fraction)) : "?"
                note(String(format: "image %d-%d/%d  %@ took %.2f s  ETA %@", b + 1, b + batch.count, count, finished,
                            now.timeIntervalSince(lastTick), eta))
            }
            let elapsed = Date().timeIntervalSince(start)
            let left = Double(count - done - batch.count) * elapsed / Double(done + batch.count)
            note(String(format: "image %d-%d/%d  done in %.2f s (last stage %@ %.2f s)  %.2f images/s  ETA %.0fs", b + 1, b + batch.count, count,
                        Date().timeIntervalSince(batchStart), lastLabel ?? "-", Date().timeIntervalSince(lastTick),
                        Double(done + batch.count) / elapsed, left))
            done += batch.count
            if case .directory(let dir) = out {
                for (r, im) in zip(batch, imgs) {
                    try SampleOutput.writePNG(im, to: (dir as NSString).appendingPathComponent(
                        SampleOutput.fileName(classLabel: r.classLabel, index: r.index, seed: seed)))
                }
            } else {
                images += imgs
            }
        }
        let secs = Date().timeIntervalSince(start)
        switch out {
        case .grid(let p):
            let labels = plan.requests(range).map(\.classLabel)
            let grid = Set(labels).count > 1
                ? try SampleOutput.classGrid(images, labels: labels, names: ClassNames(checkpoint: try resolvedCheckpoint()))
                : try SampleOutput.grid(images)
            try SampleOutput.writePNG(grid, to: p)
        case .npz(let p): try SampleOutput.writeNPZ(images, labels: plan.requests(range).map(\.classLabel), to: p)
        case .directory: break
        }
        note(String(format: "wrote %@ (%d images in %.1fs, %.3f s/image)", output, count, secs, secs / Double(count)))
    }
}
