import Foundation

/// One unit of a study, fully described by its inputs: train this model with this seed, or sample and evaluate
/// that checkpoint with these settings. Its hash (SHA-256 of the kind, seed and sorted inputs) names its result,
/// so a finished cell is never redone and a changed input is a new cell.
public struct Cell: Codable, Sendable, Equatable {
    /// What runs: `Study.run` dispatches on it ("sample", "train-classifier", "real", ...).
    public let kind: String
    /// The report row the cell belongs to (a setting: "temperature 0.8"); seeds of one group are its spread.
    public let group: String
    public let seed: UInt64
    /// Everything else that decides the result (settings; files by content hash; sizes).
    public let inputs: [String: String]
    /// Hashes of cells whose outputs this one reads (they run first).
    public let needs: [String]

    public init(kind: String, group: String, seed: UInt64, inputs: [String: String], needs: [String] = []) {
        self.kind = kind; self.group = group; self.seed = seed; self.inputs = inputs; self.needs = needs
    }

    /// Bumped when a cell kind's computation changes meaning, so old cached results are not reused.
    public static let formatVersion = "1"

    public var hash: String {
        let fields =
            ["v=" + Self.formatVersion, "kind=" + kind, "seed=\(seed)"] + inputs.keys.sorted().map { "\($0)=\(inputs[$0]!)" }
            + needs.sorted().map { "needs=" + $0 }
        return String(SHA256.hex(fields.joined(separator: "\n")).prefix(20))
    }
}

/// What a finished cell produced: its metrics and output files, with its inputs (so a result file stands alone).
public struct CellResult: Codable, Sendable {
    public let hash: String
    public let study: String
    public let cell: Cell
    public let metrics: [String: Double]
    /// Output files by role ("checkpoint", "grid"), relative to the lab directory.
    public let outputs: [String: String]
    public let seconds: Double
    /// ISO 8601 time it finished.
    public let finished: String

    public init(study: String, cell: Cell, metrics: [String: Double], outputs: [String: String], seconds: Double) {
        self.hash = cell.hash
        self.study = study
        self.cell = cell
        self.metrics = metrics
        self.outputs = outputs
        self.seconds = seconds
        self.finished = ISO8601DateFormatter().string(from: Date())
    }
}

/// A lab error: one line naming the study, cell, file or flag at fault.
public struct LabError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
