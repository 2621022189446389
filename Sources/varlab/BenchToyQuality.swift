import ArgumentParser
import Autoencoders
import Foundation
import Generation
import ImageIO
import Metrics
import ModelIO
import Tensor
import Training

/// `varlab bench toy-quality`: the quality bar of the built-in models (README "Built-in models"), measured the same
/// way every time: N samples per model at the `sample` command's default settings (class i mod 10, index i),
/// the toy classifier's accuracy on them, and toy-FID against N held-out real toy images, next to the toy-FID of a
/// second, disjoint real set (the floor: what a perfect generator would get with N samples).
struct BenchToyQuality: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "toy-quality",
        abstract: "Toy classifier accuracy and toy-FID of the built-in VAR and DiT models (and the real-vs-real floor).")

    @Option(help: "Samples per model (and real images per reference set).") var n: Int = 1000
    @Option(help: "Comma-separated families to measure.") var models: String = "var,dit"
    @Option(help: "Sampling seed.") var seed: UInt64 = 0
    @Option(help: "Images generated together.") var batchSize: Int = 50
    @Option(help: "Toy data seed (held-out split).") var dataSeed: UInt64 = 0
    @Option(help: "Guidance scale instead of each model's recorded default (for tuning the value a model ships with).") var cfg: Double?
    @Option(help: "Write a grid per model here (one row per class, 10 per row): <dir>/<family>-grid.png.") var grids: String?
    @Option(help: "Write the results as JSON (atomically).") var json: String?
    @OptionGroup var common: CommonOptions

    func run() throws {
        let kernel = try common.apply()
        print(kernel)
        print("threads: \(Parallel.threads)")
        guard n >= 20 else { throw ValidationError("--n must be at least 20 (toy-FID needs a covariance)") }
        let families = models.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        for f in families where (try? ModelFamilies.named(f)) == nil {
            throw ValidationError("--models: unknown family '\(f)' (\(ModelFamilies.names.joined(separator: ", ")))")
        }
        let toy = try ToyEvaluation(path: try BuiltinModels.path(BuiltinModels.classifier, instead: "(no override: the bench measures the built-in models)"))
        let held = ToyDataset(seed: dataSeed, split: .heldout, size: toy.classifier.config.imageSize)
        // Reference A = held-out 0..<n; the floor set B = held-out n..<2n (disjoint from A by index).
        let refA = try toy.features((0..<n).map { held.image($0) })
        let setB = try toy.features((n..<(2 * n)).map { held.image($0) })
        let labelsB = (n..<(2 * n)).map { held.label($0) }
        var rows: [(String, Double, Double, Double, [Accuracy.ClassCount])] = []   // name, accuracy, toy-FID, seconds, per class
        func measure(_ name: String, _ f: (features: Tensor, logits: Tensor), _ labels: [Int], _ secs: Double) throws {
            let r = try toy.report(samples: f, labels: labels, reference: refA.features, metrics: [.acc, .fid], explicit: true)
            let acc = r.values.first { $0.name == "toy classifier accuracy" }!.value
            let fid = r.values.first { $0.name == "toy-FID" }!.value
            rows.append((name, acc, fid, secs, r.perClass))
            print(String(format: "%-34@ accuracy %.4f   toy-FID %8.3f   %.1fs", name as NSString, acc, fid, secs))
            // The classes below 90% and what the classifier saw instead: where a model falls short.
            for c in r.perClass where c.accuracy < 0.9 {
                let instead = c.mistakes.sorted { ($0.value, -$0.key) > ($1.value, -$1.key) }.prefix(3)
                    .map { "\(className($0.key)) \($0.value)" }.joined(separator: ", ")
                print(String(format: "    class %d %-18@ %.2f  (seen as: %@)", c.label, className(c.label) as NSString,
                             c.accuracy, instead as NSString))
            }
        }
        try measure("real held-out (disjoint set)", setB, labelsB, 0)
        // The tokenizer's ceiling: the same real images through the built-in VQ-VAE (encode, quantise, decode).
        let t0 = Date()
        let vae = try loadBuiltinVQVAE()
        var recon: [Image8] = []
        for b in stride(from: n, to: 2 * n, by: batchSize) {
            let x = Tensor.cat((b..<min(2 * n, b + batchSize)).map { held.image($0).signedCHW() }, dim: 0)
            let y = vae.decode(tokens: try vae.tokens(images: x))
            recon += (0..<y.shape[0]).map { Image8(signedCHW: y.slice0($0, $0 + 1)) }
        }
        try measure("VQ-VAE reconstructions of that set", try toy.features(recon), labelsB, Date().timeIntervalSince(t0))
        // Colour kept by the tokenizer: per channel, |mean colour of original - of reconstruction| in 8-bit levels.
        let colourError = try ColourFidelity.meanColourError(originals: (n..<(2 * n)).map { held.image($0) }, reconstructions: recon)
        print(String(format: "    mean-colour error of the reconstructions (levels of 255): R %.2f  G %.2f  B %.2f",
                     colourError[0], colourError[1], colourError[2]))
        if let grids {
            try FileManager.default.createDirectory(atPath: grids, withIntermediateDirectories: true)
            // Two rows of real held-out images, each followed by its reconstructions.
            let originals = (n..<(n + 20)).map { held.image($0) }
            var rows: [(label: String, images: [Image8])] = []
            for r in 0..<2 {
                rows.append(("real", Array(originals[(r * 10)..<(r * 10 + 10)])))
                rows.append(("VQ-VAE", Array(recon[(r * 10)..<(r * 10 + 10)])))
            }
            try SampleOutput.writePNG(try CaptionedLayout.rows(rows),
                                      to: (grids as NSString).appendingPathComponent("vqvae-reconstructions.png"))
        }
        var json: [String: Any] = ["n": n, "seed": seed, "data_seed": dataSeed, "classifier": toy.path, "cfg": cfg.map { "\($0)" } ?? "default",
                                   "vqvae_mean_colour_error_rgb": colourError]
        for family in families {
            // The `sample` command's defaults for the built-in model: class i mod C, index i.
            var settings = GenerationSettings(family: family)
            settings.cfg = cfg
            let generator = try settings.makeGenerator()
            let plan = try SamplePlan(classes: .list(Array(0..<toy.classifier.config.classes)), count: n)
            try plan.validate(numClasses: generator.numClasses)
            let requests = plan.requests(0..<plan.total)
            let t0 = Date()
            var images: [Image8] = []
            for b in stride(from: 0, to: requests.count, by: batchSize) {
                images += try generator.generate(Array(requests[b..<min(requests.count, b + batchSize)]), seed: seed) { _ in }
                FileHandle.standardError.write("\r\(family): \(images.count)/\(requests.count) samples".data(using: .utf8)!)
            }
            FileHandle.standardError.write("\n".data(using: .utf8)!)
            let secs = Date().timeIntervalSince(t0)
            try measure("\(family) (built-in, default settings)", try toy.features(images), requests.map(\.classLabel), secs)
            if let grids {
                try FileManager.default.createDirectory(atPath: grids, withIntermediateDirectories: true)
                // Sample i has class i mod 10, so samples 10r ..< 10r+10 hold one of each class: transpose to one row per class.
                let perClass = min(10, n / 10)
                let rows = (0..<10).map { c in ("\(c) \(className(c))", (0..<perClass).map { images[$0 * 10 + c] }) }
                try SampleOutput.writePNG(try CaptionedLayout.rows(rows), to: (grids as NSString).appendingPathComponent("\(family)-grid.png"))
            }
        }
        for r in rows {
            json[r.0] = ["accuracy": r.1, "toy_fid": r.2, "seconds": r.3,
                         "per_class_accuracy": r.4.map(\.accuracy)]
        }
        if let path = self.json {
            try AtomicFile.write(try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]), to: path)
        }
    }

    func className(_ k: Int) -> String { ToyDataset.classNames.indices.contains(k) ? ToyDataset.classNames[k] : String(k) }

    func loadBuiltinVQVAE() throws -> VQVAE {
        try VQLatentCodec.loadVQVAE(path: try BuiltinModels.path(BuiltinModels.vqvae, instead: "VARLAB_ASSETS"))
    }
}
