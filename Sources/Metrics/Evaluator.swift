import Foundation
import ModelIO
import Tensor

/// The metrics `varlab eval` can compute.
public enum MetricKind: String, CaseIterable, Sendable {
    case fid, sfid, `is`, pr, prdc, acc
    /// Fréchet distance on DINOv2 features (dgm-eval) and CMMD on CLIP embeddings: `RepresentationMetrics`.
    case fdDINOv2 = "fd-dinov2", cmmd

    /// Computed from the Inception (or, in the toy path, the toy classifier) and the ImageNet classifier.
    public var usesInceptionOrClassifier: Bool { !RepresentationMetrics.kinds.contains(self) }
}

/// One line of the report.
public struct MetricValue: Sendable {
    public var name: String
    public var value: Double
    /// Samples behind the value (and reference points, when there is a reference side).
    public var samples: Int
    public var reference: Int?
    public var network: String
    /// How images became this network's input, when it differs from the report's (DINOv2, CLIP).
    public var preprocessing: String?
    /// The reference side came from statistics that do not say how many images made them (ADM's files).
    public var referenceCountUnknown = false

    public init(name: String, value: Double, samples: Int, reference: Int?, network: String, preprocessing: String? = nil) {
        self.name = name; self.value = value; self.samples = samples; self.reference = reference; self.network = network
        self.preprocessing = preprocessing
    }
}

public struct EvalReport: Sendable {
    public var values: [MetricValue] = []
    public var notes: [String] = []
    public var perClass: [Accuracy.ClassCount] = []
    public var preprocessing: String = ""
    public init() {}
}

/// Wires image sets, networks and formulas together the way ADM's evaluator does:
/// reference statistics come from the reference file's `mu`/`sigma` (`mu_s`/`sigma_s`) when present, else from
/// its images; IS is over the samples' no-bias logits; precision/recall compares pool3 features (k = 3).
public final class Evaluator {
    public let extractor: FeatureExtractor
    public var classifier: ResNet?
    public var isSplits: InceptionScore.Splits = .size(5000)
    /// Precision / recall distances: exact (default) or ADM's float16 distance block (`ADMPrecisionRecall`).
    public var admFloat16PrecisionRecall = false
    public var progress: ((String) -> ProgressHandler)?
    /// FD-DINOv2 / CMMD networks, when given.
    public var representations: RepresentationMetrics?

    public init(extractor: FeatureExtractor, classifier: ResNet?) {
        self.extractor = extractor; self.classifier = classifier
    }

    var networkName: String { "FID InceptionV3 (\(URL(fileURLWithPath: extractor.network.path).lastPathComponent))" }

