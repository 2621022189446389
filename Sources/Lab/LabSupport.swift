import Foundation
import Generation
import ImageIO
import Metrics
import ModelIO
import Samplers
import Training

/// Files named by content in a cell's inputs.
enum LabFiles {
    /// Content hashes for files up to this size; larger ones (official checkpoints) by path, size and modification
    /// time, which is what a user changes when they replace a file.
    static let hashLimit = 256 << 20

    /// An image folder by its files: relative paths, sizes and modification times of everything in its class
    /// folders (decoding every image to hash pixels would cost more than the cells it keys).
    static func folderStamp(_ root: String) throws -> String {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: root, isDirectory: &isDir), isDir.boolValue, let walker = fm.enumerator(atPath: root) else {
            throw LabError("--data imagefolder:\(root): not a readable folder")
        }
        var lines: [String] = []
        for case let rel as String in walker {
            let attrs = try? fm.attributesOfItem(atPath: (root as NSString).appendingPathComponent(rel))
            guard attrs?[.type] as? FileAttributeType == .typeRegular else { continue }
            let size = (attrs?[.size] as? NSNumber)?.intValue ?? 0
            let mtime = (attrs?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            lines.append("\(rel)|\(size)|\(Int(mtime))")
        }
        return SHA256.hex(lines.sorted().joined(separator: "\n"))
    }

    /// A data set in a cell's inputs: nothing for the toy data (so toy cells keep their hashes), the folder's path
    /// and stamp for an image folder.
    static func inputs(_ data: DataSpec) throws -> [String: String] {
        guard case .imageFolder(let root) = data else { return [:] }
        return ["data": "imagefolder:" + URL(fileURLWithPath: root).standardized.path, "data_stamp": try folderStamp(root)]
    }

