import Autoencoders
import Foundation
import ModelIO
import Tensor

/// The frozen tokenizer's token maps of a training set, computed once (encoding is the expensive part; the
/// teacher-forcing inputs are rebuilt per batch from the tokens with the frozen quantiser, which is cheap).
/// Each image's tokens are stored in sequence order: scale 0, scale 1, ... (row-major grids), or only the
/// finest-scale single-step quantisation for the raster `ar` baseline.
public struct VARTokenSet {
    public enum Kind: String, Codable, Sendable {
        /// `img_to_idxBl`: all scales of the multi-scale residual quantiser (var, plain-ln).
        case multiScale = "multi-scale"
        /// The finest scale only: nearest code of every position of the full latent f (one quantisation step,
        /// no residual pyramid) - what a single-scale VQ tokenizer with this codebook gives (ar).
        case finestOnly = "finest-only"
    }
    public let kind: Kind
    public let labels: [Int]
    public let tokens: [UInt16]
    public let perImage: Int
    public let summary: String
    public var count: Int { labels.count }

    public init(kind: Kind, labels: [Int], tokens: [UInt16], perImage: Int, summary: String) {
        self.kind = kind; self.labels = labels; self.tokens = tokens; self.perImage = perImage; self.summary = summary
    }

    public func row(_ i: Int) -> ArraySlice<UInt16> { tokens[(i * perImage)..<((i + 1) * perImage)] }

    /// Encodes images 0..<count of `source` in batches (deterministic, the result does not depend on batch size
    /// or threads since every image is encoded independently).
    public static func encode(
        vae: VQVAE, source: LabeledImageSource, count: Int, kind: Kind, batchSize: Int = 50,
        progress: (Int) -> Void = { _ in }
    ) throws -> VARTokenSet {
        guard vae.quantizer.vocabSize <= 65536 else { throw TrainingError.config("vocabulary above 65536") }
        let n = min(count, source.count)
        guard n >= 1 else { throw TrainingError.data("no training images") }
        guard source.imageSize == vae.imageSize else {
            throw TrainingError.config("data images are \(source.imageSize)px, the VQ-VAE makes \(vae.imageSize)px")
        }
        let q = vae.quantizer
        let per = kind == .multiScale ? q.totalTokens : q.fullSize * q.fullSize
        var labels: [Int] = [], tokens: [UInt16] = []
        labels.reserveCapacity(n); tokens.reserveCapacity(n * per)
        var i = 0
        while i < n {
            let j = min(n, i + batchSize)
            let (x, y) = source.batch(Array(i..<j))
            let b = j - i
            let f = vae.encodeLatent(x)
            if kind == .multiScale {
                let maps = try q.tokens(latent: f)
                for s in 0..<b {
                    for (si, pn) in q.patchNums.enumerated() {
                        let l = pn * pn
                        tokens += maps[si][(s * l)..<((s + 1) * l)].map { UInt16($0) }
                    }
                }
            } else {
                tokens += q.finestOnlyTokens(latent: f).map { UInt16($0) }
            }
            labels += y
            i = j
            progress(i)
        }
        return VARTokenSet(
            kind: kind, labels: labels, tokens: tokens, perImage: per,
            summary: "\(n) images of \(source.summary), \(kind.rawValue) tokens")
    }

    /// f_hat of finest-only tokens: φ_last(embed(ids)) (no upsampling at full size), [B, C, H, W] - what the ar
    /// baseline's samples are decoded from.
    public static func finestFhat(_ ids: [Int], batch: Int, quantizer q: MultiScaleQuantizer) -> Tensor {
        q.contribution(ids, batch: batch, scale: q.patchNums.count - 1)
    }

    // MARK: cache file

    /// Identity of a cache: what the VQ-VAE does when encoding (`EncodingFingerprint`), which data, how many, which kind.
    public static func fingerprint(vaePath: String, dataSummary: String, count: Int, kind: Kind, patchNums: [Int]) throws -> String {
        "\(try EncodingFingerprint.of(vaePath: vaePath)); data \(dataSummary); n \(count); \(kind.rawValue); patch_nums \(patchNums)"
    }

    public func write(to path: String, fingerprint: String) throws {
        var w = SafetensorsWriter()
        w.add("tokens", shape: [count, perImage], int64: tokens.map { Int64($0) })
        w.add("labels", shape: [count], int64: labels.map { Int64($0) })
        w.metadata[.tokenCache] = fingerprint
        w.metadata[.kind] = kind.rawValue
        w.metadata[.summary] = summary
        try w.write(to: path)
    }

    /// Loads a cache written by `write` if its fingerprint matches, else nil (the caller re-encodes).
    public static func read(path: String, fingerprint: String) throws -> VARTokenSet? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let f = try SafetensorsFile(path: path)
        guard f.metadata[.tokenCache] == fingerprint, let kind = Kind(rawValue: f.metadata[.kind] ?? "") else { return nil }
        let t = try f.intTensor("tokens"), l = try f.intTensor("labels")
        guard t.shape.count == 2, l.shape == [t.shape[0]] else { throw TrainingError.data("\(path): malformed token cache") }
        return VARTokenSet(
            kind: kind, labels: l.values.map { Int($0) }, tokens: t.values.map { UInt16($0) }, perImage: t.shape[1],
            summary: f.metadata[.summary] ?? "")
    }
}
