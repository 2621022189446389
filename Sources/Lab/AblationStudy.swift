import Foundation
import Generation
import Training
import VAR

/// `varlab lab run ablations`: which parts of VAR matter, trained from scratch under one compute budget (claims 1
/// and 2, and depth at equal compute): next-scale VAR, raster-order AR on the finest scale's tokens of the same
/// codebook, VAR without AdaLN (plain LayerNorm, the class as a start token only), and VAR at two more depths. Every
/// model gets the training FLOPs (sgemm FLOPs, counted) of the base VAR's `baseSteps` steps, so a cheaper model
/// trains for more steps; each is trained with three seeds, then sampled with that seed and judged.
public struct AblationStudy: Study {
    public let name = "ablations"
    public let budget: Budget
    let models: TrainedModels
    var vae: String { models.vae }
    var judge: LabJudge { models.judge }
    var training: TrainingCells { models.training }

    public var seeds: [UInt64] { [0, 1, 2] }
    public var n: Int { models.n }
    /// The scaling study's VAR steps, batch and learning rate: the base model's cells are shared with it.
    var baseSteps: Int { ScalingStudy.varSteps(budget) }
    static let batch = ScalingStudy.varBatch
    static let lr = ScalingStudy.varLR
    public static let base = VARSpec(.next, depth: 3, width: 96, heads: 3)
    /// The models, the base first (the report's reference row).
    public static let specs: [VARSpec] = [
        base, VARSpec(.ar, depth: 3, width: 96, heads: 3), VARSpec(.plainLN, depth: 3, width: 96, heads: 3),
        VARSpec(.next, depth: 2, width: 96, heads: 3), VARSpec(.next, depth: 4, width: 96, heads: 3),
    ]

    /// `vae` nil: the built-in toy tokenizer.
    public init(budget: Budget, vae: String? = nil, judge: LabJudge) throws {
        self.budget = budget
        models = try TrainedModels(budget, vae: vae, judge: judge, n: budget == .small ? 200 : 500)
    }

    func trainCell(_ spec: VARSpec, seed: UInt64) -> Cell {
        training.trainVAR(
            spec, steps: baseSteps, matching: spec == Self.base ? nil : Self.base, batch: Self.batch, lr: Self.lr, seed: seed)
    }

    public func cells() throws -> [Cell] {
        var out = [models.realCell]
        for kind in [VARTokenSet.Kind.multiScale, .finestOnly] {
            out += [training.tokens(kind, .train), training.tokens(kind, .heldout)]
        }
        for spec in Self.specs {
            for seed in seeds {
                let t = trainCell(spec, seed: seed)
                out += [t, models.sample(t, family: "var")]
            }
        }
        return out
    }

    public func relativeCost(_ cell: Cell) -> Double {
        switch cell.kind {
        case "train-var": return 10
        case "encode-tokens": return Double(cell.inputs["n"].flatMap(Int.init) ?? 1000) / 1000
        default: return 1
        }
    }

    public func run(_ cell: Cell, context: LabContext) throws -> (metrics: [String: Double], outputs: [String: String]) {
        try models.run(cell, study: name, gridSeed: seeds[0], context: context)
    }

