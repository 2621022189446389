import Foundation
import ImageIO
import ModelIO
import Training

/// Where `sample` writes: a grid PNG, a directory of PNGs, or an ADM-layout `.npz`. Every file is written
/// atomically (temporary file + rename), and the destination is checked before any sampling starts.
public enum SampleOutput {
    case grid(String)
    case directory(String)
    case npz(String)

    public init(path: String) throws {
        let lower = path.lowercased()
        if path.hasSuffix("/") || (try? FileManager.default.attributesOfItem(atPath: path)[.type] as? FileAttributeType) == .typeDirectory {
            self = .directory(path)
        } else if lower.hasSuffix(".npz") {
            self = .npz(path)
        } else if lower.hasSuffix(".png") {
            self = .grid(path)
        } else {
            throw GenerationError("-o \(path): expected out.png (grid), a directory ending in '/', or samples.npz")
        }
    }

    /// Fails early (before hours of sampling) if the destination cannot be written.
    public func prepare() throws {
        switch self {
        case .directory(let d):
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
            guard FileManager.default.isWritableFile(atPath: d) else { throw GenerationError("-o \(d): directory is not writable") }
        case .grid(let p), .npz(let p):
            let dir = URL(fileURLWithPath: p).deletingLastPathComponent().path
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue,
                FileManager.default.isWritableFile(atPath: dir)
            else {
                throw GenerationError("-o \(p): directory \(dir) does not exist or is not writable")
            }
        }
    }

    /// One PNG per image, named class{C}_{index}_seed{S}.png (the names `varlab eval` reads labels from), written as soon as its batch is done.
    public static func fileName(classLabel: Int, index: Int, seed: UInt64) -> String {
        String(format: "class%04d_%06d_seed%llu.png", classLabel, index, seed)
    }

    public static func writePNG(_ image: Image8, to path: String) throws {
        try AtomicFile.write(try PNG.encode(image), to: path)
    }

    /// A near-square grid (ceil(sqrt(n)) per row) with torchvision make_grid's 2-pixel black border.
    public static func grid(_ images: [Image8]) throws -> Image8 {
        try ImageGrid.make(images, nrow: Int(Double(images.count).squareRoot().rounded(.up)))
    }

    /// One row per class (in the order the classes first appear), the class name on the left: what a person
    /// wants to see when several classes were asked for.
    public static func classGrid(_ images: [Image8], labels: [Int], names: ClassNames) throws -> Image8 {
        var order: [Int] = [], rows: [Int: [Image8]] = [:]
        for (im, c) in zip(images, labels) {
            if rows[c] == nil { order.append(c); rows[c] = [] }
            rows[c]!.append(im)
        }
        return try CaptionedLayout.rows(order.map { (names.name($0), rows[$0]!) })
    }

    /// ADM evaluator layout: arr_0 uint8 [N, H, W, 3], arr_1 int64 labels [N].
    public static func writeNPZ(_ images: [Image8], labels: [Int], to path: String) throws {
        guard let first = images.first else { throw GenerationError("no images to write to \(path)") }
        var px: [UInt8] = []
        px.reserveCapacity(images.count * first.pixels.count)
        for im in images { px += im.pixels }
        var w = NPZWriter()
        w.add("arr_0", try NPYArray(uint8: px, shape: [images.count, first.height, first.width, first.channels]))
        w.add("arr_1", try NPYArray(int64: labels.map { Int64($0) }, shape: [labels.count]))
        try w.write(to: path)
    }
}

/// Names of a checkpoint's classes (`ClassNamesMetadata.names`), "class N" where unknown.
public struct ClassNames {
    public let names: [String]
    public init(checkpoint: String) {
        let meta =
            ((try? CheckpointLoader.detectFormat(path: checkpoint)) == .safetensors
                ? (try? SafetensorsFile(path: checkpoint))?.metadata : nil) ?? [:]
        names = ClassNamesMetadata.names(metadata: meta)
    }
    public func name(_ c: Int) -> String { names.indices.contains(c) && !names[c].isEmpty ? "\(c) \(names[c])" : "class \(c)" }
}
