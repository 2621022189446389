import Foundation
import ImageIO
import Metrics
import Tensor

/// Metrics on the toy data with the toy classifier as the network (`varlab eval` without --inception, and
/// `varlab bench toy-quality`): its 128-d penultimate features replace Inception pool3 for toy-FID and toy
/// precision/recall, its logits give toy-IS and toy classifier accuracy. The numbers are only comparable with other
/// toy-classifier numbers, never with Inception FID; every metric name says "toy".
public struct ToyEvaluation {
    public let classifier: ToyClassifier
    public let path: String

    public init(path: String) throws {
        classifier = try ToyClassifier.load(path: path)
        self.path = path
    }

    public var network: String {
        "toy classifier (\(URL(fileURLWithPath: path).lastPathComponent), \(classifier.config.featureDim)-d features)"
    }

    /// Features and logits of RGB images; images of another size are ADM-center-cropped to the classifier's size.
    public func features(_ images: [Image8]) throws -> (features: Tensor, logits: Tensor) {
        let s = classifier.config.imageSize
        let inputs = try images.map { im in
            try (im.width == s && im.height == s ? im : Preprocess.admCenterCrop(im, size: s)).signedCHW()
        }
        guard !inputs.isEmpty else {
            return (Tensor(zeros: [0, classifier.config.featureDim]), Tensor(zeros: [0, classifier.config.classes]))
        }
        return classifier.evaluate(Tensor.cat(inputs, dim: 0))  // each [1, 3, S, S]
    }

    public func features(of set: ImageSet) throws -> (features: Tensor, logits: Tensor) {
        var images: [Image8] = []
        try set.forEachBatch(256) { images += $0 }
        return try features(images)
    }

    /// toy-FID / toy precision-recall against `reference` features, toy-IS and toy accuracy of the samples.
    public func report(
        samples: (features: Tensor, logits: Tensor), labels: [Int]?, reference: Tensor?, metrics: [MetricKind],
        explicit: Bool
    ) throws -> EvalReport {
        var r = EvalReport()
        r.preprocessing = "toy: \(classifier.config.imageSize) px, [-1, 1]"
        let n = samples.features.shape[0]
        func skip(_ what: String, _ why: String) throws {
            if explicit { throw MetricsError.input("\(what): \(why)") }
            r.notes.append("\(what) skipped: \(why)")
        }
        for m in metrics {
            switch m {
            case .fid:
                guard let reference else { try skip("toy-FID", "no reference images"); continue }
                let d = try FID.distance(
                    try GaussianStats(features: samples.features, what: "sample toy features"),
                    try GaussianStats(features: reference, what: "reference toy features"))
                r.values.append(MetricValue(name: "toy-FID", value: d, samples: n, reference: reference.shape[0], network: network))
            case .sfid:
                try skip("sFID", "it needs Inception's spatial features (give --inception)")
            case .is:
                let v = try InceptionScore.compute(logits: samples.logits, splits: .count(1))
                r.values.append(MetricValue(name: "toy-IS", value: v, samples: n, reference: nil, network: network))
            case .pr, .prdc:
                guard let reference else { try skip("toy precision/recall", "no reference images"); continue }
                if m == .pr {
                    let pr = try PrecisionRecall.compute(reference: reference, samples: samples.features)
                    r.values.append(
                        MetricValue(
                            name: "toy precision (k=3)", value: pr.precision, samples: n, reference: reference.shape[0], network: network))
                    r.values.append(
                        MetricValue(name: "toy recall (k=3)", value: pr.recall, samples: n, reference: reference.shape[0], network: network)
                    )
                } else {
                    let p = try PRDC.compute(real: reference, fake: samples.features)
                    for (name, v) in [
                        ("toy precision (prdc k=5)", p.precision), ("toy recall (prdc k=5)", p.recall),
                        ("toy density (k=5)", p.density), ("toy coverage (k=5)", p.coverage),
                    ] {
                        r.values.append(MetricValue(name: name, value: v, samples: n, reference: reference.shape[0], network: network))
                    }
                }
            case .acc:
                guard let labels else { try skip("toy accuracy", "the samples have no labels"); continue }
                let acc = try Accuracy(logits: samples.logits, labels: labels, k: 1)
                r.values.append(
                    MetricValue(name: "toy classifier accuracy", value: acc.top1, samples: acc.count, reference: nil, network: network))
                r.perClass = acc.perClass
            case .fdDINOv2, .cmmd:
                break  // RepresentationMetrics
            }
        }
        return r
    }
}
