import Foundation
import Generation

struct KnobReport {
    let study: KnobStudy
    let results: [CellResult]
    let pending: [Cell]
    let context: LabContext

    func render() throws -> StudyReport {
        let byGroup = Dictionary(grouping: results.filter { $0.cell.kind == "sample" }, by: { $0.cell.group })
        let order = study.knobs
        let rows = order.compactMap { k in byGroup[k.name].map { RowStats(name: k.name, results: $0) } }
        let baseline = rows.first { $0.name == "baseline" }
        let real = results.first { $0.cell.kind == "real" }?.metrics
        let scorer = results.first { $0.cell.kind == "train-classifier" }?.metrics["held_out_accuracy"]
        var md = "# Study `knobs`: which sampling knobs of VAR matter\n\n"
        md += "VAR checkpoint `\(study.checkpoint)` with `\(study.vae)`; judged by \(study.judge.description). "
        md +=
            "Budget `\(study.budget.rawValue)`: \(study.n) samples per cell (class i mod 10), sampling seeds \(study.seeds.map(String.init).joined(separator: ", ")). "
        md += String(
            format:
                "Baseline = the checkpoint's recommended settings: cfg %g (%@), top-k %d, top-p %g, temperature %g, more-smooth %@; every other row changes one knob.\n\n",
            study.baseCFG, study.base.guidanceSchedule.rawValue, study.base.topK, study.base.topP, Double(study.base.temperature),
            study.base.moreSmooth ? "on" : "off")
        if !pending.isEmpty {
            md += "**\(pending.count) of \(pending.count + results.count) cells are not finished**; the rows below hold what has run.\n\n"
        }
        var bounds: [(String, [String: Double])] = []
        if let real { bounds.append(("real held-out images (bounds)", real)) }
        md += "Values are mean ± standard deviation over the seeds. † marks a difference from the baseline larger than the spread "
        md += "(Welch's t-test, 5%, two-sided), with ▲ better / ▼ worse. The italic row judges a second real set like a generator: "
        md +=
            "its toy-FID is the floor for this many images, its top-1 the classifier's own accuracy (the ceiling), its diversity 1 by definition.\n\n"
        md += markdownTable(rows, baseline: baseline, bounds: bounds) + "\n"
        if let scorer {
            md += String(
                format:
                    "Rejection scorer: a second toy classifier (seed 1), held-out accuracy %.3f. It shares the judge's architecture and data, so part of the rejection rows' top-1 gain may be the judge agreeing with a model like itself; toy-FID and recall are less exposed.\n\n",
                scorer)
        }
        md += "## What the rows say, claim by claim (each against the baseline)\n\n"
        md += verdicts(rows, baseline: baseline).map { "- " + $0 }.joined(separator: "\n") + "\n\n"
        md += "Read the diversity column with recall and coverage: it is the mean feature distance between two images of one class, "
        md += "so samples off the data manifold raise it too; a value above 1 with low precision means scattered, not richer, samples.\n\n"
        md += "## Plots\n\n"
        let plots = self.plots(rows)
        for p in plots { md += "![\(p.plot.title)](plots/\(p.name).svg)\n\n" }
        md += "## Samples (seed \(study.seeds[0]), one row per class)\n\n"
        for r in rows { if let g = r.grid { md += "**\(r.name)**\n\n![\(r.name)](../\(g))\n\n" } }
        var json: [String: Any] = [
            "checkpoint": study.checkpoint, "vae": study.vae, "judge": study.judge.classifier,
            "inception": study.judge.inception ?? NSNull(), "budget": study.budget.rawValue, "n": study.n,
            "seeds": study.seeds.map { Int($0) },
        ]
        json["rows"] = rowsJSON(rows)
        if let real { json["real"] = real }
        return StudyReport(markdown: md, json: json, plots: plots)
    }

    /// The claim each knob group tests (the lab issue's numbering).
    static let claims: [(group: String, claim: String)] = [
        ("top-k", "Claim 3: top-k sampling helps"), ("guidance", "Claim 4: classifier-free guidance helps; which scale and schedule"),
        ("more-smooth", "The official sampler's more-smooth option"),
        ("temperature", "Claim 7: one pass per scale costs diversity; temperature as the remedy, and its fidelity cost"),
        ("rejection", "Claim 9: classifier rejection sampling, its gain, diversity and time cost"),
        ("fastvar", "FastVAR's training-free pruning of the last scales: its speed-up and its quality cost"),
    ]

    /// Per claim, each of its rows against the baseline and whether the change exceeds the spread.
    func verdicts(_ rows: [RowStats], baseline: RowStats?) -> [String] {
        guard let b = baseline else { return ["the baseline has not run yet"] }
        var out: [String] = []
        for (group, claim) in Self.claims {
            let names = Set(study.knobs.filter { $0.group == group }.map(\.name))
            let rs = rows.filter { names.contains($0.name) }
            guard !rs.isEmpty else { continue }
            out.append(
                "**\(claim).** "
                    + rs.map {
                        "\($0.name): "
                            + comparison(
                                $0, b,
                                keys: [("accuracy", "top-1"), ("toy_fid", "toy-FID"), ("recall", "recall"), ("diversity", "diversity")])
                            + String(format: "; %.3f s/image", $0["seconds_per_image"].mean)
                    }.joined(separator: ". ") + ".")
        }
        return out
    }

    func plots(_ rows: [RowStats]) -> [(name: String, plot: Plot)] {
        var out = barPlots(rows, keys: ["accuracy", "inception_fid", "toy_fid", "diversity", "recall"])
        // Rejection sampling: quality and cost against the number of candidates.
        let rej = [("baseline", 1.0)] + study.candidateCounts.map { ("rejection \($0) candidates", Double($0)) }
        let rr = rej.compactMap { n, k in rows.first { $0.name == n }.map { (k, $0) } }
        if rr.count >= 2 {
            var p = Plot(
                title: "rejection sampling: top-1 and diversity against candidates", xLabel: "candidates per image", yLabel: "value")
            p.xScale = .log
            p.xTicks = rr.map(\.0)  // the candidate counts themselves (1, 2, 4, 8), not decade steps
            p.series = [
                Plot.Series(
                    name: "top-1", x: rr.map(\.0), y: rr.map { $0.1["accuracy"].mean }, yError: rr.map { $0.1["accuracy"].sd }, mark: .line),
                Plot.Series(
                    name: "diversity", x: rr.map(\.0), y: rr.map { $0.1["diversity"].mean }, yError: rr.map { $0.1["diversity"].sd },
                    mark: .line),
            ]
            out.append(("rejection", p))
        }
        if let p = paretoPlot(rows) { out.append(("pareto", p)) }
        return out
    }
}
