import ArgumentParser
import Foundation
import ImageIO

// Placeholder until the DiT helper's SampleDiT.swift lands (it replaces this file).
struct DiTSampleOptions: ParsableArguments {
    func makeGenerator(checkpoint: String?, vae: String?, cfg: Float?) throws -> DiTGenerator {
        throw ValidationError("--model dit: the DiT back end is not built yet")
    }
}

struct DiTGenerator: SampleGenerator {
    var family: String { "dit" }
    var imageSize: Int { 0 }
    var numClasses: Int { 0 }
    func generate(_ requests: [SampleRequest], seed: UInt64, progress: (SampleProgress) -> Void) throws -> [Image8] { [] }
}
