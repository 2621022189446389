import Foundation
import Generation

/// Groups finished cells into rows (one per setting, seeds as the spread) and renders tables with the real-data
/// bounds, significance marks against the baseline, the verdict lines and the plots.
struct RowStats {
    let name: String
    let values: [String: Spread]
    let seeds: Int
    let grid: String?

    init(name: String, results: [CellResult]) {
        self.name = name
        var v: [String: Spread] = [:]
        for (key, _, _) in ToyQuality.measureKeys { v[key] = Spread(results.compactMap { $0.metrics[key] }) }
        values = v
        seeds = results.count
        grid = results.compactMap { $0.outputs["grid"] }.first
    }

    subscript(_ key: String) -> Spread { values[key] ?? Spread([]) }
}

/// A Markdown table of rows; a value is marked † when it differs from `baseline`'s beyond the spread (Welch's t,
/// 5%), and ▲ / ▼ says whether it is better or worse.
func markdownTable(_ rows: [RowStats], baseline: RowStats?, bounds: [(String, [String: Double])]) -> String {
    let keys = measuredKeys(rows, bounds: bounds.map(\.1))
    var md = "| setting | " + keys.map(\.name).joined(separator: " | ") + " | seeds |\n"
    md += "|---|" + keys.map { _ in "---:" }.joined(separator: "|") + "|---:|\n"
    for (name, m) in bounds {
        md += "| *\(name)* | " + keys.map { m[$0.key].map { String(format: "%.3f", $0) } ?? "-" }.joined(separator: " | ") + " | - |\n"
    }
    for r in rows {
        let cells = keys.map { key, _, higher -> String in
            let s = r[key]
            var text = s.formatted(digits: key == "toy_fid" ? 2 : 3)
            if let b = baseline, b.name != r.name {
                let (_, sig) = s.differs(from: b[key])
                if sig { text += ((s.mean > b[key].mean) == higher ? " ▲†" : " ▼†") }
            }
            return text
        }
        md += "| \(r.name) | " + cells.joined(separator: " | ") + " | \(r.seeds) |\n"
    }
    return md
}

/// The quality measures some row or bound has (Inception FID only when the study was given `--inception`).
func measuredKeys(_ rows: [RowStats], bounds: [[String: Double]] = []) -> [(key: String, name: String, higherIsBetter: Bool)] {
    ToyQuality.measureKeys.filter { k in rows.contains { $0[k.key].n > 0 } || bounds.contains { $0[k.key] != nil } }
}

/// One bar chart per metric key: a bar per row with its spread.
func barPlots(_ rows: [RowStats], keys: [String]) -> [(name: String, plot: Plot)] {
    measuredKeys(rows).filter { keys.contains($0.key) }.map { key, name, _ in
        var p = Plot(title: "\(name) per setting (mean ± sd over seeds)", xLabel: "setting", yLabel: name)
        p.categories = rows.map(\.name)
        p.series = [
            Plot.Series(
                name: name, x: rows.indices.map(Double.init), y: rows.map { $0[key].mean }, yError: rows.map { $0[key].sd }, mark: .bars)
        ]
        return ("bars-\(key)", p)
    }
}

/// The rows on the Pareto front of (seconds per image, toy-FID): no other row is as fast and as good and better in one.
func paretoFront(_ rows: [RowStats]) -> [RowStats] {
    let pts = rows.filter { $0["seconds_per_image"].mean.isFinite && $0["toy_fid"].mean.isFinite }
    return pts.filter { r in
        !pts.contains { o in
            o.name != r.name && o["seconds_per_image"].mean <= r["seconds_per_image"].mean && o["toy_fid"].mean <= r["toy_fid"].mean
                && (o["seconds_per_image"].mean < r["seconds_per_image"].mean || o["toy_fid"].mean < r["toy_fid"].mean)
        }
    }
}

/// toy-FID against seconds per image, one series per family prefix ("VAR", "DiT") or one for all, front labelled.
func paretoPlot(_ rows: [RowStats], families: [String] = []) -> Plot? {
    let pts = rows.filter { $0["seconds_per_image"].mean.isFinite && $0["toy_fid"].mean.isFinite }
    guard pts.count >= 2 else { return nil }
    let front = Set(paretoFront(pts).map(\.name))
    var p = Plot(
        title: "toy-FID against seconds per image (Pareto front labelled)", xLabel: "seconds per image (this machine)", yLabel: "toy-FID")
    p.xScale = .log
    let groups = families.isEmpty ? [("settings", pts)] : families.map { f in (f, pts.filter { $0.name.hasPrefix(f) }) }
    p.series = groups.filter { !$0.1.isEmpty }.map { name, rs in
        Plot.Series(
            name: name, x: rs.map { $0["seconds_per_image"].mean }, y: rs.map { $0["toy_fid"].mean }, yError: rs.map { $0["toy_fid"].sd },
            mark: .points, labels: rs.map { front.contains($0.name) ? $0.name : "" })
    }
    return p
}

/// "top-1 a ± s vs b ± s (beyond the spread)" for each key, against a reference row.
func comparison(
    _ r: RowStats, _ b: RowStats, keys: [(String, String)] = [("accuracy", "top-1"), ("toy_fid", "toy-FID"), ("diversity", "diversity")]
) -> String {
    keys.map { key, label in
        let (_, sig) = r[key].differs(from: b[key])
        return "\(label) \(r[key].formatted()) vs \(b[key].formatted())\(sig ? " (beyond the spread)" : " (within the spread)")"
    }.joined(separator: "; ")
}

/// Rows as JSON: the setting, the seed count, and each metric's mean, sd and n (mean null when nothing finite).
func rowsJSON(_ rows: [RowStats]) -> [[String: Any]] {
    rows.map { r in
        var o: [String: Any] = ["setting": r.name, "seeds": r.seeds]
        for (key, _, _) in measuredKeys(rows) {
            o[key] = ["mean": r[key].mean.isFinite ? r[key].mean as Any : NSNull(), "sd": r[key].sd, "n": r[key].n]
        }
        return o
    }
}
