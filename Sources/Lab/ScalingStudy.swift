import Foundation
import Generation
import Training
import VAR

/// `varlab lab run scaling`: claim 5 (bigger models are better, with a clean scaling law). Four sizes per family,
/// each trained for the same number of steps on the same data; held-out loss against parameters and against
/// training FLOPs (sgemm FLOPs, counted), with a power-law fit L = a x^b (exponent and R² of the log-log fit), and
/// each model's samples judged like every other row of the lab.
public struct ScalingStudy: Study {
    public let name = "scaling"
    public let budget: Budget
    let models: TrainedModels
    var vae: String { models.vae }
    var judge: LabJudge { models.judge }
    var training: TrainingCells { models.training }

    public var seeds: [UInt64] { budget == .small ? [0] : [0, 1] }
    public var n: Int { models.n }
    var varSteps: Int { Self.varSteps(budget) }
    static func varSteps(_ budget: Budget) -> Int { budget == .small ? 120 : 400 }
    var ditSteps: Int { budget == .small ? 400 : 1200 }
    static let varBatch = 32, ditBatch = 64
    static let varLR: Float = 3e-3, ditLR: Float = 2e-3
    /// Width 32 per block of depth (the official VAR's 64 per block, halved for the toy), one head per 32 channels.
    public static let varSpecs = [(2, 64), (3, 96), (4, 128), (5, 160)].map { VARSpec(.next, depth: $0, width: $1, heads: $1 / 32) }
    public static let ditSpecs = [(2, 64), (3, 96), (4, 128), (5, 160)].map { DiTSpec(depth: $0, hidden: $1, heads: $1 / 32) }

    /// `vae` nil: the built-in toy tokenizer.
    public init(budget: Budget, vae: String? = nil, judge: LabJudge) throws {
        self.budget = budget
        models = try TrainedModels(budget, vae: vae, judge: judge, n: budget == .small ? 200 : 500)
    }

    public func cells() throws -> [Cell] {
        var out = [
            models.realCell, training.tokens(.multiScale, .train), training.tokens(.multiScale, .heldout), training.latents(.train),
            training.latents(.heldout),
        ]
        for seed in seeds {
            for spec in Self.varSpecs {
                let t = training.trainVAR(spec, steps: varSteps, batch: Self.varBatch, lr: Self.varLR, seed: seed)
                out += [t, models.sample(t, family: "var")]
            }
            for spec in Self.ditSpecs {
                let t = training.trainDiT(spec, steps: ditSteps, batch: Self.ditBatch, lr: Self.ditLR, seed: seed)
                out += [t, models.sample(t, family: "dit")]
            }
        }
        return out
    }

    /// Training cost grows with width squared times depth.
    public func relativeCost(_ cell: Cell) -> Double {
        guard cell.kind.hasPrefix("train"), let d = cell.inputs["depth"].flatMap(Double.init),
            let w = (cell.inputs["width"] ?? cell.inputs["hidden"]).flatMap(Double.init)
        else { return 1 }
        return d * w * w / 1e4
    }

    public func run(_ cell: Cell, context: LabContext) throws -> (metrics: [String: Double], outputs: [String: String]) {
        try models.run(cell, study: name, gridSeed: seeds[0], context: context)
    }

    /// One family's points (every trained seed) and its fits against parameters and against training FLOPs.
    struct Family {
        let name: String
        let kind: String
        let sizes: [String]
        let trains: [String: [CellResult]]
        var points: [CellResult] { sizes.flatMap { trains[$0] ?? [] } }
        func values(_ key: String) -> [Double] { points.map { $0.metrics[key] ?? .nan } }
        var lossAgainstParameters: PowerLawFit? { PowerLawFit(x: values("parameters"), y: values("held_out_loss")) }
        var lossAgainstFLOPs: PowerLawFit? { PowerLawFit(x: values("train_flops"), y: values("held_out_loss")) }
    }

