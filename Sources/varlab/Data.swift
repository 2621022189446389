import ArgumentParser
import Foundation
import ImageIO
import ModelIO
import Tensor
import Training

/// `varlab data toy`: writes the built-in toy dataset as PNG files with labels, for `eval` and other tools.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Write a built-in dataset to disk.",
        subcommands: [DataToy.self])
}

struct DataToy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "toy",
        abstract: "Write N images of the procedural toy dataset (10 classes, 64x64 RGB) as PNGs with labels.",
        discussion: """
            Files are class{C}_{index}.png (index zero-padded to 6 digits), with labels.txt ('file class' lines) and \
            labels.json ({file: class}) beside them, all written atomically. Image `index` is a pure function of \
            (seed, split, index); the train and held-out splits use disjoint Philox streams (train: stream = index, \
            heldout: stream = 2^32 + index), so they never share an image. Classes: \
            \(ToyDataset.classNames.enumerated().map { "\($0.offset)=\($0.element)" }.joined(separator: ", ")).
            """)

    @Option(help: "Number of images (indices start .. start+n-1).") var n: Int
    @Option(help: "First index.") var start: Int = 0
    @Option(help: "Split: train or heldout.") var split: String = "train"
    @Option(help: "Dataset seed.") var seed: UInt64 = 0
    @Option(help: "Image size in pixels.") var size: Int = 64
    @Option(name: [.short, .customLong("output")], help: "Output folder (created if missing).") var output: String
    @OptionGroup var common: CommonOptions

    func run() throws {
        try common.apply()
        guard n >= 1 else { throw ValidationError("--n must be at least 1, got \(n)") }
        guard start >= 0, start + n <= 1 << 32 else { throw ValidationError("indices must lie in 0..<2^32") }
        guard size >= 8, size <= 1024 else { throw ValidationError("--size must be in 8...1024, got \(size)") }
        guard let sp = ToyDataset.Split(rawValue: split) else {
            throw ValidationError("--split must be train or heldout, got '\(split)'")
        }
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        let ds = ToyDataset(seed: seed, split: sp, size: size)
        let dir = URL(fileURLWithPath: output)
        let names = (0..<n).map { "class\(ds.label(start + $0))_\(String(format: "%06d", start + $0)).png" }
        let errors = ErrorBox()
        let t0 = Date()
        Parallel.forEach(n) { i in
            let name = names[i]
            do { try PNG.write(ds.image(start + i), to: dir.appendingPathComponent(name).path) } catch { errors.set("\(name): \(error)") }
        }
        if let e = errors.message { throw ValidationError("writing PNGs failed: \(e)") }
        let labels = (0..<n).map { ds.label(start + $0) }
        let txt = zip(names, labels).map { "\($0) \($1)\n" }.joined()
        try AtomicFile.write(Data(txt.utf8), to: dir.appendingPathComponent("labels.txt").path)
        var obj: [String: Int] = [:]
        for (name, l) in zip(names, labels) { obj[name] = l }
        let json = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .prettyPrinted])
        try AtomicFile.write(json, to: dir.appendingPathComponent("labels.json").path)
        note(
            String(
                format: "wrote %d %@ toy images (seed %llu) to %@ in %.1fs", n, sp.rawValue, seed, output,
                Date().timeIntervalSince(t0)))
    }
}

/// First error from concurrent workers.
final class ErrorBox: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var message: String?
    func set(_ m: String) { lock.lock(); if message == nil { message = m }; lock.unlock() }
}