    static func sha256(_ path: String) throws -> String {
        let attrs: [FileAttributeKey: Any]
        do { attrs = try FileManager.default.attributesOfItem(atPath: path) } catch {
            throw LabError("\(path): cannot read (\(error.localizedDescription))")
        }
        let size = (attrs[.size] as? NSNumber)?.intValue ?? 0
        if size > hashLimit {
            let mtime = (attrs[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            return "file:\(path):\(size):\(Int(mtime))"
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw LabError("\(path): cannot read") }
        return SHA256.hash([UInt8](data)).map { String(format: "%02x", $0) }.joined()
    }
}

/// Sample sets as the lab draws them (`ToyQuality.draw`: sample i of class i mod C with index i), judged and
/// shown as a grid.
enum LabSampling {
    static let batchSize = 50

    /// A cell's quality row: n samples of `g` judged by `judge`, and (with `grid`) a sample grid in the cell's folder.
    static func judgedRow(
        _ g: SampleGenerator, judge: ToyQuality, cell: Cell, grid: Bool, context: LabContext
    ) throws -> (metrics: [String: Double], outputs: [String: String]) {
        let classes = judge.toy.classifier.config.classes
        let (images, labels, secs) = try judge.draw(g, seed: cell.seed, batchSize: batchSize)
        var outputs: [String: String] = [:]
        if grid {
            let folder = try context.outputFolder(cell)
            try writeGrid(images, classes: classes, to: (folder.absolute as NSString).appendingPathComponent("grid.png"))
            outputs["grid"] = folder.relative + "/grid.png"
        }
        return (try judge.measures(images: images, labels: labels, secondsPerImage: secs / Double(judge.n)), outputs)
    }

    /// One row per class with its name, up to 8 images each.
    static func writeGrid(_ images: [Image8], classes: Int, to path: String) throws {
        let rows = (0..<classes).map { c -> (label: String, images: [Image8]) in
            let name = ToyDataset.classNames.indices.contains(c) ? ToyDataset.classNames[c] : "\(c)"
            return ("\(c) \(name)", Array(stride(from: c, to: images.count, by: classes).prefix(8).map { images[$0] }))
        }.filter { !$0.images.isEmpty }
        try SampleOutput.writePNG(try CaptionedLayout.rows(rows), to: path)
    }
}

/// Training cells: the library trainers with the lab's settings (the toy data's default split and seed).
enum LabTraining {
    /// A toy classifier; returns its held-out accuracy on 1,000 images.
    static func classifier(steps: Int, seed: UInt64, grayProbability: Float, output: String, log: (String) -> Void) throws -> Double {
        let config = ToyClassifierConfig()
        var opts = TrainOptions.classifier
        opts.steps = steps
        opts.seed = seed
        opts.saveEvery = steps
        let trainer = try ClassifierTrainer(config: config, options: opts)
        trainer.checkpointPath = output
        trainer.grayProbability = grayProbability
        let source = ToySource(dataset: ToyDataset(seed: 0, split: .train, size: config.imageSize), count: 100_000)
        try trainer.run(source: source) { p in
            if p.step % 100 == 0 || p.step == p.totalSteps {
                log("  classifier step \(p.step)/\(p.totalSteps), loss \(String(format: "%.3f", p.loss))")
            }
        }
        let held = ToySource(dataset: ToyDataset(seed: 0, split: .heldout, size: config.imageSize), count: 1000)
        return ClassifierTrainer.accuracy(trainer.model, source: held, n: 1000)
    }
}

/// Sampling settings of the models the lab trains (they carry no recommended settings of their own): the built-in
/// VAR's top-k / top-p with guidance 1.5, and DDIM 25 steps with guidance 4 for DiT. Recorded in each sample cell.
enum TrainedSampling {
    static func inputs(family: String) -> [String: String] {
        family == "dit"
            ? ["family": "dit", "sampler": "ddim", "steps": "25", "cfg": "4.0"]
            : ["family": "var", "cfg": "1.5", "top_k": "10", "top_p": "0.9", "more_smooth": "false"]
    }

    /// A sample cell for the model a training cell writes (its sampling seed is the training seed).
    static func cell(of train: Cell, family: String, base: [String: String]) -> Cell {
        var i = base.merging(inputs(family: family)) { $1 }
        i["model_cell"] = train.hash
        return Cell(kind: "sample", group: train.group, seed: train.seed, inputs: i, needs: [train.hash])
    }

    /// Runs such a cell: the trained checkpoint with the tokenizer `vae`, judged by `judge`.
    static func run(
        _ cell: Cell, vae: String, judge: ToyQuality, grid: Bool, context: LabContext
    ) throws -> (
        metrics: [String: Double], outputs: [String: String]
    ) {
        let i = cell.inputs
        guard let model = i["model_cell"], let rel = context.results[model]?.outputs["checkpoint"] else {
            throw LabError("sample cell \(cell.group) (seed \(cell.seed)) needs its training cell first")
        }
        var s = GenerationSettings(family: i["family"] == "dit" ? DiTFamily.name : VARFamily.name)
        s.checkpoint = context.absolute(rel)
        s.vae = vae
        s.cfg = i["cfg"].flatMap(Double.init)
        if i["family"] == "dit" {
            s.dit.sampler = i["sampler"]
            s.dit.steps = i["steps"].flatMap(Int.init)
        } else {
            s.tokens = TokenSamplingOverrides(
                topK: i["top_k"].flatMap(Int.init), topP: i["top_p"].flatMap(Double.init), moreSmooth: i["more_smooth"] == "true")
        }
        return try LabSampling.judgedRow(try s.makeGenerator(), judge: judge, cell: cell, grid: grid, context: context)
    }
}

/// The training side of a report: per model, parameters, steps, training FLOPs, time and held-out loss over seeds.
enum TrainingTable {
    static let keys: [(key: String, name: String)] = [
        ("parameters", "parameters"), ("steps", "steps"), ("train_flops", "training GFLOP"), ("train_seconds", "training s"),
        ("held_out_loss", "held-out loss"),
    ]

    static func spread(_ results: [CellResult], _ key: String) -> Spread {
        Spread(results.compactMap { $0.metrics[key] }.map { key == "train_flops" ? $0 / 1e9 : $0 })
    }

    static func markdown(_ groups: [(name: String, results: [CellResult])]) -> String {
        var md = "| model | " + keys.map(\.name).joined(separator: " | ") + " | seeds |\n"
        md += "|---|" + keys.map { _ in "---:" }.joined(separator: "|") + "|---:|\n"
        for (name, rs) in groups where !rs.isEmpty {
            let cells = keys.map { key, _ -> String in
                let s = spread(rs, key)
                switch key {
                case "held_out_loss": return s.formatted(digits: 4)
                case "parameters", "steps", "train_flops": return String(format: "%.0f", s.mean)
                default: return s.formatted(digits: 0)
                }
            }
            md += "| \(name) | " + cells.joined(separator: " | ") + " | \(rs.count) |\n"
        }
        return md
    }
}

/// Who judges every quality row: the toy classifier (toy-FID, precision / recall, density / coverage, top-1,
/// within-class diversity) and, with `--inception`, the FID InceptionV3 as well (Inception FID). Its `inputs` go
/// into every judged cell, so another judge is another result; without Inception they are what they always were.
public struct LabJudge: Sendable {
    public let classifier: String
    public let inception: String?
    /// The real images rows are judged against: the toy held-out split, or an image folder's held-out part.
    public let data: DataSpec
    public let inputs: [String: String]

    /// `classifier` nil: the built-in toy classifier (toy data only: an image folder needs a classifier trained on
    /// it).
    public init(classifier: String? = nil, inception: String? = nil, data: DataSpec = .toy) throws {
        if classifier == nil, case .imageFolder = data {
            throw LabError(
                "--data \(data) needs --judge: a classifier trained on that folder (varlab train classifier --data \(data) --hold-out -o judge.safetensors)"
            )
        }
        self.classifier = try classifier ?? BuiltinModels.path(BuiltinModels.classifier, instead: "--judge")
        self.inception = inception
        self.data = data
        var i = ["judge_sha256": try LabFiles.sha256(self.classifier)].merging(try LabFiles.inputs(data)) { $1 }
        if let inception { i["inception_sha256"] = try LabFiles.sha256(inception) }
        inputs = i
    }

    /// The yardstick for `n` samples against the data's held-out images: made once per process and judge, so its
    /// reference features (and the Inception reference statistics) are not recomputed for every cell.
    public func quality(n: Int) throws -> ToyQuality {
        let key = inputs.keys.sorted().map { "\($0)=\(inputs[$0]!)" }.joined(separator: "|") + "|n=\(n)"
        Self.lock.lock()
        defer { Self.lock.unlock() }
        if let q = Self.made[key] { return q }
        let q = try make(n: n)
        Self.made[key] = q
        return q
    }
    nonisolated(unsafe) private static var made: [String: ToyQuality] = [:]
    private static let lock = NSLock()

    func make(n: Int) throws -> ToyQuality {
        let toy = try ToyEvaluation(path: classifier)
        let real = try data.heldOutSource(count: 2 * n, dataSeed: 0, size: toy.classifier.config.imageSize)
        let q: ToyQuality
        do { q = try ToyQuality(n: n, real: real, classifier: toy) } catch { throw LabError("--judge \(classifier): \(error)") }
        if let inception {
            let net: InceptionV3
            do { net = try InceptionV3(path: inception) } catch { throw LabError("--inception \(inception): \(error)") }
            q.inception = InceptionFeatureNetwork(net, preprocessing: .tf)
        }
        return q
    }

    /// "`toy.safetensors`", or "`toy.safetensors` and the FID InceptionV3 `pt_inception.pth`" for reports.
    public var description: String { "`\(classifier)`" + (inception.map { " and the FID InceptionV3 `\($0)`" } ?? "") }
}
