import Foundation
import Generation
import ImageIO
import Samplers
import Training

/// `varlab lab run compare`: VAR against DiT on the same latent space (the built-in toy models share the VQ-VAE:
/// VAR predicts its tokens, DiT denoises its f-hat), quality against seconds per image on this machine (claim 6:
/// VAR reaches diffusion's quality far faster). DiT over samplers and steps, VAR over guidance; the Pareto front of
/// (seconds, toy-FID) is marked.
public struct CompareStudy: Study {
    public let name = "compare"
    public let budget: Budget
    let varCheckpoint: String
    let ditCheckpoint: String
    let vae: String
    let judge: LabJudge
    let files: [String: String]

    public var n: Int { 300 }
    public var seeds: [UInt64] { [0, 1, 2] }
    var varCFGs: [Double] { [0, 1, 1.5, 3] }
    /// DiT's cost is its step count: the full budget adds 100 and 250 DDIM steps and 50 DDPM steps.
    var ditRuns: [(sampler: String, steps: Int)] {
        budget == .small
            ? [("ddim", 10), ("ddim", 25), ("ddim", 50), ("ddpm", 100)]
            : [("ddim", 10), ("ddim", 25), ("ddim", 50), ("ddim", 100), ("ddim", 250), ("ddpm", 50), ("ddpm", 100)]
    }

    /// nil: the built-in toy models (both on the built-in tokenizer) and the built-in judge.
    public init(budget: Budget, varCheckpoint: String? = nil, ditCheckpoint: String? = nil, vae: String? = nil, judge: LabJudge) throws {
        self.budget = budget
        guard (varCheckpoint == nil) == (ditCheckpoint == nil) && (varCheckpoint == nil) == (vae == nil) else {
            throw LabError(
                "compare: give --checkpoint (VAR), --dit-checkpoint (DiT) and --vae (their shared tokenizer) together, or none for the built-in models"
            )
        }
        var v = GenerationSettings(family: VARFamily.name)
        v.checkpoint = varCheckpoint
        v.vae = vae
        var d = GenerationSettings(family: DiTFamily.name)
        d.checkpoint = ditCheckpoint
        d.vae = vae
        let vf = try v.files(), df = try d.files()
        guard vf.vae == df.vae else {
            throw LabError("compare needs VAR and DiT on one latent space: VAR uses \(vf.vae), DiT \(df.vae) (give --vae)")
        }
        self.varCheckpoint = vf.checkpoint
        self.ditCheckpoint = df.checkpoint
        self.vae = vf.vae
        self.judge = judge
        files = [
            "var_sha256": try LabFiles.sha256(self.varCheckpoint), "dit_sha256": try LabFiles.sha256(self.ditCheckpoint),
            "vae_sha256": try LabFiles.sha256(self.vae),
        ]
    }

    var realCell: Cell {
        Cell(
            kind: "real", group: "real held-out images", seed: 0,
            inputs: judge.inputs.merging(["n": "\(n)", "data_seed": "0"]) { $1 })
    }

    /// Row names in report order.
    var rowNames: [String] {
        varCFGs.map { String(format: "VAR cfg %g", $0) } + ditRuns.map { "DiT \($0.sampler) \($0.steps) steps" }
    }

    public func cells() throws -> [Cell] {
        var out = [realCell]
        let common = judge.inputs.merging(["vae_sha256": files["vae_sha256"]!, "n": "\(n)", "data_seed": "0"]) { $1 }
        for cfg in varCFGs {
            for seed in seeds {
                var i = common
                i["family"] = "var"
                i["checkpoint_sha256"] = files["var_sha256"]!
                i["cfg"] = "\(cfg)"
                out.append(Cell(kind: "sample", group: String(format: "VAR cfg %g", cfg), seed: seed, inputs: i))
            }
        }
        for r in ditRuns {
            for seed in seeds {
                var i = common
                i["family"] = "dit"
                i["checkpoint_sha256"] = files["dit_sha256"]!
                i["sampler"] = r.sampler
                i["steps"] = "\(r.steps)"
                out.append(Cell(kind: "sample", group: "DiT \(r.sampler) \(r.steps) steps", seed: seed, inputs: i))
            }
        }
        return out
    }

    public func relativeCost(_ cell: Cell) -> Double {
        cell.inputs["family"] == "dit" ? Double(cell.inputs["steps"].flatMap(Int.init) ?? 100) / 10 : 1
    }

    public func run(_ cell: Cell, context: LabContext) throws -> (metrics: [String: Double], outputs: [String: String]) {
        let judge = try self.judge.quality(n: n)
        if cell.kind == "real" { return (try judge.realMeasures(), [:]) }
        guard cell.kind == "sample" else { throw LabError("study '\(name)' has no cell kind '\(cell.kind)'") }
        let i = cell.inputs
        var s: GenerationSettings
        if i["family"] == "var" {
            s = GenerationSettings(family: VARFamily.name)
            s.checkpoint = varCheckpoint
            s.cfg = Double(i["cfg"]!)
        } else {
            s = GenerationSettings(family: DiTFamily.name)
            s.checkpoint = ditCheckpoint
            s.dit.sampler = i["sampler"]
            s.dit.steps = Int(i["steps"]!)
        }
        s.vae = vae
        let g = try s.makeGenerator()
        return try LabSampling.judgedRow(g, judge: judge, cell: cell, grid: cell.seed == seeds[0], context: context)
    }

