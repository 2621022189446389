import Foundation
import ImageIO
import ModelIO
import Tensor

/// One named feature set a network yields per image ("pool3", "cls", "embedding", ...).
public struct FeatureOutput: Sendable, Equatable {
    public var name: String
    public var width: Int
    public init(name: String, width: Int) { self.name = name; self.width = width }
}

/// A network that turns RGB images into named feature sets: what every metric takes (Inception, DINOv2, CLIP).
public protocol FeatureNetwork: AnyObject {
    /// Shown in reports next to each number, e.g. "DINOv2 ViT-L/14 (dinov2_vitl14_pretrain.pth)".
    var name: String { get }
    /// How images become the network's input, for reports.
    var preprocessing: String { get }
    /// File-name stem of its cache entries ("inception", "dinov2", "clip").
    var cacheName: String { get }
    /// Everything the features depend on besides the images (weights file stamp, preprocessing, version).
    var cacheIdentity: String { get }
    var outputs: [FeatureOutput] { get }
    /// Features of a batch: one [B, width] tensor per output.
    func features(_ images: [Image8]) throws -> [String: Tensor]
}

/// [B, width] of one feature vector per image, each computed on its own (so a feature never depends on which
/// images share its batch).
func featuresOneByOne(_ images: [Image8], width: Int, _ feature: (Image8) throws -> Tensor) rethrows -> Tensor {
    var out: [Float] = []
    out.reserveCapacity(images.count * width)
    for img in images { out += try feature(img).data }
    return Tensor(shape: [images.count, width], data: out)
}

/// Feature sets of a whole image set, by output name ([N, width] each).
public struct FeatureSets: Sendable {
    public var sets: [String: Tensor]
    public var count: Int
    public subscript(_ name: String) -> Tensor? { sets[name] }
}

/// Runs a feature network over an image set in batches, with an on-disk cache so a reference set is processed
/// once. Cache: `<dir>/<cacheName>-<hash>.npz` holding one float32 array per output and `key` (the full cache key
/// as bytes, checked on read so a hash collision cannot return another set's features). The key covers the
/// network's identity and the input files (absolute paths, sizes, modification times); any change recomputes.
public final class FeatureCache {
    public var dir: String?
    public var batchSize = 16
    /// Whether the last `features` call came from the cache.
    public private(set) var lastFromCache = false

    public init(dir: String?) { self.dir = dir }

    public func features(of set: ImageSet, network: FeatureNetwork, progress: ProgressHandler? = nil) throws -> FeatureSets {
        guard set.count > 0 else { throw MetricsError.tooFewSamples(what: set.paths.joined(separator: ", "), count: 0, needed: 1) }
        let key = "varlab-features-v2|\(network.cacheIdentity)|\(set.fingerprint)"
        let path = dir.map { URL(fileURLWithPath: $0).appendingPathComponent("\(network.cacheName)-\(FeatureCache.hash(key)).npz").path }
        if let path, let (f, notes) = try? read(path, key: key, outputs: network.outputs, count: set.count) {
            lastFromCache = true
            set.restoreNotes(notes)
            return f
        }
        lastFromCache = false
        let notesBefore = set.notes
        var data: [String: [Float]] = [:]
        var done = 0
        let t0 = Date()
        try set.forEachBatch(batchSize) { imgs in
            let out = try network.features(imgs)
            for o in network.outputs {
                guard let t = out[o.name], t.shape == [imgs.count, o.width] else {
                    throw MetricsError.badShape(
                        what: "\(network.name) output '\(o.name)'", shape: out[o.name]?.shape ?? [],
                        expected: "[\(imgs.count), \(o.width)]")
                }
                data[o.name, default: []] += t.data
            }
            done += imgs.count
            progress?(done, set.count, Date().timeIntervalSince(t0))
        }
        var sets: [String: Tensor] = [:]
        for o in network.outputs {
            let t = Tensor(shape: [done, o.width], data: data[o.name] ?? [])
            try requireFinite(
                t.data, columns: o.width, what: "\(network.name) '\(o.name)' features of \(set.paths.joined(separator: ", "))")
            sets[o.name] = t
        }
        let f = FeatureSets(sets: sets, count: done)
        if let path { try? write(path, key: key, f, outputs: network.outputs, notes: set.notes.filter { !notesBefore.contains($0) }) }
        return f
    }

    /// The cached features and the notes their pass made about the images (grey, RGBA, mixed sizes).
    private func read(_ path: String, key: String, outputs: [FeatureOutput], count: Int) throws -> (FeatureSets, [String])? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let npz = try NPZFile(path: path)
        guard try npz.array("key").asUInt8() == Array(key.utf8) else { return nil }
        var sets: [String: Tensor] = [:]
        for o in outputs {
            let a = try npz.array(o.name)
            // A cache written for another width (another network under the same key) is never used.
            guard a.shape == [count, o.width] else { return nil }
            sets[o.name] = Tensor(shape: a.shape, data: a.asFloat())
        }
        let notes =
            npz.keys.contains("notes")
            ? String(decoding: try npz.array("notes").asUInt8(), as: UTF8.self)
                .split(separator: "\n").map(String.init) : []
        return (FeatureSets(sets: sets, count: count), notes)
    }

    private func write(_ path: String, key: String, _ f: FeatureSets, outputs: [FeatureOutput], notes: [String]) throws {
        try FileManager.default.createDirectory(
            atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path,
            withIntermediateDirectories: true)
        var w = NPZWriter()
        for o in outputs { let t = f.sets[o.name]!; w.add(o.name, try NPYArray(float32: t.data, shape: t.shape)) }
        w.add("key", try NPYArray(uint8: Array(key.utf8), shape: [key.utf8.count]))
        let text = Array(notes.joined(separator: "\n").utf8)
        w.add("notes", try NPYArray(uint8: text, shape: [text.count]))
        try w.write(to: path)
    }

    /// FNV-1a 64-bit, hex.
    static func hash(_ s: String) -> String {
        var h: UInt64 = 0xcbf29ce484222325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        return String(format: "%016llx", h)
    }
}
