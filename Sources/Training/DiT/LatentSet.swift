import Autoencoders
import Foundation
import ModelIO
import Tensor

/// Precomputed (unscaled) latents of a labelled image set, e.g. the tiny VQ-VAE's f-hat of N toy images, and
/// their scale factor 1 / std (over every latent value, like SD's 0.18215). `batch` returns latents * scale, so
/// the trainer sees unit-variance data, as the official DiT trainer sees `vae.encode(x) * 0.18215`.
public struct LatentSet: LabeledImageSource {
    public let latents: [Float]
    public let labels: [Int]
    /// [C, S, S] of one latent.
    public let latentShape: [Int]
    public let classCount: Int
    public let scale: Float
    public let summary: String

    public init(latents: [Float], labels: [Int], latentShape: [Int], classCount: Int, summary: String, scale: Float? = nil) {
        self.latents = latents; self.labels = labels; self.latentShape = latentShape
        self.classCount = classCount; self.summary = summary
        self.scale = scale ?? LatentSet.unitScale(latents)
    }

    /// 1 / std of all values (float64 sums).
    public static func unitScale(_ v: [Float]) -> Float {
        let n = Double(max(v.count, 1))
        let mean = v.reduce(0.0) { $0 + Double($1) } / n
        let variance = v.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n
        return Float(1 / max(variance.squareRoot(), 1e-12))
    }

    public var count: Int { labels.count }
    public var imageSize: Int { latentShape[1] }
    var per: Int { latentShape.reduce(1, *) }

    public func batch(_ indices: [Int]) -> (images: Tensor, labels: [Int]) {
        var out = [Float](repeating: 0, count: indices.count * per)
        for (i, idx) in indices.enumerated() {
            for j in 0..<per { out[i * per + j] = latents[idx * per + j] * scale }
        }
        return (Tensor(shape: [indices.count] + latentShape, data: out), indices.map { labels[$0] })
    }

    /// Encodes `count` images of `source` with the VQ-VAE (f-hat), `batchSize` at a time; `progress(done)`.
    public static func encode(
        source: LabeledImageSource, count: Int, codec: VQLatentCodec, batchSize: Int = 32,
        progress: (Int) -> Void = { _ in }
    ) throws -> LatentSet {
        var latents: [Float] = [], labels: [Int] = []
        var shape: [Int] = []
        var i = 0
        while i < count {
            let j = min(count, i + batchSize)
            let (x, y) = source.batch(Array(i..<j))
            let f = try codec.fhat(x)
            shape = Array(f.shape.dropFirst())
            latents += f.data; labels += y
            i = j
            progress(i)
        }
        return LatentSet(
            latents: latents, labels: labels, latentShape: shape, classCount: source.classCount,
            summary: "\(source.summary) encoded to \(shape) VQ-VAE f-hat")
    }

    /// Cache file (safetensors: `latents` [N, C, S, S], `labels` int64 [N]; metadata: summary, key).
    /// `key` identifies what was encoded (VQ-VAE file + data); a cache with another key is not used.
    /// Identity of a cache: what the VQ-VAE does when encoding (`EncodingFingerprint`), which data, how many.
    public static func cacheKey(vaePath: String, dataSummary: String, count: Int) throws -> String {
        "\(try EncodingFingerprint.of(vaePath: vaePath))|data=\(dataSummary)|n=\(count)"
    }

    public func write(path: String, key: String) throws {
        var w = SafetensorsWriter()
        w.add("latents", Tensor(shape: [count] + latentShape, data: latents))
        w.add("labels", shape: [count], int64: labels.map(Int64.init))
        w.metadata[.summary] = summary
        w.metadata[.key] = key
        w.metadata[.classes] = String(classCount)
        try w.write(to: path)
    }

    public static func read(path: String, key: String) throws -> LatentSet? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let f = try SafetensorsFile(path: path)
        guard f.metadata[.key] == key, let classes = Int(f.metadata[.classes] ?? "") else { return nil }
        let t = try f.floatTensor("latents")
        let labels = try f.intTensor("labels")
        return LatentSet(
            latents: t.data, labels: labels.values.map { Int($0) }, latentShape: Array(t.shape.dropFirst()),
            classCount: classes, summary: f.metadata[.summary] ?? "")
    }
}
