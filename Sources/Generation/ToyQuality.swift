import Autoencoders
import Foundation
import ImageIO
import Metrics
import Tensor
import Training

/// The quality yardstick of the toy models (`varlab bench toy-quality`, later the lab): the toy classifier's
/// accuracy and toy-FID of a set of images against `n` held-out real toy images (reference A = held-out 0..<n),
/// beside the bounds: a second, disjoint real set B (held-out n..<2n: the toy-FID floor for n images and the
/// classifier's ceiling) and the tokenizer's reconstructions of set B.
public final class ToyQuality {
    public struct Row {
        public var name: String
        public var accuracy: Double
        public var toyFID: Double
        public var seconds: Double
        public var perClass: [Accuracy.ClassCount]
    }

    public let toy: ToyEvaluation
    /// The real images: reference A = 0..<n, set B = n..<2n.
    public let real: IndexedImages
    public let n: Int
    /// Real set B (held-out n..<2n): the floor row's images and what `reconstructions` reconstructs.
    public let setB: [Image8]
    public let labelsB: [Int]
    private let reference: Tensor

    /// Against the toy data's held-out split (seed `dataSeed`).
    public convenience init(n: Int, dataSeed: UInt64, classifier path: String) throws {
        let toy = try ToyEvaluation(path: path)
        let held = ToyDataset(seed: dataSeed, split: .heldout, size: toy.classifier.config.imageSize)
        try self.init(n: n, real: ToySource(dataset: held, count: 2 * max(n, 0)), classifier: toy)
    }

    /// Against `real` (at least 2n images of the classifier's classes and size), e.g. an image folder's held-out part.
    public init(n: Int, real: IndexedImages, classifier toy: ToyEvaluation) throws {
        guard n >= 20 else { throw GenerationError("--n must be at least 20 (toy-FID needs a covariance)") }
        let c = toy.classifier.config
        guard real.count >= 2 * n else {
            throw GenerationError("\(real.summary): \(real.count) real images, the yardstick needs 2 x \(n) (two disjoint sets of n)")
        }
        guard real.classCount == c.classes else {
            throw GenerationError("\(real.summary) has \(real.classCount) classes, the classifier \(toy.path) \(c.classes)")
        }
        let first = real.image(0)
        guard first.width == c.imageSize, first.height == c.imageSize else {
            throw GenerationError(
                "\(real.summary): images are \(first.width)x\(first.height), the classifier \(toy.path) takes \(c.imageSize)")
        }
        self.toy = toy
        self.real = real
        self.n = n
        // Drawn once: set B serves three rows and the grids.
        setB = (n..<(2 * n)).map { real.image($0) }
        labelsB = (n..<(2 * n)).map { real.label($0) }
        reference = try toy.features((0..<n).map { real.image($0) }).features
    }

    /// Accuracy and toy-FID of `images` asked to be of classes `labels`.
    public func row(_ name: String, images: [Image8], labels: [Int], seconds: Double) throws -> Row {
        let r = try toy.report(
            samples: try toy.features(images), labels: labels, reference: reference, metrics: [.acc, .fid], explicit: true)
        let acc = r.values.first { $0.name == "toy classifier accuracy" }!.value
        let fid = r.values.first { $0.name == "toy-FID" }!.value
        return Row(name: name, accuracy: acc, toyFID: fid, seconds: seconds, perClass: r.perClass)
    }

    /// Set B through the tokenizer (encode, quantise, decode): the row, the reconstructions, and their
    /// mean-colour error per channel in 8-bit levels.
    public func reconstructions(_ vae: VQVAE, batchSize: Int) throws -> (row: Row, images: [Image8], colourError: [Double]) {
        let t0 = Date()
        var recon: [Image8] = []
        for b in stride(from: 0, to: n, by: batchSize) {
            let x = Tensor.cat(setB[b..<min(n, b + batchSize)].map { $0.signedCHW() }, dim: 0)
            let y = vae.decode(tokens: try vae.tokens(images: x))
            recon += (0..<y.shape[0]).map { Image8(signedCHW: y.slice0($0, $0 + 1)) }
        }
        let row = try self.row("VQ-VAE reconstructions of that set", images: recon, labels: labelsB, seconds: Date().timeIntervalSince(t0))
        return (row, recon, try ColourFidelity.meanColourError(originals: setB, reconstructions: recon))
    }

    /// Set B decoded from the f-hat of its first k token maps, for every k (1 ... S; k = S is the reconstruction):
    /// one row per prefix, so the per-class accuracies say at which scale each class becomes recognisable. A class
    /// that only appears at the last scale is drawn by VAR's final, parallel sampling step alone.
    public func scalePrefixRows(_ vae: VQVAE, batchSize: Int) throws -> [Row] {
        let t0 = Date()
        var previews = [[Image8]](repeating: [], count: vae.patchNums.count)
        for b in stride(from: 0, to: n, by: batchSize) {
            let x = Tensor.cat(setB[b..<min(n, b + batchSize)].map { $0.signedCHW() }, dim: 0)
            for (k, y) in vae.progressiveDecode(tokens: try vae.tokens(images: x)).enumerated() {
                previews[k] += (0..<y.shape[0]).map { Image8(signedCHW: y.slice0($0, $0 + 1)) }
            }
        }
        let seconds = Date().timeIntervalSince(t0)
        return try previews.enumerated().map { k, images in
            try row("first \(k + 1) scales (to \(vae.patchNums[k])x\(vae.patchNums[k]))", images: images, labels: labelsB, seconds: seconds)
        }
    }

