import ArgumentParser
import Foundation
import Tensor

@main
struct Varlab: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "varlab",
        abstract: "Class-conditional image generation lab: VAR next-scale prediction beside DiT diffusion, with an evaluator.",
        subcommands: [Sample.self, Edit.self, Eval.self, Inspect.self, Bench.self, MergeShards.self, DataCommand.self, TrainCommand.self])
}

/// Options every command takes.
struct CommonOptions: ParsableArguments {
    @Option(help: "Worker threads (default: number of cores). Results are bit-identical for any value.")
    var threads: Int?

    /// Applies the thread setting and selects the BLAS kernel; returns the kernel report.
    @discardableResult
    func apply() throws -> BLAS.KernelReport {
        if let threads {
            guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
            Parallel.threads = threads
        }
        return BLAS.setUp()
    }
}

/// Messages for the user on stderr (stdout stays for results).
func note(_ s: String) {
    FileHandle.standardError.write((s + "\n").data(using: .utf8)!)
}
