import ArgumentParser
import Foundation
import ModelIO

struct MergeShards: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge-shards",
        abstract: "Join sample shards (.npz, ADM layout) into one batch, in the order given.",
        discussion: "Every key (arr_0 images, arr_1 labels, ...) is stacked along axis 0; one shard is in memory at a time.")

    @Argument(help: "Shard files, e.g. samples_0of8.npz ... samples_7of8.npz (joined in this order).")
    var shards: [String]

    @Option(name: .shortAndLong, help: "Output .npz (written atomically).")
    var output: String

    func run() throws {
        guard shards.count >= 1 else { throw ValidationError("give at least one shard") }
        try NPZConcatenate.run(inputs: shards, to: output)
        let f = try NPZFile(path: output)
        let desc = try f.keys.map { "\($0) \(try f.header($0).shape)" }.joined(separator: ", ")
        print("wrote \(output): \(desc)")
    }
}