    public func report(_ results: [CellResult], pending: [Cell], context: LabContext) throws -> StudyReport {
        let byGroup = Dictionary(grouping: results.filter { $0.cell.kind == "sample" }, by: { $0.cell.group })
        let rows = rowNames.compactMap { name in byGroup[name].map { RowStats(name: name, results: $0) } }
        let real = results.first { $0.cell.kind == "real" }?.metrics
        var md = "# Study `compare`: VAR against DiT on one latent space, quality against time\n\n"
        md +=
            "VAR `\(varCheckpoint)` and DiT `\(ditCheckpoint)`, both on the tokenizer `\(vae)` (DiT denoises its f-hat); judged by \(judge.description). "
        md += "Budget `\(budget.rawValue)`: \(n) samples per cell, seeds \(seeds.map(String.init).joined(separator: ", ")). "
        md +=
            "Seconds per image are wall time on this machine at batch \(LabSampling.batchSize) with \(ProcessInfo.processInfo.activeProcessorCount) cores.\n\n"
        if !pending.isEmpty { md += "**\(pending.count) of \(pending.count + results.count) cells are not finished.**\n\n" }
        let reference = rows.first { $0.name == "VAR cfg 1.5" } ?? rows.first
        md += "Values are mean ± standard deviation over the seeds; † marks a difference from \(reference?.name ?? "-") beyond the spread "
        md += "(Welch's t-test, 5%), ▲ better / ▼ worse.\n\n"
        md += markdownTable(rows, baseline: reference, bounds: real.map { [("real held-out images (bounds)", $0)] } ?? []) + "\n"
        let front = paretoFront(rows)
        md += "**Pareto front** (no other row is both faster and lower in toy-FID): " + front.map(\.name).joined(separator: ", ") + ".\n\n"
        // Claim 6: the fastest DiT setting that matches the best VAR's toy-FID within its spread, and the speed ratio.
        let vars = rows.filter { $0.name.hasPrefix("VAR") }, dits = rows.filter { $0.name.hasPrefix("DiT") }
        if let bestVAR = vars.min(by: { $0["toy_fid"].mean < $1["toy_fid"].mean }), !dits.isEmpty {
            md += "## Claim 6: does VAR reach diffusion's quality faster?\n\n"
            let matching = dits.filter {
                $0["toy_fid"].mean <= bestVAR["toy_fid"].mean || !$0["toy_fid"].differs(from: bestVAR["toy_fid"]).significant
            }
            if let fastest = matching.min(by: { $0["seconds_per_image"].mean < $1["seconds_per_image"].mean }) {
                let ratio = fastest["seconds_per_image"].mean / bestVAR["seconds_per_image"].mean
                md += String(
                    format:
                        "The best VAR row (%@, toy-FID %@) takes %.4f s per image; the fastest DiT row at least as good (%@, toy-FID %@) takes %.4f s, so at VAR's best quality VAR is %.2fx %@.",
                    bestVAR.name, bestVAR["toy_fid"].formatted(digits: 2), bestVAR["seconds_per_image"].mean, fastest.name,
                    fastest["toy_fid"].formatted(digits: 2), fastest["seconds_per_image"].mean, ratio >= 1 ? ratio : 1 / ratio,
                    ratio >= 1 ? "faster" : "slower")
            } else {
                md += String(
                    format: "No DiT row reaches the best VAR row's toy-FID (%@, %@, %.4f s per image).", bestVAR.name,
                    bestVAR["toy_fid"].formatted(digits: 2), bestVAR["seconds_per_image"].mean)
            }
            if let best = rows.min(by: { $0["toy_fid"].mean < $1["toy_fid"].mean }) {
                md += String(
                    format: " The lowest toy-FID of all rows: %@ (%@) at %.4f s per image.", best.name,
                    best["toy_fid"].formatted(digits: 2),
                    best["seconds_per_image"].mean)
            }
            md +=
                " Both are the built-in toy models: the comparison is of these two trained models at this scale, not of the methods in general.\n\n"
        }
        var plots = barPlots(rows, keys: ["accuracy", "inception_fid", "toy_fid"])
        if let p = paretoPlot(rows, families: ["VAR", "DiT"]) { plots.append(("pareto", p)) }
        md += "## Plots\n\n" + plots.map { "![\($0.plot.title)](plots/\($0.name).svg)\n\n" }.joined()
        md += "## Samples (seed \(seeds[0]), one row per class)\n\n"
        for r in rows { if let g = r.grid { md += "**\(r.name)**\n\n![\(r.name)](../\(g))\n\n" } }
        var json: [String: Any] = [
            "var": varCheckpoint, "dit": ditCheckpoint, "vae": vae, "judge": judge.classifier, "inception": judge.inception ?? NSNull(),
            "budget": budget.rawValue, "n": n,
        ]
        json["rows"] = rowsJSON(rows)
        json["pareto_front"] = front.map(\.name)
        if let real { json["real"] = real }
        return StudyReport(markdown: md, json: json, plots: plots)
    }
}
