import Foundation
import ImageIO

/// One `sample` job: a slice of a sample plan, generated in batches and written to a grid, a folder or an ADM
/// `.npz`. Folder outputs are written batch by batch (an interrupted run keeps what it finished); grids and
/// `.npz` files are assembled in memory and written atomically at the end.
public struct SampleRun {
    public let plan: SamplePlan
    public let range: Range<Int>
    public let output: SampleOutput
    public let outputPath: String
    public let seed: UInt64
    public let batchSize: Int

    /// What a grid or .npz output may hold in memory (16 GB: far more than any FID set of 50k 256x256 images).
    public static let maxInMemoryBytes = 16_000_000_000

    /// `shard` = (k, n): only slice k of n. Checks the destination before any sampling starts.
    public init(plan: SamplePlan, shard: (Int, Int)?, outputPath: String, seed: UInt64, batchSize: Int) throws {
        guard batchSize >= 1 else { throw GenerationError("--batch-size must be >= 1, got \(batchSize)") }
        self.plan = plan
        if let (k, n) = shard {
            guard n >= 1, k >= 0, k < n else { throw GenerationError("--shard must be K/N with 0 <= K < N, got \(k)/\(n)") }
            range = plan.shard(k, of: n)
        } else {
            range = 0..<plan.total
        }
        guard !range.isEmpty else { throw GenerationError("this shard has no samples (\(plan.total) in total)") }
        output = try SampleOutput(path: outputPath)
        self.outputPath = outputPath
        self.seed = seed
        self.batchSize = batchSize
    }

    /// Progress events: a batch starts or a stage inside it starts (`stage`), or a batch is done.
    public enum Event {
        case stage(first: Int, last: Int, progress: SampleProgress)
        case batchDone(first: Int, last: Int)
    }

    /// Generates and writes everything; `names` labels a grid's rows (one per class) when it has several classes.
    public func run(_ generator: SampleGenerator, names: ClassNames, events: (Event) -> Void = { _ in }) throws {
        try plan.validate(numClasses: generator.numClasses)
        try output.prepare()
        // A grid or an .npz is assembled in memory; refuse what could never fit instead of failing hours later.
        let bytes = Double(range.count) * Double(generator.imageSize * generator.imageSize * 3)
        if case .directory = output {
        } else if bytes > Double(SampleRun.maxInMemoryBytes) {
            throw GenerationError(
                "\(range.count) images of \(generator.imageSize)x\(generator.imageSize) need " + String(format: "%.1f", bytes / 1e9)
                    + " GB in memory for -o \(outputPath) (limit \(SampleRun.maxInMemoryBytes / 1_000_000_000) GB): write a folder (-o dir/) or use --shard"
            )
        }
        var images: [Image8] = []
        for b in stride(from: 0, to: range.count, by: batchSize) {
            let first = range.lowerBound + b, last = range.lowerBound + min(range.count, b + batchSize)
            let batch = plan.requests(first..<last)
            let imgs = try generator.generate(batch, seed: seed) { events(.stage(first: first, last: last, progress: $0)) }
            if case .directory(let dir) = output {
                for (r, im) in zip(batch, imgs) {
                    try SampleOutput.writePNG(
                        im,
                        to: (dir as NSString).appendingPathComponent(
                            SampleOutput.fileName(classLabel: r.classLabel, index: r.index, seed: seed)))
                }
            } else {
                images += imgs
            }
            events(.batchDone(first: first, last: last))
        }
        switch output {
        case .grid(let p):
            let labels = plan.requests(range).map(\.classLabel)
            let grid =
                Set(labels).count > 1
                ? try SampleOutput.classGrid(images, labels: labels, names: names)
                : try SampleOutput.grid(images)
            try SampleOutput.writePNG(grid, to: p)
        case .npz(let p): try SampleOutput.writeNPZ(images, labels: plan.requests(range).map(\.classLabel), to: p)
        case .directory: break
        }
    }
}
