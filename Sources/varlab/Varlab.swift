import ArgumentParser
import Foundation
import Generation
import Tensor

@main
struct Varlab: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "varlab",
        abstract: "Class-conditional image generation lab: VAR next-scale prediction beside DiT diffusion, with an evaluator.",
        version: versionText,
        subcommands: [
            Sample.self, Edit.self, Eval.self, Inspect.self, Bench.self, MergeShards.self, DataCommand.self, TrainCommand.self,
            LabCommand.self,
        ])

    /// `varlab --version`: the version and where the built-in models come from.
    static var versionText: String {
        "varlab (built from source)\nbuilt-in models: "
            + (BuiltinModels.modelsDirectory
                ?? "not found (looked in \(BuiltinModels.searchDirectories.map { $0 + "/models" }.joined(separator: ", ")); set VARLAB_ASSETS)")
    }

    /// Flags that do not parse or validate are usage errors (usage text, exit 64). Once a command runs, every
    /// error is a runtime error: one line naming what was wrong, exit 1, no usage text.
    static func main() {
        let command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            exit(withError: error)
        }
        do {
            var c = command
            try c.run()
        } catch let e as ValidationError {
            note("Error: \(e.message)")
            Foundation.exit(1)
        } catch {
            // Help and version requests (ArgumentParser's own commands throw them from run()) and explicit exit
            // codes keep ArgumentParser's handling: help on stdout, exit 0.
            if error is ExitCode || error is CleanExit || exitCode(for: error) == .success { exit(withError: error) }
            let text = fullMessage(for: error)
            note(text.hasPrefix("Error:") ? text : "Error: \(text)")
            Foundation.exit(1)
        }
    }
}

/// Options every command takes.
struct CommonOptions: ParsableArguments {
    @Option(help: "Worker threads (default: number of cores). Results are bit-identical for any value.")
    var threads: Int?

    /// Applies the thread setting, selects the BLAS kernel and keeps large freed blocks for reuse (`MallocPolicy`);
    /// returns the kernel report.
    @discardableResult
    func apply() throws -> BLAS.KernelReport {
        MallocPolicy.reuseLargeBlocks()
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
