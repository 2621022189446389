import Foundation
import ImageIO
import ModelIO
import Tensor

/// A labelled image set the trainers draw batches from: images [N, 3, S, S] in [-1, 1] and class indices.
public protocol LabeledImageSource {
    var count: Int { get }
    var classCount: Int { get }
    var imageSize: Int { get }
    var summary: String { get }
    func batch(_ indices: [Int]) -> (images: Tensor, labels: [Int])
    /// Class names by index (empty when unknown); trainers record them so grids can show them.
    var classNames: [String] { get }
}

extension LabeledImageSource {
    public var classNames: [String] { [] }
}

/// The metadata key for a checkpoint's class names (a JSON array of strings, index = class).
public enum ClassNamesMetadata {
    public static let key = MetadataKey.classNames.rawValue
    public static func encode(_ names: [String]) -> String {
        (try? String(decoding: JSONEncoder().encode(names), as: UTF8.self)) ?? "[]"
    }
    /// nil when the text is not a JSON array of strings.
    public static func decode(_ text: String) -> [String]? { try? JSONDecoder().decode([String].self, from: Data(text.utf8)) }

    /// A checkpoint's class names from its metadata: this key, else the toy classes for toy models trained before
    /// the key existed, else none.
    public static func names(metadata: [String: String]) -> [String] {
        if let list = metadata[key].flatMap(decode) { return list }
        return metadata[.data]?.contains("toy (") == true ? ToyDataset.classNames : []
    }
}

/// A labelled image set read one image at a time: the real images a generator is judged against.
public protocol IndexedImages {
    var count: Int { get }
    var classCount: Int { get }
    var summary: String { get }
    func image(_ index: Int) -> Image8
    func label(_ index: Int) -> Int
}

/// The toy training split seen as a finite set of `count` images (indices 0..<count).
public struct ToySource: LabeledImageSource, IndexedImages {
    public let dataset: ToyDataset
    public let count: Int
    public init(dataset: ToyDataset, count: Int) { self.dataset = dataset; self.count = count }
    public var classCount: Int { ToyDataset.classCount }
    public var classNames: [String] { ToyDataset.classNames }
    public var imageSize: Int { dataset.size }
    public var summary: String { "toy (\(dataset.split.rawValue) split, seed \(dataset.seed), \(count) images, \(classCount) classes)" }
    public func batch(_ indices: [Int]) -> (images: Tensor, labels: [Int]) { dataset.batch(indices) }
    public func image(_ index: Int) -> Image8 { dataset.image(index) }
    public func label(_ index: Int) -> Int { dataset.label(index) }
}

/// `--data imagefolder:PATH`: one sub-folder per class (sorted names = class indices 0, 1, ...), PNG/JPEG files,
/// each brought to size x size by the official ADM / DiT `center_crop_arr` pipeline (PIL BOX halving while the
/// shorter side is at least twice the target, BICUBIC resize of the shorter side to `size`, center crop). Files that cannot be decoded are skipped and counted; a
/// folder with no class sub-folders, or with no readable image left, is an error.
public struct ImageFolderSource: LabeledImageSource, IndexedImages {
    public let root: String
    public let classNames: [String]
    public let imageSize: Int
    public let skipped: [String]
    private let pixels: [[UInt8]]  // CHW would cost a conversion per batch; HWC uint8 keeps memory small
    private let labels: [Int]

    public static let extensions: Set<String> = ["png", "jpg", "jpeg"]

