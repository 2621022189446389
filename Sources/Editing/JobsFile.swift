import Foundation

/// A JSON value of a jobs file (keeps booleans apart from numbers, which JSONSerialization on Linux does not).
public enum EditJSON: Decodable, Equatable, Sendable {
    case null, bool(Bool), number(Double), string(String), array([EditJSON]), object([String: EditJSON])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let d = try? c.decode(Double.self) {
            self = .number(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([EditJSON].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: EditJSON].self))
        }
    }

    /// The command-line text of a scalar (integers without a decimal point); nil for arrays/objects.
    public var scalarText: String? {
        switch self {
        case let .string(s): return s
        case let .number(d):
            if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
            return String(d)
        case let .bool(b): return String(b)
        default: return nil
        }
    }
}

/// One job: its position in the file, its fields (sorted by name), and a name for messages. A job that is not a JSON
/// object carries the single field `_not_an_object` (it fails alone; the others still run).
public struct EditJob: Sendable {
    public var index: Int  // 1-based
    public var fields: [(key: String, value: EditJSON)]
    public init(index: Int, fields: [(key: String, value: EditJSON)]) { self.index = index; self.fields = fields }
    public var name: String {
        if case let .string(s)? = fields.first(where: { $0.key == "name" })?.value { return s }
        if case let .string(s)? = fields.first(where: { $0.key == "output" })?.value { return s }
        return "#\(index)"
    }
}

/// A jobs file that cannot be read as a whole (a single bad job is not this: it fails alone).
public struct JobsFileError: Error, CustomStringConvertible, Equatable {
    public let description: String
}

/// Reads a jobs file: `.json` holds an array of job objects or `{"defaults": {...}, "jobs": [...]}`; `.jsonl` one
/// object per line (any line ending; blank lines and `#` comments skipped).
public enum JobsFile {
    public static func read(path: String) throws -> [EditJob] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw JobsFileError(description: "--jobs: cannot read '\(path)'")
        }
        return try parse(data, jsonLines: URL(fileURLWithPath: path).pathExtension.lowercased() == "jsonl", path: path)
    }

    /// The jobs of a file's bytes; `path` only names the file in messages.
    public static func parse(_ data: Data, jsonLines: Bool, path: String) throws -> [EditJob] {
        let decoder = JSONDecoder()
        /// Fields of one job object, sorted by name (option order does not matter to the parser).
        func objectFields(_ text: Data) -> [(key: String, value: EditJSON)]? {
            guard case let .object(o)? = try? decoder.decode(EditJSON.self, from: text) else { return nil }
            return o.keys.sorted().map { (key: $0, value: o[$0]!) }
        }
        var jobs: [EditJob] = []
        if jsonLines {
            // Any line ending (\n, \r\n, \r): Swift's "\r\n" is one Character, never equal to "\n".
            let lines = String(decoding: data, as: UTF8.self).split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
            for (n, line) in lines.enumerated() {
                let t = line.trimmingCharacters(in: .whitespaces)
                if t.isEmpty || t.hasPrefix("#") { continue }
                // A bad line fails that job only; the others still run.
                let fields = objectFields(Data(t.utf8)) ?? [(key: "_not_an_object", value: .string("line \(n + 1)"))]
                jobs.append(EditJob(index: jobs.count + 1, fields: fields))
            }
            return jobs
        }
        let top: EditJSON
        do { top = try decoder.decode(EditJSON.self, from: data) } catch {
            throw JobsFileError(description: "--jobs: '\(path)' is not valid JSON: \(error)")
        }
        var defaults: [String: EditJSON] = [:]
        var list: [EditJSON]
        switch top {
        case let .array(a): list = a
        case let .object(o):
            guard case let .array(a)? = o["jobs"] else {
                throw JobsFileError(description: "--jobs: '\(path)' must be an array of jobs or an object with a \"jobs\" array")
            }
            list = a
            if case let .object(d)? = o["defaults"] { defaults = d }
            if let extra = o.keys.sorted().first(where: { $0 != "jobs" && $0 != "defaults" }) {
                throw JobsFileError(description: "--jobs: '\(path)': unknown top-level field '\(extra)' (expected jobs, defaults)")
            }
        default: throw JobsFileError(description: "--jobs: '\(path)' must be an array of jobs")
        }
        for (i, item) in list.enumerated() {
            guard case let .object(o) = item else {
                jobs.append(EditJob(index: i + 1, fields: [(key: "_not_an_object", value: item)]))
                continue
            }
            var merged = defaults
            for (k, v) in o { merged[k] = v }
            jobs.append(EditJob(index: i + 1, fields: merged.keys.sorted().map { (key: $0, value: merged[$0]!) }))
        }
        return jobs
    }
}
