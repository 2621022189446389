import ArgumentParser
import Foundation
import ModelIO

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show what a checkpoint holds: format, tensors, dtypes, shapes.")

    @Argument(help: "A .safetensors, .pth/.pt/.bin/.ckpt (zip or legacy torch.save) file.")
    var file: String

    @Option(help: "Nested state dict to open, e.g. model, ema or trainer.var_wo_ddp.")
    var key: String?

    @Option(help: "Show only the first N keys (default: all).")
    var limit: Int?

    @OptionGroup var common: CommonOptions

    func run() throws {
        let format = try CheckpointLoader.detectFormat(path: file)
        let archive = try CheckpointLoader.open(path: file, keyPath: key)
        let keys = archive.keys
        var dtypes: [String: Int] = [:]
        for k in keys { if let i = archive.info(k) { dtypes[i.dtype.rawValue, default: 0] += 1 } }
        print("file:       \(file)")
        print("format:     \(format.rawValue)")
        if let key { print("key path:   \(key)") }
        print("tensors:    \(keys.count)")
        print("parameters: \(archive.parameterCount)")
        print("dtypes:     " + dtypes.sorted { $0.key < $1.key }.map { "\($0.key) x\($0.value)" }.joined(separator: ", "))
        if let st = archive as? SafetensorsFile, !st.metadata.isEmpty {
            print("metadata:   " + st.metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))
        }
        let shown = limit.map { Array(keys.prefix($0)) } ?? keys
        let width = shown.map(\.count).max() ?? 0
        for k in shown {
            guard let i = archive.info(k) else { continue }
            print("  " + k.padding(toLength: width, withPad: " ", startingAt: 0) + "  \(i.dtype.rawValue)  \(i.shape)")
        }
        if shown.count < keys.count { print("  ... \(keys.count - shown.count) more (use --limit)") }
    }
}