    public func report(_ results: [CellResult], pending: [Cell], context: LabContext) throws -> StudyReport {
        let samples = Dictionary(grouping: results.filter { $0.cell.kind == "sample" }, by: { $0.cell.group })
        let families = [
            Family(
                name: "VAR", kind: "train-var", sizes: Self.varSpecs.map(\.name),
                trains: Dictionary(grouping: results.filter { $0.cell.kind == "train-var" }, by: { $0.cell.group })),
            Family(
                name: "DiT", kind: "train-dit", sizes: Self.ditSpecs.map(\.name),
                trains: Dictionary(grouping: results.filter { $0.cell.kind == "train-dit" }, by: { $0.cell.group })),
        ]
        let real = results.first { $0.cell.kind == "real" }?.metrics
        var md = "# Study `scaling`: held-out loss and sample quality against model size and training compute\n\n"
        md += "Four sizes per family (width or hidden size 32 per block of depth, one head per 32 channels), each trained from "
        md +=
            "scratch on the tokenizer `\(vae)`'s encoding of \(training.trainImages) training images of the \(training.data) data: VAR for \(varSteps) steps "
        md += String(
            format: "of %d images (lr %g), DiT for %d steps of %d latents (lr %g, the official uniform loss, no EMA); ", Self.varBatch,
            Double(Self.varLR), ditSteps, Self.ditBatch, Double(Self.ditLR))
        md +=
            "training seeds \(seeds.map(String.init).joined(separator: ", ")). Held-out loss on \(training.heldOutImages) held-out images: "
        md += "VAR's mean token cross-entropy (nats), DiT's epsilon MSE at fixed stratified timesteps and noise. "
        md += "Samples: \(n) per model (VAR cfg 1.5, top-k 10, top-p 0.9; DiT DDIM 25 steps, cfg 4), judged by \(judge.description).\n\n"
        if !pending.isEmpty { md += "**\(pending.count) of \(pending.count + results.count) cells are not finished.**\n\n" }
        md += "## Fits (L = a x^b over every trained model and seed)\n\n"
        md += "| family | against | exponent b | a | R² | points |\n|---|---|---:|---:|---:|---:|\n"
        var fitsJSON: [[String: Any]] = []
        for f in families {
            for (against, fit) in [("parameters", f.lossAgainstParameters), ("training FLOPs", f.lossAgainstFLOPs)] {
                guard let fit else { md += "| \(f.name) | \(against) | - | - | - | \(f.points.count) |\n"; continue }
                md += String(
                    format: "| %@ | %@ | %.4f | %.4g | %.3f | %d |\n", f.name, against, fit.exponent, fit.coefficient, fit.rSquared,
                    fit.points)
                fitsJSON.append([
                    "family": f.name, "against": against, "exponent": fit.exponent, "coefficient": fit.coefficient,
                    "r_squared": fit.rSquared, "points": fit.points,
                ])
            }
        }
        md += "\n" + verdict(families) + "\n\n"
        var plots: [(name: String, plot: Plot)] = []
        for f in families {
            md += "## \(f.name)\n\n"
            md += TrainingTable.markdown(f.sizes.map { ($0, f.trains[$0] ?? []) }) + "\n"
            let rows = f.sizes.compactMap { s in samples[s].map { RowStats(name: s, results: $0) } }
            md += markdownTable(rows, baseline: rows.first, bounds: real.map { [("real held-out images (bounds)", $0)] } ?? []) + "\n"
            if !rows.isEmpty {
                md += "† marks a difference from the smallest model beyond the spread over training seeds (none with one seed).\n\n"
            }
        }
        // One plot per family and axis: the two losses are different quantities on different ranges.
        for f in families where !f.points.isEmpty {
            for (key, label, fit) in [
                ("parameters", "parameters", f.lossAgainstParameters), ("train_flops", "training FLOPs", f.lossAgainstFLOPs),
            ] {
                let x = f.values(key), y = f.values("held_out_loss")
                var p = Plot(
                    title: "\(f.name): held-out loss against \(label)"
                        + (fit.map { String(format: " (power law, R2 %.3f)", $0.rSquared) } ?? ""),
                    xLabel: label,
                    yLabel: f.name == "VAR" ? "held-out loss, nats per token" : "held-out loss, eps MSE")
                p.xScale = .log
                p.yScale = .log
                p.series = [Plot.Series(name: "\(f.name) models", x: x, y: y, mark: .points)]
                if let fit, let lo = x.min(), let hi = x.max() {
                    let xs = (0...8).map { lo * pow(hi / lo, Double($0) / 8) }
                    p.series.append(
                        Plot.Series(
                            name: String(format: "fit, b = %.3f", fit.exponent), x: xs, y: xs.map { fit($0) },
                            mark: .line))
                }
                plots.append(("\(f.name.lowercased())-loss-vs-\(key == "parameters" ? "parameters" : "flops")", p))
            }
        }
        var q = Plot(title: "toy-FID against parameters", xLabel: "parameters", yLabel: "toy-FID")
        q.xScale = .log
        for f in families {
            let pts = f.sizes.compactMap { s -> (Double, RowStats)? in
                guard let rs = samples[s], let pr = f.trains[s]?.first?.metrics["parameters"] else { return nil }
                return (pr, RowStats(name: s, results: rs))
            }
            if !pts.isEmpty {
                q.series.append(
                    Plot.Series(
                        name: f.name, x: pts.map(\.0), y: pts.map { $0.1["toy_fid"].mean }, yError: pts.map { $0.1["toy_fid"].sd },
                        mark: .line))
            }
        }
        if !q.series.isEmpty { plots.append(("fid-vs-parameters", q)) }
        md += "## Plots\n\n" + plots.map { "![\($0.plot.title)](plots/\($0.name).svg)\n\n" }.joined()
        md += "## Samples (seed \(seeds[0]), one row per class)\n\n"
        for f in families {
            for s in f.sizes {
                if let g = samples[s].map({ RowStats(name: s, results: $0) })?.grid { md += "**\(s)**\n\n![\(s)](../\(g))\n\n" }
            }
        }
        var json: [String: Any] = [
            "vae": vae, "judge": judge.classifier, "inception": judge.inception ?? NSNull(), "budget": budget.rawValue, "n": n,
            "fits": fitsJSON,
        ]
        json["models"] = families.flatMap { f in
            f.points.map { r -> [String: Any] in ["family": f.name, "model": r.cell.group, "seed": Int(r.cell.seed), "metrics": r.metrics] }
        }
        json["rows"] = rowsJSON(families.flatMap { f in f.sizes.compactMap { s in samples[s].map { RowStats(name: s, results: $0) } } })
        if let real { json["real"] = real }
        return StudyReport(markdown: md, json: json, plots: plots)
    }

    /// Claim 5 in a sentence per family: does the loss fall with size, and how cleanly.
    func verdict(_ families: [Family]) -> String {
        families.compactMap { f -> String? in
            guard let fit = f.lossAgainstParameters else { return nil }
            let falls = fit.exponent < 0
            return String(
                format: "**Claim 5, %@:** held-out loss %@ with parameters as N^%.3f (R² %.3f over %d models)%@.", f.name,
                falls ? "falls" : "does not fall", fit.exponent, fit.rSquared, fit.points,
                fit.rSquared >= 0.9 ? ", a clean power law at this scale" : ", not a clean power law at this scale")
        }.joined(separator: " ")
    }
}
