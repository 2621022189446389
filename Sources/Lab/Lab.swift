import Foundation
import ImageIO
import ModelIO
import Training

/// How much a study spends: `small` shows each claim's direction in minutes on a 2-core machine, `full` is the
/// run the README reports.
public enum Budget: String, Sendable, CaseIterable, Codable {
    case small, full
}

/// A study: a list of cells and what to make of their results.
public protocol Study {
    var name: String { get }
    /// Every cell, each after the cells it needs.
    func cells() throws -> [Cell]
    /// Runs one cell (its `needs` are finished: their results are in `context.results`).
    func run(_ cell: Cell, context: LabContext) throws -> (metrics: [String: Double], outputs: [String: String])
    /// The report of the finished cells (some may be missing: the report says which).
    func report(_ results: [CellResult], pending: [Cell], context: LabContext) throws -> StudyReport
    /// A cell's expected cost relative to the other cells of its kind (for the ETA; default 1).
    func relativeCost(_ cell: Cell) -> Double
}

extension Study {
    public func relativeCost(_ cell: Cell) -> Double { 1 }
}

/// What a cell's run can use: the lab directory, finished results (by hash) and a progress line.
public struct LabContext {
    public let dir: String
    public let results: [String: CellResult]
    public let log: (String) -> Void

    /// A folder for one cell's output files (created on demand), and the path relative to the lab directory.
    public func outputFolder(_ cell: Cell) throws -> (absolute: String, relative: String) {
        let rel = "cells/" + cell.hash
        let abs = (dir as NSString).appendingPathComponent(rel)
        try FileManager.default.createDirectory(atPath: abs, withIntermediateDirectories: true)
        return (abs, rel)
    }

    public func absolute(_ relative: String) -> String { (dir as NSString).appendingPathComponent(relative) }
}

/// A study's report: Markdown for people, JSON for programs, and its plots.
public struct StudyReport {
    public var markdown: String
    public var json: [String: Any]
    public var plots: [(name: String, plot: Plot)]
    public init(markdown: String, json: [String: Any], plots: [(name: String, plot: Plot)]) {
        self.markdown = markdown; self.json = json; self.plots = plots
    }
}

/// Plans, runs and reports studies in one lab directory: `cells/<hash>/result.json` per finished cell (written
/// atomically, so an interrupted run loses at most the cell in progress), `results.sqlite` indexing them all, and
/// `<study>/report.md`, `report.json`, `plots/*.svg` and `.png`. Cells can run one per process (`run(only:)`), e.g. as a
/// Slurm job array over the indices `plan` prints; `report` collects whatever has finished.
public final class Lab {
    public let dir: String
    public let store: ResultsStore

    public init(dir: String) throws {
        self.dir = dir
        do {
            try FileManager.default.createDirectory(
                atPath: (dir as NSString).appendingPathComponent("cells"), withIntermediateDirectories: true)
        } catch {
            throw LabError("\(dir): cannot create the lab directory: \(error.localizedDescription)")
        }
        store = try ResultsStore(path: (dir as NSString).appendingPathComponent("results.sqlite"))
    }

    func resultPath(_ hash: String) -> String { (dir as NSString).appendingPathComponent("cells/\(hash)/result.json") }

    /// The finished result of a cell, if any (an unreadable or foreign file counts as not finished).
    public func result(_ cell: Cell) -> CellResult? {
        guard let data = FileManager.default.contents(atPath: resultPath(cell.hash)),
            let r = try? JSONDecoder().decode(CellResult.self, from: data), r.cell == cell
        else { return nil }
        return r
    }

    /// Each cell with its finished result or nil, in plan order.
    public func status(_ study: Study) throws -> [(cell: Cell, result: CellResult?)] {
        try study.cells().map { ($0, result($0)) }
    }

