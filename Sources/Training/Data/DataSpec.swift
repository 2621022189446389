import Foundation
import ImageIO

/// `--data`: the built-in toy data, or an image folder (one sub-folder per class). An image folder has a fixed
/// held-out part, every `heldOutEvery`-th image of each class, which the lab judges against and `train ... --hold-out`
/// keeps out of training.
public enum DataSpec: Equatable, Sendable, CustomStringConvertible {
    case toy
    case imageFolder(String)

    public static let heldOutEvery = 10

    /// "toy" or "imagefolder:PATH".
    public init(parsing text: String) throws {
        if text == "toy" {
            self = .toy
        } else if text.hasPrefix("imagefolder:") {
            let path = String(text.dropFirst("imagefolder:".count))
            guard !path.isEmpty else { throw TrainingError.config("--data imagefolder:PATH needs a path") }
            self = .imageFolder(path)
        } else {
            throw TrainingError.config("--data must be 'toy' or 'imagefolder:PATH', got '\(text)'")
        }
    }

    public var description: String {
        switch self {
        case .toy: return "toy"
        case .imageFolder(let p): return "imagefolder:\(p)"
        }
    }

    /// The folder at `size` (decoded and cropped once per process and size: several lab cells read one folder).
    public static func folder(_ path: String, size: Int) throws -> ImageFolderSource {
        let key = "\(URL(fileURLWithPath: path).standardized.path)|\(size)"
        folderLock.lock()
        defer { folderLock.unlock() }
        if let f = folders[key] { return f }
        let f = try ImageFolderSource(root: path, size: size, decode: ImageFile.read(path:))
        folders[key] = f
        return f
    }
    nonisolated(unsafe) private static var folders: [String: ImageFolderSource] = [:]
    private static let folderLock = NSLock()

    /// Training images: the toy train split's first `trainSize` (seed `dataSeed`), or the whole folder (without
    /// its held-out part when `holdOut`).
    public func trainSource(trainSize: Int, dataSeed: UInt64, size: Int, holdOut: Bool = false) throws -> LabeledImageSource {
        switch self {
        case .toy:
            guard trainSize >= 1, trainSize <= 1 << 32 else { throw TrainingError.config("--train-size must be in 1...2^32") }
            return ToySource(dataset: ToyDataset(seed: dataSeed, split: .train, size: size), count: trainSize)
        case .imageFolder(let path):
            let f = try Self.folder(path, size: size)
            return holdOut ? f.split(heldOutEvery: Self.heldOutEvery).train : f
        }
    }

    /// Held-out images: the toy held-out split's first `count`, or the folder's held-out part.
    public func heldOutSource(count: Int, dataSeed: UInt64, size: Int) throws -> LabeledImageSource & IndexedImages {
        switch self {
        case .toy: return ToySource(dataset: ToyDataset(seed: dataSeed, split: .heldout, size: size), count: count)
        case .imageFolder(let path): return try Self.folder(path, size: size).split(heldOutEvery: Self.heldOutEvery).heldOut
        }
    }
}
