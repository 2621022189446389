import Foundation
import Tensor

/// The fields a job may set: the long option names of `varlab edit` (with underscores in the file), each with the
/// type it is read as. A job sets exactly what a single `edit` call with those flags would.
enum EditJobField {
    enum Kind { case text, path, int, double, float, seed, flag }
    static let kinds: [(name: String, kind: Kind)] = [
        ("model", .text), ("checkpoint", .path), ("vae", .path), ("image", .path), ("mask", .path), ("box", .text),
        ("outpaint", .text), ("class", .int), ("seed", .seed), ("cfg", .double), ("top-k", .int), ("top-p", .double),
        ("patch-nums", .text), ("key", .text), ("more-smooth", .flag), ("steps", .int), ("sampler", .text),
        ("eta", .float), ("cfg-channels", .text), ("vae-groups", .int), ("strength", .double), ("resample", .flag),
        ("jump-length", .int), ("jump-n-sample", .int), ("output", .path), ("paste-back", .flag), ("compare", .flag),
        ("threads", .int),
    ]
    static let known = kinds.map { $0.name.replacingOccurrences(of: "-", with: "_") }.joined(separator: ", ")
}

extension EditOptions {
    /// The options one job object sets. Relative paths are relative to `baseDirectory` (the jobs file's folder);
    /// list values (JSON arrays) become comma-separated text. Errors name the field.
    public init(job: EditJob, baseDirectory: URL) throws {
        self.init()
        if job.fields.first?.key == "_not_an_object" {
            throw EditFieldError(field: "job", message: "is not a JSON object (\(job.fields[0].value.scalarText ?? "array item"))")
        }
        for (key, value) in job.fields {
            if key == "name" { continue }  // a label for messages only
            let option = key.replacingOccurrences(of: "_", with: "-")
            guard let kind = EditJobField.kinds.first(where: { $0.name == option })?.kind else {
                throw EditFieldError(field: key, message: "unknown field (known: name, \(EditJobField.known))")
            }
            if case .null = value { continue }
            if kind == .flag {
                guard case let .bool(b) = value else { throw EditFieldError(field: key, message: "expected true or false") }
                switch option {
                case "more-smooth": moreSmooth = b
                case "resample": resample = b
                case "paste-back": pasteBack = b
                default: compare = b
                }
                continue
            }
            var text: String
            switch value {
            case let .array(items):
                let parts = items.map(\.scalarText)
                guard !parts.contains(where: { $0 == nil }) else {
                    throw EditFieldError(field: key, message: "list items must be numbers or strings")
                }
                text = parts.map { $0! }.joined(separator: ",")
            case .object:
                throw EditFieldError(field: key, message: "expected a number, a string or a list, got an object")
            default:
                text = value.scalarText ?? ""
            }
            func number<T: LosslessStringConvertible>(_ type: T.Type, _ what: String) throws -> T {
                guard let v = T(text) else { throw EditFieldError(field: key, message: "expected \(what), got '\(text)'") }
                return v
            }
            switch kind {
            case .path where !text.isEmpty && !text.hasPrefix("/"):
                text = baseDirectory.appendingPathComponent(text).standardizedFileURL.path
            default: break
            }
            switch option {
            case "model": model = text
            case "checkpoint": checkpoint = text
            case "vae": vae = text
            case "image": image = text
            case "mask": mask = text
            case "box": box = text
            case "outpaint": outpaint = text
            case "class": classLabel = try number(Int.self, "an integer")
            case "seed": seed = try number(UInt64.self, "a non-negative integer")
            case "cfg": cfg = try number(Double.self, "a number")
            case "top-k": topK = try number(Int.self, "an integer")
            case "top-p": topP = try number(Double.self, "a number")
            case "patch-nums": patchNums = text
            case "key": self.key = text
            case "steps": steps = try number(Int.self, "an integer")
            case "sampler": sampler = text
            case "eta": eta = try number(Float.self, "a number")
            case "cfg-channels": cfgChannels = text
            case "vae-groups": vaeGroups = try number(Int.self, "an integer")
            case "strength": strength = try number(Double.self, "a number")
            case "jump-length": jumpLength = try number(Int.self, "an integer")
            case "jump-n-sample": jumpNSample = try number(Int.self, "an integer")
            case "output": output = text
            case "threads":
                let t = try number(Int.self, "an integer")
                guard t >= 1 else { throw EditFieldError(field: key, message: "must be at least 1, got \(t)") }
                threads = t
            default: break
            }
        }
    }
}