    public func report(_ results: [CellResult], pending: [Cell], context: LabContext) throws -> StudyReport {
        let names = Self.specs.map(\.name)
        let samples = Dictionary(grouping: results.filter { $0.cell.kind == "sample" }, by: { $0.cell.group })
        let trains = Dictionary(grouping: results.filter { $0.cell.kind == "train-var" }, by: { $0.cell.group })
        let rows = names.compactMap { n in samples[n].map { RowStats(name: n, results: $0) } }
        let baseline = rows.first { $0.name == Self.base.name }
        let real = results.first { $0.cell.kind == "real" }?.metrics
        var md = "# Study `ablations`: which parts of VAR matter, at equal training compute\n\n"
        md +=
            "Every model is trained from scratch on the tokens of `\(vae)` (\(training.trainImages) training images of the \(training.data) data) "
        md += String(
            format:
                "with the sgemm FLOPs of the base model (%@) trained for %d steps of %d images (lr %g, AdamW, warmup and cosine decay); ",
            Self.base.name, baseSteps, Self.batch, Double(Self.lr))
        md += "a cheaper model trains for more steps. Seeds \(seeds.map(String.init).joined(separator: ", ")): a seed sets the "
        md += "initialisation, batch order and class dropout, and samples its model with the same seed. Samples: \(n) per model "
        md += "(class i mod 10), cfg 1.5, top-k 10, top-p 0.9; judged by \(judge.description).\n\n"
        if !pending.isEmpty { md += "**\(pending.count) of \(pending.count + results.count) cells are not finished.**\n\n" }
        md += "## Training\n\n"
        md += TrainingTable.markdown(names.map { ($0, trains[$0] ?? []) }) + "\n"
        md += "Held-out loss: mean token cross-entropy (nats) on \(training.heldOutImages) held-out images with their true classes. "
        md += "Raster AR predicts the 64 finest-only tokens of one quantisation step, a different target from the next-scale "
        md += "models' 155 residual tokens, so its loss is not comparable with theirs; the quality table is.\n\n"
        md += "## Samples\n\n"
        md += "Mean ± standard deviation over the training seeds; † marks a difference from \(Self.base.name) beyond the spread "
        md += "(Welch's t-test, 5%), ▲ better / ▼ worse.\n\n"
        md += markdownTable(rows, baseline: baseline, bounds: real.map { [("real held-out images (bounds)", $0)] } ?? []) + "\n"
        md += "## What the rows say\n\n"
        md += verdicts(rows, baseline: baseline, trains: trains).map { "- " + $0 }.joined(separator: "\n") + "\n\n"
        var plots = barPlots(rows, keys: ["accuracy", "inception_fid", "toy_fid", "diversity"])
        let lossRows = names.filter { !$0.hasPrefix("raster") }.compactMap { n in
            trains[n].map { (n, TrainingTable.spread($0, "held_out_loss")) }
        }
        if lossRows.count >= 2 {
            var p = Plot(
                title: "held-out token loss per next-scale model (mean ± sd over seeds)", xLabel: "model", yLabel: "nats per token")
            p.categories = lossRows.map(\.0)
            p.series = [
                Plot.Series(
                    name: "held-out loss", x: lossRows.indices.map(Double.init), y: lossRows.map(\.1.mean), yError: lossRows.map(\.1.sd),
                    mark: .bars)
            ]
            plots.append(("bars-held-out-loss", p))
        }
        md += "## Plots\n\n" + plots.map { "![\($0.plot.title)](plots/\($0.name).svg)\n\n" }.joined()
        md += "## Samples (seed \(seeds[0]), one row per class)\n\n"
        for r in rows { if let g = r.grid { md += "**\(r.name)**\n\n![\(r.name)](../\(g))\n\n" } }
        var json: [String: Any] = [
            "vae": vae, "judge": judge.classifier, "inception": judge.inception ?? NSNull(), "budget": budget.rawValue, "n": n,
            "base_steps": baseSteps,
        ]
        json["rows"] = rowsJSON(rows)
        json["training"] = names.map { n -> [String: Any] in
            var o: [String: Any] = ["model": n]
            for (key, _) in TrainingTable.keys {
                let s = TrainingTable.spread(trains[n] ?? [], key)
                o[key] = ["mean": s.mean.isFinite ? s.mean as Any : NSNull(), "sd": s.sd, "n": s.n]
            }
            return o
        }
        if let real { json["real"] = real }
        return StudyReport(markdown: md, json: json, plots: plots)
    }

    func verdicts(_ rows: [RowStats], baseline: RowStats?, trains: [String: [CellResult]]) -> [String] {
        guard let b = baseline else { return ["the base model has not been sampled yet"] }
        let claims: [(String, String)] = [
            (Self.specs[1].name, "Claim 1: next-scale VAR beats raster-order AR at equal parameters and compute"),
            (Self.specs[2].name, "Claim 2: AdaLN conditioning beats plain conditioning (the class as a start token only)"),
            (Self.specs[3].name, "Depth at equal compute: a shallower model with more steps"),
            (Self.specs[4].name, "Depth at equal compute: a deeper model with fewer steps"),
        ]
        let keys = [("accuracy", "top-1"), ("toy_fid", "toy-FID"), ("recall", "recall"), ("diversity", "diversity")]
        return claims.compactMap { name, claim in
            guard let r = rows.first(where: { $0.name == name }) else { return nil }
            var line = "**\(claim).** \(b.name) against \(name): " + comparison(b, r, keys: keys)
            if !name.hasPrefix("raster"), let lb = trains[b.name], let lr = trains[name] {
                let (sb, sr) = (TrainingTable.spread(lb, "held_out_loss"), TrainingTable.spread(lr, "held_out_loss"))
                line += "; held-out loss \(sb.formatted(digits: 4)) vs \(sr.formatted(digits: 4))"
                line += sb.differs(from: sr).significant ? " (beyond the spread)" : " (within the spread)"
            }
            return line + "."
        }
    }
}
