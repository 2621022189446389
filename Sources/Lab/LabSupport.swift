import Foundation
import Generation
import ImageIO
import ModelIO
import Training

/// Files named by content in a cell's inputs.
enum LabFiles {
    /// Content hashes for files up to this size; larger ones (official checkpoints) by path, size and modification
    /// time, which is what a user changes when they replace a file.
    static let hashLimit = 256 << 20

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
