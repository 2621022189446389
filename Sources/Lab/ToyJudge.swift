import Foundation
import ImageIO
import Metrics
import Tensor
import Training

/// One quality row of the lab on toy data, judged by a toy classifier: toy-FID, precision / recall and density /
/// coverage (k = 5) against n held-out real images (set A), the classifier's top-1 on the asked classes, and the
/// within-class diversity relative to a disjoint real set B of the same size (1 = as varied as real images).
public final class ToyJudge {
    public let toy: ToyEvaluation
    public let n: Int
    let reference: Tensor
    let realB: (images: [Image8], labels: [Int])
    let realDiversity: Double

    /// The metric keys of a row, with their display names and whether larger is better.
    public static let metrics: [(key: String, name: String, higherIsBetter: Bool)] = [
        ("toy_fid", "toy-FID", false), ("precision", "precision", true), ("recall", "recall", true),
        ("density", "density", true), ("coverage", "coverage", true), ("accuracy", "classifier top-1", true),
        ("diversity", "within-class diversity (real = 1)", true), ("seconds_per_image", "s/image", false),
    ]

    public init(classifier: String, n: Int, dataSeed: UInt64) throws {
        guard n >= 20 else { throw LabError("a lab row needs at least 20 images (toy-FID needs a covariance), got \(n)") }
        toy = try ToyEvaluation(path: classifier)
        self.n = n
        let held = ToyDataset(seed: dataSeed, split: .heldout, size: toy.classifier.config.imageSize)
        reference = try toy.features((0..<n).map { held.image($0) }).features
        realB = ((n..<(2 * n)).map { held.image($0) }, (n..<(2 * n)).map { held.label($0) })
        let fb = try toy.features(realB.images).features
        guard let d = try WithinClassDiversity.meanPairwiseDistance(features: fb, labels: realB.labels), d > 0 else {
            throw LabError("the real toy set has no class with two images (n = \(n))")
        }
        realDiversity = d
    }

    /// The row of `images` asked to be of `labels`.
    public func row(images: [Image8], labels: [Int], secondsPerImage: Double) throws -> [String: Double] {
        let f = try toy.features(images)
        let r = try toy.report(samples: f, labels: labels, reference: reference, metrics: [.acc, .fid, .prdc], explicit: true)
        func value(_ name: String) -> Double { r.values.first { $0.name == name }?.value ?? .nan }
        return [
            "toy_fid": value("toy-FID"), "precision": value("toy precision (prdc k=5)"), "recall": value("toy recall (prdc k=5)"),
            "density": value("toy density (k=5)"), "coverage": value("toy coverage (k=5)"), "accuracy": value("toy classifier accuracy"),
            "diversity": (try WithinClassDiversity.meanPairwiseDistance(features: f.features, labels: labels) ?? .nan) / realDiversity,
            "seconds_per_image": secondsPerImage,
        ]
    }

    /// The bounds every table shows: real set B judged like a generator (the toy-FID floor for n images, the
    /// classifier's accuracy on real held-out images: the ceiling a generator can approach).
    public func realRow() throws -> [String: Double] { try row(images: realB.images, labels: realB.labels, secondsPerImage: 0) }
}
