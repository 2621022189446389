import Foundation
import ImageIO
import ModelIO
import Tensor

/// One set of images for evaluation: a folder of PNG/JPEG files, an ADM sample batch `.npz` (`arr_0` uint8
/// NHWC, optional `arr_1` labels), an ADM reference batch (`arr_0` plus precomputed `mu`, `sigma`, `mu_s`,
/// `sigma_s`), a statistics-only `.npz` (as `--save-stats` writes), or several of these together (shards,
/// concatenated in the order given). Images are streamed in batches; nothing holds the whole set.
///
/// Documented conversions (each reported in `notes`): grayscale -> RGB by replicating the channel, RGBA ->
/// RGB by dropping alpha (PIL's `convert('RGB')`, what pytorch-fid does); images of different sizes are each
/// resized by the network's own preprocessing.
public final class ImageSet {
    public enum Part {
        case folder(path: String, files: [String])
        case npz(path: String, count: Int)
    }

    public let paths: [String]
    public private(set) var parts: [Part] = []
    /// Number of images (0 for a statistics-only file).
    public private(set) var count = 0
    /// Labels of every image, when all parts have them.
    public private(set) var labels: [Int]?
    /// Precomputed statistics found in a single `.npz` (ADM reference batch layout).
    public private(set) var poolStats: GaussianStats?
    public private(set) var spatialStats: GaussianStats?
    /// FD-DINOv2 statistics (`mu_dinov2`, `sigma_dinov2`) and the network that made them (`dinov2_network`).
    public private(set) var dinov2Stats: GaussianStats?
    public private(set) var dinov2Network: String?
    /// CMMD reference embeddings (`clip_embeddings`, [N, P]; CMMD needs them all, not a summary) and their network.
    public private(set) var clipEmbeddings: Tensor?
    public private(set) var clipNetwork: String?
    /// Whether the single `.npz` given holds any precomputed statistics.
    public var hasStatistics: Bool { poolStats != nil || dinov2Stats != nil || clipEmbeddings != nil }
    public private(set) var notes: [String] = []
    /// A fingerprint of the inputs (paths, sizes, modification times) for the feature cache.
    public private(set) var fingerprint = ""

    static let imageExtensions: Set<String> = ["png", "jpg", "jpeg"]
    static let otherImageExtensions: Set<String> = ["webp", "bmp", "tif", "tiff", "gif"]

    public init(paths: [String]) throws {
        guard !paths.isEmpty else { throw MetricsError.input("no input given") }
        self.paths = paths
        var allLabels: [Int]? = []
        var fp: [String] = []
        for p in paths {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else {
                throw MetricsError.input("\(p): no such file or folder")
            }
            if isDir.boolValue {
                let (files, labels) = try ImageSet.scanFolder(p, notes: &notes)
                parts.append(.folder(path: p, files: files))
                count += files.count
                if let labels, allLabels != nil { allLabels! += labels } else { allLabels = nil }
                for f in files { fp.append(ImageSet.stamp(f)) }
            } else {
                let npz = try NPZFile(path: p)
                let keys = Set(npz.keys)
                if !keys.isDisjoint(with: ImageSet.statisticsKeys) {
                    guard paths.count == 1 else {
                        throw MetricsError.input("\(p) holds precomputed statistics; it cannot be combined with other shards")
                    }
                    try readStats(npz, keys: keys)
                }
                if keys.contains("arr_0") {
                    let h = try npz.header("arr_0")
                    guard h.dtype == .uint8, h.shape.count == 4, [1, 3, 4].contains(h.shape[3]) else {
                        throw MetricsError.input(
                            "\(p): arr_0 must be uint8 N x H x W x C (C = 1, 3 or 4) as ADM writes it, got \(h.dtype.rawValue) \(h.shape)")
                    }
                    if h.shape[3] != 3 {
                        notes.append(
                            "\(p): \(h.shape[3]) channel(s) converted to RGB (\(h.shape[3] == 1 ? "replicated" : "alpha dropped"))")
                    }
                    parts.append(.npz(path: p, count: h.shape[0]))
                    count += h.shape[0]
                    if keys.contains("arr_1") {
                        let l = try npz.array("arr_1").asInt64().map { Int($0) }
                        guard l.count == h.shape[0] else {
                            throw MetricsError.labelCount(what: "\(p) arr_1", labels: l.count, samples: h.shape[0])
                        }
                        if allLabels != nil { allLabels! += l }
                    } else {
                        allLabels = nil
                    }
                } else if !hasStatistics {
                    throw MetricsError.input(
                        "\(p): neither images (arr_0) nor statistics (mu, sigma / mu_dinov2, sigma_dinov2 / clip_embeddings) found; keys: \(npz.keys.joined(separator: ", "))"
                    )
                } else {
                    allLabels = nil
                }
                fp.append(ImageSet.stamp(p))
            }
        }
        labels = (allLabels?.count == count && count > 0) ? allLabels : nil
        fingerprint = fp.joined(separator: "|")
    }