    /// `explicit`: metrics the user asked for by name (a missing prerequisite is then an error, not a skip).
    public func run(samples: ImageSet, reference: ImageSet, metrics: [MetricKind], explicit: Bool) throws -> EvalReport {
        var report = EvalReport()
        report.preprocessing = extractor.preprocessing.rawValue
        let width = extractor.network.featureWidth
        let needsSampleFeatures = metrics.contains { $0 != .acc && $0.usesInceptionOrClassifier }
        guard samples.count > 0 else { throw MetricsError.input("\(samples.paths.joined(separator: ", ")): no sample images") }

        var sampleFeatures: InceptionFeatures?
        if needsSampleFeatures {
            sampleFeatures = try extractor.features(of: samples, progress: progress?("samples"))
            if extractor.lastFromCache { report.notes.append("sample features read from the cache") }
        }
        // Reference features: needed for pr / prdc always, for fid / sfid only without usable statistics.
        var refFeatures: InceptionFeatures?
        func refFeats() throws -> InceptionFeatures {
            if let refFeatures { return refFeatures }
            guard reference.count > 0 else {
                throw MetricsError.input(
                    "\(reference.paths.joined(separator: ", ")): holds statistics only, no images; the requested metric needs reference images"
                )
            }
            let f = try extractor.features(of: reference, progress: progress?("reference"))
            if extractor.lastFromCache { report.notes.append("reference features read from the cache") }
            refFeatures = f
            return f
        }
        /// Precomputed statistics of a set if usable with this network, else nil (with a note).
        func precomputed(_ set: ImageSet, _ s: GaussianStats?, expected: Int, _ what: String) throws -> GaussianStats? {
            guard let s else { return nil }
            if s.dim == expected {
                report.notes.append("\(what): precomputed statistics of \(set.paths[0]) used (as ADM's evaluator)")
                return s
            }
            if set.count > 0 {
                report.notes.append(
                    "\(what): \(set.paths[0]) holds \(s.dim)-dim statistics but this network gives \(expected); recomputed from its \(set.count) images"
                )
                return nil
            }
            throw MetricsError.widthMismatch(what: "\(what) statistics of \(set.paths[0]) vs the network's features", a: s.dim, b: expected)
        }

        for m in metrics {
            switch m {
            case .fid, .sfid:
                let f = sampleFeatures!
                let spatial = m == .sfid
                let feats = spatial ? f.spatial : f.pool3
                let dim = feats.shape[1]
                let name = spatial ? "sFID" : "FID"
                let sStats =
                    try precomputed(samples, spatial ? samples.spatialStats : samples.poolStats, expected: dim, "\(name) samples")
                    ?? GaussianStats(features: feats, what: "sample \(spatial ? "spatial " : "")features")
                var rStats = try precomputed(
                    reference, spatial ? reference.spatialStats : reference.poolStats, expected: dim, "\(name) reference")
                if rStats == nil {
                    if reference.count == 0 && !explicit {
                        report.notes.append("\(name) skipped: the reference has neither matching statistics nor images"); continue
                    }
                    let rf = try refFeats()
                    rStats = try GaussianStats(
                        features: spatial ? rf.spatial : rf.pool3, what: "reference \(spatial ? "spatial " : "")features")
                }
                var v = MetricValue(
                    name: name, value: try FID.distance(sStats, rStats!), samples: sStats.count ?? samples.count,
                    reference: rStats!.count, network: networkName)
                v.referenceCountUnknown = rStats!.count == nil
                report.values.append(v)
            case .is:
                let v = try InceptionScore.compute(logits: sampleFeatures!.logits, splits: isSplits)
                report.values.append(
                    MetricValue(name: "Inception Score", value: v, samples: samples.count, reference: nil, network: networkName))
            case .pr, .prdc:
                if reference.count == 0 && !explicit {
                    report.notes.append(
                        "\(m == .pr ? "precision/recall" : "density/coverage") skipped: the reference holds statistics only (no images)")
                    continue
                }
                let rf = try refFeats()
                guard rf.pool3.shape[1] == width else {
                    throw MetricsError.widthMismatch(what: "reference features", a: rf.pool3.shape[1], b: width)
                }
                if m == .pr {
                    let r =
                        admFloat16PrecisionRecall
                        ? try ADMPrecisionRecall.compute(reference: rf.pool3, samples: sampleFeatures!.pool3)
                        : try PrecisionRecall.compute(reference: rf.pool3, samples: sampleFeatures!.pool3)
                    let tag = admFloat16PrecisionRecall ? "k=3, ADM float16" : "k=3"
                    report.values.append(
                        MetricValue(
                            name: "Precision (\(tag))", value: r.precision, samples: samples.count, reference: reference.count,
                            network: networkName))
                    report.values.append(
                        MetricValue(
                            name: "Recall (\(tag))", value: r.recall, samples: samples.count, reference: reference.count,
                            network: networkName))
                } else {
                    let r = try PRDC.compute(real: rf.pool3, fake: sampleFeatures!.pool3)
                    for (n, v) in [
                        ("Precision (prdc k=5)", r.precision), ("Recall (prdc k=5)", r.recall), ("Density (k=5)", r.density),
                        ("Coverage (k=5)", r.coverage),
                    ] {
                        report.values.append(
                            MetricValue(name: n, value: v, samples: samples.count, reference: reference.count, network: networkName))
                    }
                }
            case .acc:
                guard let classifier else {
                    if !explicit { report.notes.append("accuracy skipped: no --classifier given"); continue }
                    throw MetricsError.input("accuracy needs a classifier (--classifier resnet50-*.pth)")
                }
                guard let labels = samples.labels else {
                    if !explicit { report.notes.append("accuracy skipped: the samples have no labels"); continue }
                    throw MetricsError.labelsMissing(what: samples.paths.joined(separator: ", "))
                }
                let logits = try classifierLogits(classifier, samples, progress: progress?("classifier"))
                let acc = try Accuracy(logits: logits, labels: labels)
                let net = "ResNet (\(URL(fileURLWithPath: classifier.path).lastPathComponent))"
                report.values.append(MetricValue(name: "Top-1 accuracy", value: acc.top1, samples: acc.count, reference: nil, network: net))
                report.values.append(MetricValue(name: "Top-5 accuracy", value: acc.top5, samples: acc.count, reference: nil, network: net))
                report.perClass = acc.perClass
            case .fdDINOv2, .cmmd:
                break  // RepresentationMetrics
            }
        }
        if let representations {
            try representations.run(samples: samples, reference: reference, metrics: metrics, explicit: explicit, into: &report)
        } else if explicit, let m = metrics.first(where: { !$0.usesInceptionOrClassifier }) {
            throw MetricsError.input("\(m.rawValue) needs its network (--dinov2 / --clip)")
        }
        report.notes = samples.notes + reference.notes + report.notes
        return report
    }

    /// `mu`, `sigma`, `mu_s`, `sigma_s` of a set in ADM's reference-batch layout (float64), plus the FD-DINOv2 /
    /// CMMD statistics of `representations` when set.
    public func saveStatistics(of set: ImageSet, to path: String) throws -> Int {
        let f = try extractor.features(of: set, progress: progress?("statistics"))
        let pool = try GaussianStats(features: f.pool3), spatial = try GaussianStats(features: f.spatial)
        var arrays: [(String, NPYArray)] = [
            ("mu", try NPYArray(float64: pool.mu, shape: [pool.dim])),
            ("sigma", try NPYArray(float64: pool.sigma, shape: [pool.dim, pool.dim])),
            ("mu_s", try NPYArray(float64: spatial.mu, shape: [spatial.dim])),
            ("sigma_s", try NPYArray(float64: spatial.sigma, shape: [spatial.dim, spatial.dim])),
            ("n_inception", try NPYArray(int64: [Int64(f.count)], shape: [1])),
        ]
        arrays += try representations?.statisticsArrays(of: set) ?? []
        try ReferenceStatistics.write(arrays, notes: set.notes, to: path)
        return f.count
    }
}

/// Writes a statistics `.npz` (ADM reference-batch keys and varlab's `*_dinov2` / `clip_*`, the image counts
/// `n_*` and the notes about the images, e.g. grey ones converted), atomically.
public enum ReferenceStatistics {
    public static func write(_ arrays: [(String, NPYArray)], notes: [String], to path: String) throws {
        guard !arrays.isEmpty else { throw MetricsError.input("\(path): no statistics to write (give --inception, --dinov2 or --clip)") }
        var w = NPZWriter()
        for (k, a) in arrays { w.add(k, a) }
        let text = Array(notes.joined(separator: "\n").utf8)
        w.add("notes", try NPYArray(uint8: text, shape: [text.count]))
        try w.write(to: path)
    }
}