    /// `decode` reads one file (PNG/JPEG) into an RGB or grey Image8; the CLI passes the ImageIO codec.
    public init(root: String, size: Int, decode: (String) throws -> Image8) throws {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: root, isDirectory: &isDir), isDir.boolValue else {
            throw TrainingError.data("imagefolder \(root): not a folder")
        }
        let entries = try fm.contentsOfDirectory(atPath: root).sorted()
        let classes = entries.filter { name in
            var d: ObjCBool = false
            return !name.hasPrefix(".") && fm.fileExists(atPath: (root as NSString).appendingPathComponent(name), isDirectory: &d)
                && d.boolValue
        }
        guard !classes.isEmpty else {
            throw TrainingError.data("imagefolder \(root): no class sub-folders (expected one folder per class, e.g. \(root)/cat/*.png)")
        }
        var pixels: [[UInt8]] = [], labels: [Int] = [], skipped: [String] = []
        for (ci, cls) in classes.enumerated() {
            let dir = (root as NSString).appendingPathComponent(cls)
            let files = try fm.contentsOfDirectory(atPath: dir).sorted()
                .filter { ImageFolderSource.extensions.contains(($0 as NSString).pathExtension.lowercased()) }
            for f in files {
                let path = (dir as NSString).appendingPathComponent(f)
                do {
                    let img = try decode(path)
                    guard img.width > 0, img.height > 0 else { skipped.append(path); continue }
                    // ADM's center_crop_arr (BOX halving, BICUBIC to the shorter side, center crop), as DiT trains.
                    pixels.append(try Preprocess.admCenterCrop(img.toRGB(), size: size).pixels)
                    labels.append(ci)
                } catch {
                    skipped.append(path)
                }
            }
        }
        guard !pixels.isEmpty else {
            throw TrainingError.data(
                "imagefolder \(root): no readable PNG/JPEG images in \(classes.count) class folders"
                    + (skipped.isEmpty ? "" : " (\(skipped.count) unreadable files skipped)"))
        }
        self.root = root; self.classNames = classes; self.imageSize = size
        self.pixels = pixels; self.labels = labels; self.skipped = skipped
    }

    public var count: Int { pixels.count }
    public var classCount: Int { classNames.count }
    public var summary: String {
        "imagefolder \(root) (\(count) images, \(classCount) classes\(skipped.isEmpty ? "" : ", \(skipped.count) unreadable files skipped"))"
    }

    public func batch(_ indices: [Int]) -> (images: Tensor, labels: [Int]) {
        let s = imageSize, per = 3 * s * s
        var data = [Float](repeating: 0, count: indices.count * per)
        for (i, idx) in indices.enumerated() {
            let t = image(idx).signedCHW()
            for j in 0..<per { data[i * per + j] = t.data[j] }
        }
        return (Tensor(shape: [indices.count, 3, s, s], data: data), indices.map { labels[$0] })
    }

    public func image(_ index: Int) -> Image8 { Image8(width: imageSize, height: imageSize, channels: 3, pixels: pixels[index]) }
    public func label(_ index: Int) -> Int { labels[index] }

    /// A deterministic train / held-out split: every `every`-th image of each class (its 1st, (every+1)-th, ...) is
    /// held out, the rest train. Both halves keep this folder's class list.
    public func split(heldOutEvery every: Int) -> (train: ImageFolderSubset, heldOut: ImageFolderSubset) {
        var train: [Int] = [], held: [Int] = [], seen = [Int](repeating: 0, count: classCount)
        for i in 0..<count {
            if seen[labels[i]] % every == 0 { held.append(i) } else { train.append(i) }
            seen[labels[i]] += 1
        }
        return (
            ImageFolderSubset(base: self, indices: train, part: "train"), ImageFolderSubset(base: self, indices: held, part: "held-out")
        )
    }
}

/// Part of an image folder (`ImageFolderSource.split`), indexed 0..<count.
public struct ImageFolderSubset: LabeledImageSource, IndexedImages {
    public let base: ImageFolderSource
    public let indices: [Int]
    let part: String
    public var count: Int { indices.count }
    public var classCount: Int { base.classCount }
    public var classNames: [String] { base.classNames }
    public var imageSize: Int { base.imageSize }
    public var summary: String { "\(base.summary), \(part) part (\(count) images)" }
    public func batch(_ i: [Int]) -> (images: Tensor, labels: [Int]) { base.batch(i.map { indices[$0] }) }
    public func image(_ index: Int) -> Image8 { base.image(indices[index]) }
    public func label(_ index: Int) -> Int { base.label(indices[index]) }
}
