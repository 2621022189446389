import ArgumentParser
import Foundation

/// `varlab train ...`: lab-scale training on the CPU.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train the small models on the CPU (toy data or an image folder).",
        subcommands: [TrainClassifier.self, TrainVQVAE.self, TrainVAR.self, TrainDiT.self, TrainExport.self])
}
