import ArgumentParser
import Foundation
import Lab
import Tensor
import Training

/// `varlab lab`: studies as lists of cached cells: plan them, run them (all, or one per process), report them.
struct LabCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lab",
        abstract: "Studies: plan, run (resumable; --cell K for one cell per process) and report with spreads, plots and a results store.",
        subcommands: [LabList.self, LabPlan.self, LabRun.self, LabReport.self])
}

struct LabOptions: ParsableArguments {
    @Argument(help: "Study name (varlab lab list), or all.") var study: String
    @Option(help: "small (minutes; the direction of each claim) or full (the README's run).") var budget: Budget = .small
    @Option(help: "Lab directory: cells/, results.sqlite, <study>/report.md.") var dir: String = "runs/lab"
    @Option(help: "VAR checkpoint to study (default: the built-in toy VAR).") var checkpoint: String?
    @Option(help: "Its VQ-VAE (default: the built-in toy tokenizer).") var vae: String?
    @Option(help: "compare: a DiT on the same latent space (default: the built-in toy DiT).") var ditCheckpoint: String?
    @Option(help: "Toy classifier that judges every row (default: the built-in one).") var judge: String?
    @Option(help: "FID InceptionV3 weights (pytorch-fid's pt_inception .pth): every row also gets an Inception FID.")
    var inception: String?
    @Option(
        help:
            "Data: toy, or imagefolder:PATH (one sub-folder per class; every 10th image of each class is held out; needs --judge trained with `train classifier --hold-out`)."
    ) var data: String = "toy"

    /// The lab directory of this budget and the studies named (`all`: every study, in `varlab lab list` order).
    func open() throws -> (Lab, [Study]) {
        var o = Studies.Options()
        o.budget = budget
        o.checkpoint = checkpoint
        o.vae = vae
        o.ditCheckpoint = ditCheckpoint
        o.judge = judge
        o.inception = inception
        do {
            do { o.data = try DataSpec(parsing: data) } catch { throw LabError("\(error)") }
            let names = study == "all" ? Studies.all.map(\.name) : [study]
            return (try Lab(dir: (dir as NSString).appendingPathComponent(budget.rawValue)), try names.map { try Studies.make($0, o) })
        } catch let e as LabError { throw ValidationError(e.description) }
    }
}

extension Budget: ExpressibleByArgument {}

struct LabList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "The studies.")
    func run() throws { for s in Studies.all { print("\(s.name.padding(toLength: 10, withPad: " ", startingAt: 0)) \(s.summary)") } }
}

struct LabPlan: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan", abstract: "List a study's cells (index, hash, kind, row, seed, done?).")
    @OptionGroup var lab: LabOptions
    func run() throws {
        let (l, studies) = try lab.open()
        for study in studies {
            let status = try l.status(study)
            print("study \(study.name):")
            for (i, s) in status.enumerated() {
                let done = s.result.map { String(format: "done %.1fs", $0.seconds) } ?? "pending"
                let kind = s.cell.kind.padding(toLength: 17, withPad: " ", startingAt: 0)
                let group = s.cell.group.padding(toLength: 28, withPad: " ", startingAt: 0)
                print(String(format: "%4d  ", i) + "\(s.cell.hash)  \(kind)\(group)seed \(s.cell.seed)  \(done)")
            }
            print("\(status.filter { $0.result != nil }.count) of \(status.count) cells done; lab directory \(l.dir)")
        }
    }
}

struct LabRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a study's unfinished cells (finished ones are never redone), then write its report.",
        discussion: "With --cell K only cell K runs (a Slurm array: one index per task, then `varlab lab report`).")
    @OptionGroup var lab: LabOptions
    @Option(help: "Run only this cell (an index from `varlab lab plan`).") var cell: Int?
    @OptionGroup var common: CommonOptions

    func run() throws {
        try common.apply()
        let (l, studies) = try lab.open()
        if cell != nil && studies.count > 1 { throw ValidationError("--cell needs one study, not all") }
        for study in studies {
            let t0 = Date()
            let ran: Int
            do { ran = try l.run(study, only: cell, log: note) } catch let e as LabError { throw ValidationError(e.description) }
            note(String(format: "%@: %d cells ran in %.0f s", study.name, ran, Date().timeIntervalSince(t0)))
            if cell == nil { print("report: \(try l.report(study, log: note))") }
        }
    }
}

struct LabReport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Collect the finished cells into report.md, report.json and plots.")
    @OptionGroup var lab: LabOptions
    func run() throws {
        let (l, studies) = try lab.open()
        for study in studies { print(try l.report(study, log: note)) }
    }
}
