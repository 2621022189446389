import ArgumentParser
import Foundation
import Generation
import Samplers
import Tensor

/// `varlab sample`: class-conditional images from VAR (or DiT) to a grid PNG, a directory of PNGs or an ADM `.npz`.
/// Flags become a `GenerationSettings` and a `SampleRun` (Generation); this command only parses and prints.
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

    @Option(help: "var or dit (default: the family --checkpoint holds, else var).") var model: String?
    @Option(help: "Transformer checkpoint (VAR: var_d16.pth / .safetensors; DiT: DiT-XL-2-256x256.pt).") var checkpoint: String?
    @Option(help: "Autoencoder (VAR: vae_ch160v4096z32.pth; DiT: a diffusers AutoencoderKL).") var vae: String?
    @Option(help: "VAR: nested state dict inside the checkpoint, e.g. trainer.var_wo_ddp.") var key: String?
    @Option(name: .customLong("class"), parsing: .unconditional, help: "Comma-separated class ids.") var classList: String?
    @Option(help: "'all' for every class (with --per-class).") var classes: String?
    @Option(help: "Number of images with --class (default: one per listed class).") var n: Int?
    @Option(help: "Images per class with --classes all.") var perClass: Int = 1
    @Option(
        help:
            "Classifier-free guidance (VAR ramps it over the scales: t = cfg*si/(S-1)). Default 1.5, or the checkpoint's varlab.sample_cfg."
    ) var cfg: Double?
    @Option(help: "VAR: top-k (0 = off). Default 900, or the checkpoint's varlab.sample_top_k.") var topK: Int?
    @Option(help: "VAR: top-p in [0, 1] (0 = off). Default 0.96, or the checkpoint's varlab.sample_top_p.") var topP: Double?
    @Flag(
        inversion: .prefixedNo,
        help:
            "VAR: Gumbel-softmax smoothing of the next-scale input (official more_smooth). Default off, or the checkpoint's varlab.sample_more_smooth."
    )
    var moreSmooth: Bool?
    @Option(help: "VAR: logits are divided by this before top-k/top-p.") var temperature: Float = 1
    @Option(
        help: "VAR: guidance over the scales, linear (official: 0 at the first scale, cfg at the last) or constant (cfg at every scale).")
    var cfgSchedule: GuidanceSchedule?
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(
        help:
            "Classifier rejection sampling: draw this many candidates per image and keep the one --scorer finds most like the asked class (1 = off)."
    )
    var candidates: Int = 1
    @Option(help: "Toy classifier that scores the candidates (default: the built-in toy classifier).") var scorer: String?
    @Option(help: "VAR: scale schedule, e.g. 1,2,3,4 (default: from the checkpoint's sequence length).") var patchNums: String?
    @Option(help: "Images generated together.") var batchSize: Int = 4
    @Option(help: "Produce only slice K of N (K from 0), e.g. 3/8.") var shard: String?
    @Option(name: .shortAndLong, help: "out.png (grid), dir/ (one PNG per image: class_index_seed.png) or samples.npz (ADM layout).")
    var output: String

    @OptionGroup var fast: FastOptions
    @OptionGroup var precision: PrecisionOptions
    @OptionGroup var dit: DiTSampleOptions
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard perClass >= 1 else { throw ValidationError("--per-class must be >= 1, got \(perClass)") }
        if let n, n < 1 { throw ValidationError("--n must be >= 1, got \(n)") }
        guard (classList == nil) != (classes == nil) else { throw ValidationError("give exactly one of --class a,b,... or --classes all") }
        if let classes, classes != "all" { throw ValidationError("--classes only accepts 'all', got '\(classes)'") }
        _ = try parsedClassList()
        _ = try parsedShard()
        do {
            try settings().validate()
            _ = try SampleOutput(path: output)
        } catch let e as GenerationError { throw ValidationError(e.description) }
    }

    func parsedClassList() throws -> [Int]? {
        guard let classList else { return nil }
        let parts = classList.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let ids = parts.compactMap { Int($0) }
        guard !parts.isEmpty, ids.count == parts.count else {
            throw ValidationError("--class must be comma-separated integers, got '\(classList)'")
        }
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

    /// --model, else the family the checkpoint's keys show, else VAR.
    var family: String {
        if let model { return model }
        if let checkpoint, let f = ModelFamilies.detect(checkpoint: checkpoint) { return f.name }
        return VARFamily.name
    }

    /// The library request these flags describe.
    func settings() throws -> GenerationSettings {
        var s = GenerationSettings(family: family)
        s.checkpoint = checkpoint; s.vae = vae; s.key = key
        s.patchNums = try parsedPatchNums()
        s.cfg = cfg
        s.tokens = TokenSamplingOverrides(
            topK: topK, topP: topP, temperature: temperature, moreSmooth: moreSmooth, guidanceSchedule: cfgSchedule)
        s.pruning = try fast.pruning()
        s.precision = precision.precision()
        s.dit = dit.settings
        s.candidates = candidates
        s.scorer = scorer
        return s
    }

    func plan(numClasses: Int) throws -> SamplePlan {
        if let list = try parsedClassList() { return try SamplePlan(classes: .list(list), count: n) }
        return try SamplePlan(classes: .all(classes: numClasses, perClass: perClass), count: nil)
    }

    func run() throws {
        try common.apply()
        let settings = try self.settings()
        _ = try SampleOutput(path: output).prepare()
        let generator = try settings.makeGenerator(log: note)
        let job = try SampleRun(
            plan: try plan(numClasses: generator.numClasses), shard: try parsedShard(), outputPath: output,
            seed: seed, batchSize: batchSize)
        if let (k, nShards) = try parsedShard() {
            note("shard \(k)/\(nShards): samples \(job.range.lowerBound)..<\(job.range.upperBound) of \(job.plan.total)")
        }
        let count = job.range.count
        note(
            "\(generator.family): \(count) images of \(generator.imageSize)x\(generator.imageSize), batch \(batchSize), seed \(seed), threads \(Parallel.threads)"
        )
        let start = Date()
        var progress = SampleProgressPrinter(count: count, offset: job.range.lowerBound, start: start)
        try job.run(generator, names: ClassNames(checkpoint: try settings.files().checkpoint)) { progress.handle($0) }
        let secs = Date().timeIntervalSince(start)
        note(String(format: "wrote %@ (%d images in %.1fs, %.3f s/image)", output, count, secs, secs / Double(count)))
    }
}

