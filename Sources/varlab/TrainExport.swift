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

    func run() throws {
        guard checkpoint != output else { throw ValidationError("-o must differ from the input checkpoint") }
        let n: Int
        do { n = try TrainCheckpoint.export(from: checkpoint, to: output, half: half) } catch let e as TrainingError {
            throw ValidationError(e.description)
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        note(String(format: "wrote %@: %d tensors, %.2f MB%@", output, n, Double(size) / 1e6, half ? " (float16)" : ""))
    }
}