    /// Keys that make an `.npz` a statistics file (ADM reference batches and `varlab eval --save-stats`).
    static let statisticsKeys: Set<String> = ["mu", "sigma", "mu_dinov2", "sigma_dinov2", "clip_embeddings"]

    private func readStats(_ npz: NPZFile, keys: Set<String>) throws {
        let p = npz.path
        func stats(_ m: String, _ s: String) throws -> GaussianStats {
            for k in [m, s] where !keys.contains(k) {
                throw MetricsError.input("\(p): has \(k == m ? s : m) but no '\(k)'")
            }
            let mu = try npz.array(m), sigma = try npz.array(s)
            let d = mu.shape.first ?? 0
            guard mu.shape.count == 1, sigma.shape == [d, d], d > 0 else {
                throw MetricsError.input("\(p): \(m) \(mu.shape) / \(s) \(sigma.shape) are not a mean vector and its square covariance")
            }
            let g: GaussianStats
            do { g = try GaussianStats(mu: mu.asDouble(), sigma: sigma.asDouble()) } catch {
                throw MetricsError.input("\(p): \(m)/\(s): \(error)")
            }
            try g.checkCovariance(what: "\(p): \(s)")
            return g
        }
        func text(_ k: String) throws -> String? {
            guard keys.contains(k) else { return nil }
            let a = try npz.array(k)
            guard a.dtype == .uint8, a.shape.count == 1, let s = String(bytes: try a.asUInt8(), encoding: .utf8) else {
                throw MetricsError.input("\(p): \(k) must be a uint8 array of UTF-8 text")
            }
            return s
        }
        /// `n_<kind>`: how many images varlab's --save-stats computed them from (ADM's files do not say).
        func count(_ k: String) throws -> Int? {
            guard keys.contains(k) else { return nil }
            let v = try npz.array(k).asInt64()
            guard v.count == 1, v[0] >= 2 else { throw MetricsError.input("\(p): \(k) must be one count of at least 2") }
            return Int(v[0])
        }
        if let t = try text("notes"), !t.isEmpty {
            for line in t.split(separator: "\n") { note("\(p) was computed from images where: \(line)") }
        }
        if keys.contains("mu") || keys.contains("sigma") {
            poolStats = try stats("mu", "sigma"); poolStats?.count = try count("n_inception")
        }
        if keys.contains("mu_s") || keys.contains("sigma_s") {
            spatialStats = try stats("mu_s", "sigma_s"); spatialStats?.count = try count("n_inception")
        }
        if keys.contains("mu_dinov2") || keys.contains("sigma_dinov2") {
            dinov2Stats = try stats("mu_dinov2", "sigma_dinov2")
            dinov2Stats?.count = try count("n_dinov2")
            dinov2Network = try text("dinov2_network")
        }
        if keys.contains("clip_embeddings") {
            let a = try npz.array("clip_embeddings")
            guard a.shape.count == 2, a.shape[0] > 0, a.shape[1] > 0, a.dtype == .float32 else {
                throw MetricsError.input("\(p): clip_embeddings must be float32 [N, D], got \(a.dtype.rawValue) \(a.shape)")
            }
            let t = Tensor(shape: a.shape, data: a.asFloat())
            try requireFinite(t.data, columns: a.shape[1], what: "\(p) clip_embeddings")
            clipEmbeddings = t
            clipNetwork = try text("clip_network")
        }
    }