/// Progress lines on stderr, at most about one a second: each names the stage that just FINISHED with its own
/// time (a stage event arrives when the next stage starts), then each batch's total with throughput and ETA.
struct SampleProgressPrinter {
    let count: Int, offset: Int, start: Date
    var done = 0
    var lastTick = Date(), lastLabel: String?, lastPrint = Date.distantPast, batchStart = Date()

    init(count: Int, offset: Int, start: Date) { self.count = count; self.offset = offset; self.start = start }

    mutating func handle(_ event: SampleRun.Event) {
        let now = Date()
        switch event {
        case let .stage(first, last, p):
            defer { lastTick = now; lastLabel = p.label }
            guard let finished = lastLabel, now.timeIntervalSince(lastPrint) >= 1 else { return }
            lastPrint = now
            let fraction = (Double(done) + Double(last - first) * Double(p.stage) / Double(max(p.stages, 1))) / Double(count)
            let elapsed = now.timeIntervalSince(start)
            let eta = fraction > 0 ? String(format: "%.0fs", elapsed / fraction * (1 - fraction)) : "?"
            note(
                String(
                    format: "image %d-%d/%d  %@ took %.2f s  ETA %@", first - offset + 1, last - offset, count, finished,
                    now.timeIntervalSince(lastTick), eta))
        case let .batchDone(first, last):
            let n = last - first
            let elapsed = now.timeIntervalSince(start)
            let left = Double(count - done - n) * elapsed / Double(done + n)
            note(
                String(
                    format: "image %d-%d/%d  done in %.2f s (last stage %@ %.2f s)  %.2f images/s  ETA %.0fs", first - offset + 1,
                    last - offset, count, now.timeIntervalSince(batchStart), lastLabel ?? "-", now.timeIntervalSince(lastTick),
                    Double(done + n) / elapsed, left))
            done += n
            lastLabel = nil; lastPrint = .distantPast; batchStart = now; lastTick = now
        }
    }
}

extension GuidanceSchedule: ExpressibleByArgument {}
