import ArgumentParser
import Editing
import Foundation

/// Turns one job object into the argument list of `varlab edit`, so a job is parsed, validated and run by exactly
/// the code of a single `edit` call. Errors name the field.
enum EditJobArguments {
    /// Fields holding paths; relative ones are resolved against the jobs file's folder.
    static let pathFields: Set<String> = ["checkpoint", "vae", "image", "mask", "output"]

    static func argv(for job: EditJob, baseDirectory: URL) throws -> [String] {
        var args: [String] = []
        for (key, value) in job.fields {
            if key == "name" { continue } // a label for messages only
            let option = key.replacingOccurrences(of: "_", with: "-")
            guard Edit.jobFields.contains(option) else {
                let known = Edit.jobFields.map { $0.replacingOccurrences(of: "-", with: "_") }.joined(separator: ", ")
                throw EditFieldError(field: key, message: "unknown field (known: name, \(known))")
            }
            if case .null = value { continue }
            if Edit.flagFields.contains(option) {
                guard case let .bool(b) = value else { throw EditFieldError(field: key, message: "expected true or false") }
                if b { args.append("--\(option)") }
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
            if pathFields.contains(option), !text.isEmpty, !text.hasPrefix("/") {
                text = baseDirectory.appendingPathComponent(text).standardizedFileURL.path
            }
            args.append("--\(option)")
            args.append(text)
        }
        return args
    }

    /// The field a parse error is about, recovered from the option name in ArgumentParser's message.
    static func fieldOfParseMessage(_ message: String) -> String? {
        let pattern = try! NSRegularExpression(pattern: "--([a-z][a-z0-9-]*)")
        let ns = message as NSString
        guard let m = pattern.firstMatch(in: message, range: NSRange(location: 0, length: ns.length)) else { return nil }
        return ns.substring(with: m.range(at: 1)).replacingOccurrences(of: "-", with: "_")
    }
}

/// Reads a jobs file (.json: an array of objects or {"defaults": {...}, "jobs": [...]}; .jsonl: one object per
/// line) and runs the jobs in order. A failing job is reported with its number, name and field, and the others
/// still run. Returns whether all jobs succeeded (or were skipped by --resume).
struct EditJobRunner {
    var path: String
    var resume: Bool

    enum Status { case done, skipped, failed }
    struct Outcome { var job: EditJob; var status: Status; var seconds: Double; var message: String }

    func loadJobs() throws -> [EditJob] { try JobsFile.read(path: path) }

    /// The files each job would write (its output and, with compare, the strip), or nil when it does not parse.
    static func plannedOutputs(_ job: EditJob, base: URL) -> [String]? {
        guard job.fields.first?.key != "_not_an_object", let argv = try? EditJobArguments.argv(for: job, baseDirectory: base),
              let options = try? Edit.parse(argv), let out = options.output else { return nil }
        return options.options.writtenFiles.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
    }

    func run() throws -> Bool {
        let jobs = try loadJobs()
        guard !jobs.isEmpty else { throw ValidationError("--jobs: '\(path)' holds no jobs") }
        let base = URL(fileURLWithPath: path).deletingLastPathComponent()
        // Two jobs writing one file would both report ok (and --resume would skip the second though it never
        // ran): every file may be claimed by one job only; a later claimant fails before anything runs.
        var claimedBy: [String: Int] = [:]
        var collisions: [Int: String] = [:]
        for job in jobs {
            for f in Self.plannedOutputs(job, base: base) ?? [] {
                if let first = claimedBy[f] { collisions[job.index] = collisions[job.index] ?? "writes \(f), which job \(first) also writes" }
                else { claimedBy[f] = job.index }
            }
        }
        var outcomes: [Outcome] = []
        for job in jobs {
            let t0 = Date()
            let prefix = "[\(job.index)/\(jobs.count)] \(job.name)"
            var status = Status.done, message = ""
            do {
                if job.fields.first?.key == "_not_an_object" { throw EditFieldError(field: "job", message: "is not a JSON object (\(job.fields[0].value.scalarText ?? "array item"))") }
                let argv = try EditJobArguments.argv(for: job, baseDirectory: base)
                let options: Edit
                do { options = try Edit.parse(argv) } catch {
                    let text = Edit.message(for: error)
                    throw EditFieldError(field: EditJobArguments.fieldOfParseMessage(text) ?? "job", message: text)
                }
                guard let out = options.output else { throw EditFieldError(field: "output", message: "missing: every job needs an output") }
                if let clash = collisions[job.index] { throw EditFieldError(field: "output", message: clash) }
                let written = options.options.writtenFiles
                if resume && written.allSatisfy({ FileManager.default.fileExists(atPath: $0) }) {
                    status = .skipped; message = written.count > 1 ? "outputs exist" : "output exists"
                } else {
                    note("\(prefix): running")
                    try options.common.apply()
                    let r = try EditRunner.run(options.options, progress: { note("\(prefix): \($0)") })
                    message = r.summary
                }
            } catch let e as EditFieldError {
                status = .failed; message = e.messageForJob
            } catch {
                status = .failed; message = "\(error)"
            }
            let secs = Date().timeIntervalSince(t0)
            switch status {
            case .done: note("\(prefix): done in \(String(format: "%.1f", secs)) s")
            case .skipped: note("\(prefix): skipped (\(message))")
            case .failed: note("\(prefix): FAILED: job \(job.index) (\(job.name)): \(message)")
            }
            outcomes.append(Outcome(job: job, status: status, seconds: secs, message: message))
        }
        print(Self.table(outcomes))
        return !outcomes.contains { $0.status == .failed }
    }

    static func table(_ outcomes: [Outcome]) -> String {
        let nameWidth = min(40, max(4, outcomes.map { $0.job.name.count }.max() ?? 4))
        var lines = ["job  " + "name".padding(toLength: nameWidth, withPad: " ", startingAt: 0) + "  status   time(s)  details"]
        for o in outcomes {
            let st = o.status == .done ? "ok" : o.status == .skipped ? "skipped" : "FAILED"
            var name = o.job.name
            if name.count > nameWidth { name = "…" + name.suffix(nameWidth - 1) }
            lines.append(String(format: "%-4d ", o.job.index) + name.padding(toLength: nameWidth, withPad: " ", startingAt: 0) +
                         "  " + st.padding(toLength: 7, withPad: " ", startingAt: 0) + String(format: "  %7.1f  ", o.seconds) + o.message)
        }
        let ok = outcomes.filter { $0.status == .done }.count, sk = outcomes.filter { $0.status == .skipped }.count
        let bad = outcomes.count - ok - sk
        lines.append("\(outcomes.count) jobs: \(ok) ok, \(sk) skipped, \(bad) failed")
        return lines.joined(separator: "\n")
    }
}