    /// Runs the unfinished cells (or only cell `only`, an index into the plan), each after the cells it needs.
    /// Returns how many cells ran.
    @discardableResult
    public func run(_ study: Study, only: Int? = nil, log: @escaping (String) -> Void = { _ in }) throws -> Int {
        let cells = try study.cells()
        if let only, !cells.indices.contains(only) {
            throw LabError("--cell \(only) is outside 0..<\(cells.count) (study '\(study.name)' has \(cells.count) cells)")
        }
        var results: [String: CellResult] = [:]
        for c in cells { if let r = result(c) { results[c.hash] = r } }
        let todo = (only.map { [$0] } ?? Array(cells.indices)).filter { results[cells[$0].hash] == nil }
        if let only, todo.isEmpty { log("cell \(only) (\(cells[only].group), seed \(cells[only].seed)) is already done") }
        var done = 0
        var spent: [String: (seconds: Double, cost: Double)] = [:]  // finished cells by kind (for the ETA)
        for i in todo {
            let cell = cells[i]
            for need in cell.needs where results[need] == nil {
                let j = cells.firstIndex { $0.hash == need }.map(String.init) ?? "?"
                throw LabError("cell \(i) (\(cell.group), seed \(cell.seed)) needs cell \(j) first (run it, or run the whole study)")
            }
            log("[\(i + 1)/\(cells.count)] \(cell.kind): \(cell.group), seed \(cell.seed) ...")
            let t0 = Date()
            let out = try study.run(cell, context: LabContext(dir: dir, results: results, log: log))
            let secs = Date().timeIntervalSince(t0)
            let r = CellResult(study: study.name, cell: cell, metrics: out.metrics, outputs: out.outputs, seconds: secs)
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try FileManager.default.createDirectory(
                atPath: (resultPath(cell.hash) as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try AtomicFile.write(try enc.encode(r), to: resultPath(cell.hash))
            // The result file is the record; the store is an index that `report` rebuilds, so a busy or broken
            // store (a job array's processes sharing it) costs a line, not the run.
            do { try store.record(r) } catch { log("\(error) (the cell's result is kept in \(resultPath(cell.hash)))") }
            results[cell.hash] = r
            done += 1
            let sofar = spent[cell.kind] ?? (0, 0)
            spent[cell.kind] = (sofar.seconds + secs, sofar.cost + study.relativeCost(cell))
            let left = todo.drop { $0 != i }.dropFirst().map { cells[$0] }
            // Seconds per unit of cost of the cell's kind (of all finished cells for a kind not seen yet).
            let all = spent.values.reduce((seconds: 0.0, cost: 0.0)) { ($0.seconds + $1.seconds, $0.cost + $1.cost) }
            let eta = left.reduce(0.0) { acc, c in
                let s = spent[c.kind] ?? all
                return acc + s.seconds / max(s.cost, 1e-9) * study.relativeCost(c)
            }
            log(String(format: "[%d/%d] done in %.1f s; %d cells left, ETA %.0f s", i + 1, cells.count, secs, left.count, eta))
        }
        return done
    }

    /// Writes `<dir>/<study>/report.md`, `report.json` and `plots/<name>.svg` / `.png` from the finished cells; returns
    /// the report's path. Also re-indexes the finished cells in the results store.
    @discardableResult
    public func report(_ study: Study, log: @escaping (String) -> Void = { _ in }) throws -> String {
        let status = try self.status(study)
        let done = status.compactMap(\.result)
        for r in done { try store.record(r) }
        let pending = status.filter { $0.result == nil }.map(\.cell)
        let context = LabContext(dir: dir, results: Dictionary(done.map { ($0.hash, $0) }, uniquingKeysWith: { a, _ in a }), log: log)
        let report = try study.report(done, pending: pending, context: context)
        let folder = (dir as NSString).appendingPathComponent(study.name)
        let plots = (folder as NSString).appendingPathComponent("plots")
        try FileManager.default.createDirectory(atPath: plots, withIntermediateDirectories: true)
        // Plots an earlier version of the report drew and this one does not would be read as current.
        let current = Set(report.plots.flatMap { [$0.name + ".svg", $0.name + ".png"] })
        for file in (try? FileManager.default.contentsOfDirectory(atPath: plots)) ?? []
        where !current.contains(file) && (file.hasSuffix(".svg") || file.hasSuffix(".png")) {
            try? FileManager.default.removeItem(atPath: (plots as NSString).appendingPathComponent(file))
        }
        for (name, plot) in report.plots {
            try AtomicFile.write(Data(plot.svg().utf8), to: (plots as NSString).appendingPathComponent(name + ".svg"))
            try AtomicFile.write(try PNG.encode(plot.image()), to: (plots as NSString).appendingPathComponent(name + ".png"))
        }
        var json = report.json
        json["study"] = study.name
        json["cells"] = status.count
        json["pending"] = pending.count
        try AtomicFile.write(
            try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]),
            to: (folder as NSString).appendingPathComponent("report.json"))
        let md = (folder as NSString).appendingPathComponent("report.md")
        try AtomicFile.write(Data(report.markdown.utf8), to: md)
        return md
    }
}

/// The studies `varlab lab` knows, by name.
public enum Studies {
    public struct Options: Sendable {
        public var budget: Budget = .small
        /// A VAR checkpoint and its VQ-VAE (nil: the built-in toy models).
        public var checkpoint: String?
        public var vae: String?
        /// A DiT checkpoint on the same latent space (compare; nil: the built-in toy DiT).
        public var ditCheckpoint: String?
        /// The classifier that judges every row (nil: the built-in toy classifier).
        public var judge: String?
        /// The FID InceptionV3 (pytorch-fid weights): every row gains an Inception FID.
        public var inception: String?
        /// The data the trained studies train on and every row is judged against (an image folder needs `judge`).
        public var data: DataSpec = .toy
        public init() {}
    }

    public static let all: [(name: String, summary: String)] = [
        ("knobs", "sampling knobs of a trained VAR: top-k, guidance and its schedule, more-smooth, temperature, rejection sampling"),
        ("compare", "VAR against DiT on one latent space: quality against seconds per image, DiT over samplers and steps"),
        ("ablations", "VAR, raster AR, VAR without AdaLN and VAR at three depths, trained at equal compute, 3 seeds each"),
        ("scaling", "held-out loss against parameters and training FLOPs, four sizes per family, power-law fits"),
    ]

    public static func make(_ name: String, _ o: Options) throws -> Study {
        guard all.contains(where: { $0.name == name }) else {
            throw LabError("unknown study '\(name)' (studies: \(all.map(\.name).joined(separator: ", ")))")
        }
        let judge = try LabJudge(classifier: o.judge, inception: o.inception, data: o.data)
        switch name {
        case "knobs": return try KnobStudy(budget: o.budget, checkpoint: o.checkpoint, vae: o.vae, judge: judge)
        case "compare":
            return try CompareStudy(
                budget: o.budget, varCheckpoint: o.checkpoint, ditCheckpoint: o.ditCheckpoint, vae: o.vae, judge: judge)
        case "ablations": return try AblationStudy(budget: o.budget, vae: o.vae, judge: judge)
        case "scaling": return try ScalingStudy(budget: o.budget, vae: o.vae, judge: judge)
        default: throw LabError("unknown study '\(name)' (studies: \(all.map(\.name).joined(separator: ", ")))")
        }
    }
}