    /// Adds a note once (several networks pass over the same set).
    func note(_ text: String) { if !notes.contains(text) { notes.append(text) } }

    /// Notes about the images behind features read from a cache or a statistics file (the pass that made
    /// them saw the images; this run did not).
    func restoreNotes(_ texts: [String]) { for t in texts { note(t) } }

    static func stamp(_ path: String) -> String {
        let a = try? FileManager.default.attributesOfItem(atPath: path)
        let size = (a?[.size] as? NSNumber)?.intValue ?? -1
        let mtime = (a?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        return "\(URL(fileURLWithPath: path).standardizedFileURL.path):\(size):\(mtime)"
    }

    /// Image files of a folder (sorted by name) and their labels if any: `labels.txt` / `labels.json` beside
    /// them, else names written by `varlab sample` (`class{C}_...`).
    static func scanFolder(_ dir: String, notes: inout [String]) throws -> ([String], [Int]?) {
        let all = try FileManager.default.contentsOfDirectory(atPath: dir)
        let names = all.filter { imageExtensions.contains(URL(fileURLWithPath: $0).pathExtension.lowercased()) }.sorted()
        guard !names.isEmpty else { throw MetricsError.input("\(dir): no PNG/JPEG images in this folder") }
        // Other image formats are not read; say so rather than evaluate a silently smaller set.
        let skipped = all.filter { otherImageExtensions.contains(URL(fileURLWithPath: $0).pathExtension.lowercased()) }
        if !skipped.isEmpty {
            notes.append(
                "\(dir): \(skipped.count) image(s) in formats varlab does not read were skipped (e.g. \(skipped.sorted()[0]); convert them to PNG)"
            )
        }
        let files = names.map { URL(fileURLWithPath: dir).appendingPathComponent($0).path }
        let labels = try LabelFile.labels(folder: dir, names: names)
        return (files, labels)
    }

    /// Calls `body` with consecutive batches of RGB images (at most `batch` each), in set order.
    public func forEachBatch(_ batch: Int, _ body: ([Image8]) throws -> Void) throws {
        var sizes = Set<[Int]>()
        var noted = Set<String>()
        func rgb(_ img: Image8, _ source: String) throws -> Image8 {
            sizes.insert([img.width, img.height])
            switch img.channels {
            case 3: return img
            case 1:
                if noted.insert("gray").inserted { note("grayscale images converted to RGB (channel replicated), e.g. \(source)") }
                return Image8(width: img.width, height: img.height, channels: 3, pixels: img.pixels.flatMap { [$0, $0, $0] })
            case 4:
                if noted.insert("rgba").inserted { note("RGBA images converted to RGB (alpha dropped), e.g. \(source)") }
                var px = [UInt8](repeating: 0, count: img.width * img.height * 3)
                for i in 0..<(img.width * img.height) { for c in 0..<3 { px[i * 3 + c] = img.pixels[i * 4 + c] } }
                return Image8(width: img.width, height: img.height, channels: 3, pixels: px)
            case 2:
                if noted.insert("gray+alpha").inserted { note("gray+alpha images converted to RGB (alpha dropped), e.g. \(source)") }
                var px = [UInt8](repeating: 0, count: img.width * img.height * 3)
                for i in 0..<(img.width * img.height) { for c in 0..<3 { px[i * 3 + c] = img.pixels[i * 2] } }
                return Image8(width: img.width, height: img.height, channels: 3, pixels: px)
            default:
                throw MetricsError.input("\(source): \(img.channels) channels")
            }
        }
        for part in parts {
            switch part {
            case let .folder(_, files):
                for start in stride(from: 0, to: files.count, by: batch) {
                    let imgs = try files[start..<min(start + batch, files.count)].map { try rgb(ImageFile.read(path: $0), $0) }
                    try body(imgs)
                }
            case let .npz(path, _):
                let npz = try NPZFile(path: path)
                try npz.forEachRowChunk("arr_0", rows: batch) { chunk in
                    let (n, h, w, c) = (chunk.shape[0], chunk.shape[1], chunk.shape[2], chunk.shape[3])
                    let bytes = [UInt8](chunk.data)
                    let per = h * w * c
                    try body(
                        (0..<n).map { i in
                            try rgb(Image8(width: w, height: h, channels: c, pixels: Array(bytes[(i * per)..<((i + 1) * per)])), path)
                        })
                }
            }
        }
        if sizes.count > 1 {
            let list = sizes.sorted { $0.lexicographicallyPrecedes($1) }.prefix(4).map { "\($0[0])x\($0[1])" }.joined(separator: ", ")
            note(
                "images of \(sizes.count) different sizes (\(list)\(sizes.count > 4 ? ", ..." : "")): each is resized on its own by the network's preprocessing"
            )
        }
    }
}

/// Labels of a folder of images.
///
/// - `labels.txt`: one line per image; either `label` alone (lines in the sorted file-name order) or
///   `file-name label`.
/// - `labels.json`: an array of labels (sorted file-name order) or an object `{"file-name": label}`.
/// - otherwise file names starting `class{C}_` (as `varlab sample` writes them), when every file has one.
enum LabelFile {
    static func labels(folder: String, names: [String]) throws -> [Int]? {
        let dir = URL(fileURLWithPath: folder)
        let txt = dir.appendingPathComponent("labels.txt").path
        let json = dir.appendingPathComponent("labels.json").path
        if FileManager.default.fileExists(atPath: txt) {
            let lines = try String(contentsOfFile: txt, encoding: .utf8).split(whereSeparator: \.isNewline)
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            let pairs = lines.map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," }).map(String.init) }
            if pairs.allSatisfy({ $0.count == 1 }) {
                guard lines.count == names.count else {
                    throw MetricsError.labelCount(what: txt, labels: lines.count, samples: names.count)
                }
                return try pairs.enumerated().map { i, p in
                    guard let v = Int(p[0]) else { throw MetricsError.input("\(txt):\(i + 1): '\(p[0])' is not a class index") }
                    return v
                }
            }
            var map: [String: Int] = [:]
            for (i, p) in pairs.enumerated() {
                guard p.count == 2, let v = Int(p[1]) else { throw MetricsError.input("\(txt):\(i + 1): expected 'file label'") }
                map[p[0]] = v
            }
            return try names.map { n in
                guard let v = map[n] else { throw MetricsError.input("\(txt): no label for \(n)") }
                return v
            }
        }
        if FileManager.default.fileExists(atPath: json) {
            let obj = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json)))
            if let arr = obj as? [Int] {
                guard arr.count == names.count else { throw MetricsError.labelCount(what: json, labels: arr.count, samples: names.count) }
                return arr
            }
            if let dict = obj as? [String: Int] {
                return try names.map { n in
                    guard let v = dict[n] else { throw MetricsError.input("\(json): no label for \(n)") }
                    return v
                }
            }
            throw MetricsError.input("\(json): expected an array of class indices or an object {file: class}")
        }
        let fromNames = names.map { classFromName($0) }
        if fromNames.allSatisfy({ $0 != nil }) { return fromNames.map { $0! } }
        return nil
    }

    /// `class207_000012.png` -> 207.
    static func classFromName(_ name: String) -> Int? {
        guard name.hasPrefix("class") else { return nil }
        let digits = name.dropFirst(5).prefix { $0.isNumber }
        guard !digits.isEmpty, name.dropFirst(5 + digits.count).first == "_" else { return nil }
        return Int(digits)
    }
}