    /// n samples of a generator at its settings, sample i of class i mod C with index i (as `varlab sample
    /// --class 0,...,C-1 --n n`); `progress` gets the number done.
    public func samples(
        _ name: String, generator: SampleGenerator, seed: UInt64, batchSize: Int,
        progress: (Int) -> Void = { _ in }
    ) throws -> (row: Row, images: [Image8]) {
        let (images, labels, secs) = try draw(generator, seed: seed, batchSize: batchSize, progress: progress)
        return (try row(name, images: images, labels: labels, seconds: secs), images)
    }

    /// The n samples every row is measured on: sample i of class i mod C with index i, in batches; with the
    /// asked labels and the wall seconds they took.
    public func draw(
        _ generator: SampleGenerator, seed: UInt64, batchSize: Int, progress: (Int) -> Void = { _ in }
    ) throws -> (images: [Image8], labels: [Int], seconds: Double) {
        let plan = try SamplePlan(classes: .list(Array(0..<toy.classifier.config.classes)), count: n)
        try plan.validate(numClasses: generator.numClasses)
        let requests = plan.requests(0..<plan.total)
        let t0 = Date()
        var images: [Image8] = []
        for b in stride(from: 0, to: requests.count, by: batchSize) {
            images += try generator.generate(Array(requests[b..<min(requests.count, b + batchSize)]), seed: seed) { _ in }
            progress(images.count)
        }
        return (images, requests.map(\.classLabel), Date().timeIntervalSince(t0))
    }

    // MARK: the lab's row

    /// The measures of a full quality row (the lab's), with display names and whether larger is better: toy-FID,
    /// precision / recall and density / coverage (k = 5) against reference A, top-1 on the asked classes, the
    /// within-class diversity relative to real set B (1 = as varied as real images), seconds per image.
    public static let measureKeys: [(key: String, name: String, higherIsBetter: Bool)] = [
        ("inception_fid", "Inception FID", false), ("toy_fid", "toy-FID", false), ("precision", "precision", true),
        ("recall", "recall", true),
        ("density", "density", true), ("coverage", "coverage", true), ("accuracy", "classifier top-1", true),
        ("diversity", "within-class diversity (real = 1)", true), ("seconds_per_image", "s/image", false),
    ]

    /// Within-class diversity of real set B (computed once, on first use).
    private lazy var realDiversity: Result<Double, Error> = Result {
        guard let d = try WithinClassDiversity.meanPairwiseDistance(features: try toy.features(setB).features, labels: labelsB), d > 0
        else { throw GenerationError("the real toy set has no class with two images (n = \(n))") }
        return d
    }

    /// With a network here, `measures` adds "inception_fid": FID on its pool3 features against real set A (the
    /// number papers report; on upsampled 64-pixel toy images it ranks models, it is not an ImageNet FID).
    public var inception: InceptionFeatureNetwork? {
        didSet { inceptionReference = nil }
    }
    private var inceptionReference: GaussianStats?

    func inceptionStats(_ images: [Image8]) throws -> GaussianStats {
        guard let net = inception else { throw GenerationError("no Inception network") }
        var pool3: [Float] = []
        for b in stride(from: 0, to: images.count, by: 16) {
            guard let f = try net.features(Array(images[b..<min(images.count, b + 16)]))["pool3"] else {
                throw GenerationError("\(net.name) gave no pool3 features")
            }
            pool3 += f.data
        }
        let width = pool3.count / max(images.count, 1)
        return try GaussianStats(features: Tensor(shape: [images.count, width], data: pool3), what: "Inception pool3 features")
    }

    /// Every measure of `measureKeys` for `images` asked to be of `labels` ("inception_fid" only with `inception`).
    public func measures(images: [Image8], labels: [Int], secondsPerImage: Double) throws -> [String: Double] {
        let f = try toy.features(images)
        let r = try toy.report(samples: f, labels: labels, reference: reference, metrics: [.acc, .fid, .prdc], explicit: true)
        func value(_ name: String) -> Double { r.values.first { $0.name == name }?.value ?? .nan }
        var extra: [String: Double] = [:]
        if inception != nil {
            if inceptionReference == nil { inceptionReference = try inceptionStats((0..<n).map { real.image($0) }) }
            extra["inception_fid"] = try FID.distance(try inceptionStats(images), inceptionReference!)
        }
        return extra.merging([
            "toy_fid": value("toy-FID"), "precision": value("toy precision (prdc k=5)"), "recall": value("toy recall (prdc k=5)"),
            "density": value("toy density (k=5)"), "coverage": value("toy coverage (k=5)"), "accuracy": value("toy classifier accuracy"),
            "diversity": (try WithinClassDiversity.meanPairwiseDistance(features: f.features, labels: labels) ?? .nan)
                / (try realDiversity.get()),
            "seconds_per_image": secondsPerImage,
        ]) { $1 }
    }

    /// The bounds every lab table shows: real set B measured like a generator (the toy-FID floor for n images, the
    /// classifier's accuracy on real held-out images: the ceiling a generator can approach).
    public func realMeasures() throws -> [String: Double] { try measures(images: setB, labels: labelsB, secondsPerImage: 0) }
}
