import ArgumentParser
import Foundation
import ModelIO

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what a checkpoint or array file holds: format, tensors, dtypes, shapes, nested state dicts.")

    @Argument(help: "A .safetensors, .pth/.pt/.bin/.ckpt (zip or legacy torch.save), .npz or .npy file.")
    var file: String

    @Option(help: "Nested state dict to open, e.g. model, ema or trainer.var_wo_ddp.")
    var key: String?

    @Option(help: "Show only the first N keys (default: all).")
    var limit: Int?

    @OptionGroup var common: CommonOptions

    func validate() throws {
        if let limit, limit < 0 { throw ValidationError("--limit must be 0 or more, got \(limit)") }
    }

    func run() throws {
        try common.apply()
        let ext = URL(fileURLWithPath: file).pathExtension.lowercased()
        if ext == "npz" || ext == "npy" { return try inspectArrays(npz: ext == "npz") }

        let format = try CheckpointLoader.detectFormat(path: file)
        print("file:       \(file)")
        print("format:     \(format.rawValue)")
        var torch: TorchCheckpoint?
        if format != .safetensors {
            let ck = try TorchCheckpoint(path: file)
            torch = ck
            for (k, s) in ck.topLevelSummary { print("entry:      \(k) = \(s)") }
            let nested = ck.stateDicts.filter { !$0.path.isEmpty }
            if !nested.isEmpty {
                print("nested state dicts (select with --key):")
                let shown = limit.map { Array(nested.prefix($0)) } ?? nested
                for (p, n) in shown { print("  \(p)  (\(n) tensors)") }
                if shown.count < nested.count { print("  ... \(nested.count - shown.count) more (use --limit)") }
            }
            if (key ?? "").isEmpty && !ck.stateDicts.contains(where: { $0.path.isEmpty }) {
                print("(no tensors at the top level; pass --key with one of: \(ck.keyPathCandidates().joined(separator: ", ")))")
                return
            }
        }
        let archive = try torch.map { try $0.archive(keyPath: key) } ?? CheckpointLoader.open(path: file, keyPath: key)
        let keys = archive.keys
        var dtypes: [String: Int] = [:]
        for k in keys { if let i = archive.info(k) { dtypes[i.dtype.rawValue, default: 0] += 1 } }
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

    private func inspectArrays(npz: Bool) throws {
        print("file:       \(file)")
        print("format:     \(npz ? "npz" : "npy")")
        var rows: [(String, NPYHeader)] = []
        if npz {
            let f = try NPZFile(path: file)
            for k in f.keys { rows.append((k, try f.header(k))) }
        } else {
            let a = try NPY.read(path: file)
            rows.append(("(array)", NPYHeader(dtype: a.dtype, shape: a.shape, dataOffset: 0)))
        }
        print("arrays:     \(rows.count)")
        let width = rows.map(\.0.count).max() ?? 0
        for (k, h) in rows {
            print("  " + k.padding(toLength: width, withPad: " ", startingAt: 0) + "  \(h.dtype) (\(h.dtype.rawValue))  \(h.shape)")
        }
    }
}