/// Reads a jobs file (.json: an array of objects or {"defaults": {...}, "jobs": [...]}; .jsonl: one object per
/// line) and runs the jobs in order. A failing job is reported with its number, name and field, and the others
/// still run. `log` receives progress lines; the outcomes come back in job order (`table` renders them).
public struct EditJobRunner {
    public var path: String
    public var resume: Bool
    public init(path: String, resume: Bool) { self.path = path; self.resume = resume }

    public enum Status { case done, skipped, failed }
    public struct Outcome { public var job: EditJob; public var status: Status; public var seconds: Double; public var message: String }

    func loadJobs() throws -> [EditJob] { try JobsFile.read(path: path) }

    /// The files each job would write (its output and, with compare, the strip), or nil when it does not parse.
    static func plannedOutputs(_ job: EditJob, base: URL) -> [String]? {
        guard let options = try? EditOptions(job: job, baseDirectory: base), options.output != nil else { return nil }
        return options.writtenFiles.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
    }

    public func run(log: (String) -> Void) throws -> [Outcome] {
        let jobs = try loadJobs()
        guard !jobs.isEmpty else { throw JobsFileError(description: "--jobs: '\(path)' holds no jobs") }
        let base = URL(fileURLWithPath: path).deletingLastPathComponent()
        // Two jobs writing one file would both report ok (and --resume would skip the second though it never
        // ran): every file may be claimed by one job only; a later claimant fails before anything runs.
        var claimedBy: [String: Int] = [:]
        var collisions: [Int: String] = [:]
        for job in jobs {
            for f in Self.plannedOutputs(job, base: base) ?? [] {
                if let first = claimedBy[f] {
                    collisions[job.index] = collisions[job.index] ?? "writes \(f), which job \(first) also writes"
                } else {
                    claimedBy[f] = job.index
                }
            }
        }
        var outcomes: [Outcome] = []
        for job in jobs {
            let t0 = Date()
            let prefix = "[\(job.index)/\(jobs.count)] \(job.name)"
            var status = Status.done, message = ""
            do {
                let options = try EditOptions(job: job, baseDirectory: base)
                guard options.output != nil else { throw EditFieldError(field: "output", message: "missing: every job needs an output") }
                if let clash = collisions[job.index] { throw EditFieldError(field: "output", message: clash) }
                let written = options.writtenFiles
                if resume && written.allSatisfy({ FileManager.default.fileExists(atPath: $0) }) {
                    status = .skipped; message = written.count > 1 ? "outputs exist" : "output exists"
                } else {
                    log("\(prefix): running")
                    if let t = options.threads { Parallel.threads = t }
                    let r = try EditRunner.run(options, progress: { log("\(prefix): \($0)") })
                    message = r.summary
                }
            } catch let e as EditFieldError {
                status = .failed; message = e.messageForJob
            } catch {
                status = .failed; message = "\(error)"
            }
            let secs = Date().timeIntervalSince(t0)
            switch status {
            case .done: log("\(prefix): done in \(String(format: "%.1f", secs)) s")
            case .skipped: log("\(prefix): skipped (\(message))")
            case .failed: log("\(prefix): FAILED: job \(job.index) (\(job.name)): \(message)")
            }
            outcomes.append(Outcome(job: job, status: status, seconds: secs, message: message))
        }
        return outcomes
    }

    /// One row per job (number, name, status, seconds, details) and a count line.
    public static func table(_ outcomes: [Outcome]) -> String {
        let nameWidth = min(40, max(4, outcomes.map { $0.job.name.count }.max() ?? 4))
        var lines = ["job  " + "name".padding(toLength: nameWidth, withPad: " ", startingAt: 0) + "  status   time(s)  details"]
        for o in outcomes {
            let st = o.status == .done ? "ok" : o.status == .skipped ? "skipped" : "FAILED"
            var name = o.job.name
            if name.count > nameWidth { name = "…" + name.suffix(nameWidth - 1) }
            lines.append(
                String(format: "%-4d ", o.job.index) + name.padding(toLength: nameWidth, withPad: " ", startingAt: 0) + "  "
                    + st.padding(toLength: 7, withPad: " ", startingAt: 0) + String(format: "  %7.1f  ", o.seconds) + o.message)
        }
        let ok = outcomes.filter { $0.status == .done }.count, sk = outcomes.filter { $0.status == .skipped }.count
        let bad = outcomes.count - ok - sk
        lines.append("\(outcomes.count) jobs: \(ok) ok, \(sk) skipped, \(bad) failed")
        return lines.joined(separator: "\n")
    }
}
