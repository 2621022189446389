import ArgumentParser
import Foundation
import VAR

/// `--fast` / `--fast-ratios`: opt-in FastVAR cached token pruning of VAR's last scales (never the default).
struct FastOptions: ParsableArguments {
    @Flag(
        help: "VAR: FastVAR cached token pruning of the last scales (training-free, approximate; README: Fast VAR).")
    var fast = false
    @Option(help: "VAR with --fast: fraction of tokens dropped at each of the last scales, coarsest first (default 0.4,0.5).")
    var fastRatios: String?

    /// The pruning these flags ask for (nil without --fast).
    func pruning() throws -> TokenPruning? {
        guard fast else {
            if fastRatios != nil { throw ValidationError("--fast-ratios needs --fast") }
            return nil
        }
        guard let text = fastRatios else { return TokenPruning() }
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else {
            throw ValidationError("--fast-ratios must be comma-separated numbers such as 0.4,0.5, got '\(text)'")
        }
        return TokenPruning(dropRatios: parts.map { $0! })
    }
}
