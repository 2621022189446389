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
    @Flag(
        help:
            "Also decode the held-out set from its first k token maps, k = 1 ... S, and print the per-class accuracy of each prefix (at which scale each class becomes recognisable)."
    )
    var scalePrefixes = false
    @OptionGroup var fast: FastOptions
    @OptionGroup var precision: PrecisionOptions
    @OptionGroup var common: CommonOptions

    func run() throws {
        let kernel = try common.apply()
        print(kernel)
        print("threads: \(Parallel.threads)")
        let matmul = precision.precision()
        let families = models.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        for f in families where (try? ModelFamilies.named(f)) == nil {
            throw ValidationError("--models: unknown family '\(f)' (\(ModelFamilies.names.joined(separator: ", ")))")
        }
        let quality = try ToyQuality(
            n: n, dataSeed: dataSeed,
            classifier: try BuiltinModels.path(BuiltinModels.classifier, instead: "(no override: the bench measures the built-in models)"))
        let toy = quality.toy
        var rows: [ToyQuality.Row] = []
        func report(_ r: ToyQuality.Row) {
            rows.append(r)
            print(String(format: "%-34@ accuracy %.4f   toy-FID %8.3f   %.1fs", r.name as NSString, r.accuracy, r.toyFID, r.seconds))
            // The classes below 90% and what the classifier saw instead: where a model falls short.
            for c in r.perClass where c.accuracy < 0.9 {
                let instead = c.mistakes.sorted { ($0.value, -$0.key) > ($1.value, -$1.key) }.prefix(3)
                    .map { "\(className($0.key)) \($0.value)" }.joined(separator: ", ")
                print(
                    String(
                        format: "    class %d %-18@ %.2f  (seen as: %@)", c.label, className(c.label) as NSString,
                        c.accuracy, instead as NSString))
            }
            fflush(stdout)  // each model's row as soon as it is measured, also into a file or pipe
        }
        report(try quality.row("real held-out (disjoint set)", images: quality.setB, labels: quality.labelsB, seconds: 0))
        // The tokenizer's ceiling: the same real images through the built-in VQ-VAE (encode, quantise, decode).
        let (reconRow, recon, colourError) = try quality.reconstructions(try loadBuiltinVQVAE(), batchSize: batchSize)
        report(reconRow)
        print(
            String(
                format: "    mean-colour error of the reconstructions (levels of 255): R %.2f  G %.2f  B %.2f",
                colourError[0], colourError[1], colourError[2]))
        let prefixRows = scalePrefixes ? try quality.scalePrefixRows(try loadBuiltinVQVAE(), batchSize: batchSize) : []
        if scalePrefixes { reportScalePrefixes(prefixRows) }
        if let grids {
            try FileManager.default.createDirectory(atPath: grids, withIntermediateDirectories: true)
            // Two rows of real held-out images, each followed by its reconstructions.
            let originals = Array(quality.setB.prefix(20))
            var rows: [(label: String, images: [Image8])] = []
            for r in 0..<2 {
                rows.append(("real", Array(originals[(r * 10)..<(r * 10 + 10)])))
                rows.append(("VQ-VAE", Array(recon[(r * 10)..<(r * 10 + 10)])))
            }
            try SampleOutput.writePNG(
                try CaptionedLayout.rows(rows),
                to: (grids as NSString).appendingPathComponent("vqvae-reconstructions.png"))
        }
        var json: [String: Any] = [
            "n": n, "seed": seed, "data_seed": dataSeed, "classifier": toy.path, "cfg": cfg.map { "\($0)" } ?? "default",
            "vqvae_mean_colour_error_rgb": colourError, "fast_var_drop_ratios": try fast.pruning()?.dropRatios ?? [],
            "matmul_precision": matmul.rawValue,
        ]
        for family in families {
            // The `sample` command's defaults for the built-in model: class i mod C, index i.
            var settings = GenerationSettings(family: family)
            settings.cfg = cfg
            if family == VARFamily.name { settings.pruning = try fast.pruning() }
            settings.precision = matmul
            let variant = [settings.pruning == nil ? nil : "--fast", matmul == .bfloat16 ? "--bf16" : nil].compactMap { $0 }
            let (row, images) = try quality.samples(
                "\(family) (built-in, \(variant.isEmpty ? "default settings" : variant.joined(separator: " ")))",
                generator: try settings.makeGenerator(),
                seed: seed, batchSize: batchSize
            ) {
                FileHandle.standardError.write("\r\(family): \($0)/\(n) samples".data(using: .utf8)!)
            }
            FileHandle.standardError.write("\n".data(using: .utf8)!)
            report(row)
            if let grids {
                try FileManager.default.createDirectory(atPath: grids, withIntermediateDirectories: true)
                // Sample i has class i mod 10, so samples 10r ..< 10r+10 hold one of each class: transpose to one row per class.
                let perClass = min(10, n / 10)
                let rows = (0..<10).map { c in ("\(c) \(className(c))", (0..<perClass).map { images[$0 * 10 + c] }) }
                try SampleOutput.writePNG(
                    try CaptionedLayout.rows(rows), to: (grids as NSString).appendingPathComponent("\(family)-grid.png"))
            }
        }
        if scalePrefixes {
            json["scale_prefixes"] = prefixRows.map {
                ["name": $0.name, "accuracy": $0.accuracy, "toy_fid": $0.toyFID, "per_class_accuracy": $0.perClass.map(\.accuracy)]
                    as [String: Any]
            }
        }
        for r in rows {
            json[r.name] = [
                "accuracy": r.accuracy, "toy_fid": r.toyFID, "seconds": r.seconds,
                "per_class_accuracy": r.perClass.map(\.accuracy),
            ]
        }
        if let path = self.json {
            try AtomicFile.write(try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]), to: path)
        }
    }

    /// One line per prefix: overall accuracy and toy-FID, then every class's accuracy (a table of scales x classes).
    func reportScalePrefixes(_ rows: [ToyQuality.Row]) {
        let classes = rows.first?.perClass.count ?? 0
        print("    per-class accuracy of the reconstructions from the first scales only:")
        print(
            "    " + "".padding(toLength: 30, withPad: " ", startingAt: 0) + "  acc   toy-FID "
                + (0..<classes).map { "\($0):\(className($0).prefix(4))".padding(toLength: 7, withPad: " ", startingAt: 0) }.joined())
        for r in rows {
            print(
                "    " + r.name.padding(toLength: 30, withPad: " ", startingAt: 0)
                    + String(format: " %.3f %8.2f  ", r.accuracy, r.toyFID)
                    + r.perClass.map { String(format: "%-7.2f", $0.accuracy) }.joined())
        }
        fflush(stdout)
    }

    func className(_ k: Int) -> String { ToyDataset.classNames.indices.contains(k) ? ToyDataset.classNames[k] : String(k) }

    func loadBuiltinVQVAE() throws -> VQVAE {
        try VQLatentCodec.loadVQVAE(path: try BuiltinModels.path(BuiltinModels.vqvae, instead: "VARLAB_ASSETS"))
    }
}
