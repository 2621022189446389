import ArgumentParser
import Foundation
import Training

/// `varlab train export`: a training checkpoint without its optimizer state (a third of the size), for shipping.
struct TrainExport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write the inference weights of a training checkpoint (drops the AdamW moments; keeps the metadata).")

    @Argument(help: "Training checkpoint (.safetensors written by varlab train).") var checkpoint: String
    @Option(name: [.short, .customLong("output")], help: "Output .safetensors.") var output: String
    @Flag(help: "Store the weights as float16 (loaders convert back to float32).") var half = false
    @Flag(help: "A checkpoint trained with --ema: export its raw weights instead of the EMA (the default).") var raw = false
    @Option(
        help: ArgumentHelp(
            "Extra metadata KEY=VALUE (repeatable), e.g. varlab.sample_more_smooth=1 to record the settings `sample` uses by default.",
            valueName: "key=value"))
    var meta: [String] = []

    func run() throws {
        guard checkpoint != output else { throw ValidationError("-o must differ from the input checkpoint") }
        var extra: [String: String] = [:]
        for m in meta {
            guard let eq = m.firstIndex(of: "="), eq != m.startIndex else { throw ValidationError("--meta expects KEY=VALUE, got '\(m)'") }
            extra[String(m[..<eq])] = String(m[m.index(after: eq)...])
        }
        let n: Int
        do {
            n = try TrainCheckpoint.export(from: checkpoint, to: output, half: half, useEMA: !raw, metadata: extra)
        } catch let e as TrainingError {
            throw ValidationError(e.description)
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        note(String(format: "wrote %@: %d tensors, %.2f MB%@", output, n, Double(size) / 1e6, half ? " (float16)" : ""))
    }
}
