import Foundation
import Metrics
import ModelIO
import Training

/// One `varlab eval` run as a request: sample sets, a reference, the networks, the metrics. The network chooses
/// the path: an InceptionV3 (ADM's evaluator: FID, sFID, IS, precision / recall, density / coverage, and ImageNet
/// classifier accuracy with a ResNet), else the toy classifier (toy metrics, only comparable among themselves);
/// DINOv2 / CLIP add FD-DINOv2 / CMMD on either path, or alone.
public struct EvaluationRequest {
    /// Sample sets (folders or ADM .npz; evaluated together), then the reference last.
    public var paths: [String]
    /// nil = every metric the inputs and networks allow; given = exactly these (a missing input is an error).
    public var metrics: [MetricKind]?
    public var inception: String?
    public var preprocessing: InceptionPreprocessing = .tf
    /// ImageNet classifier (torchvision ResNet-50) for accuracy on the Inception path.
    public var classifier: String?
    public var dinov2: String?
    public var dinov2Heads: Int?
    public var clip: String?
    /// The toy classifier for the toy path (default: the built-in one).
    public var toyClassifier: String?
    public var isSplits: InceptionScore.Splits = .size(5000)
    public var prADMFloat16 = false
    /// Also write the reference's statistics (ADM reference-batch layout) here.
    public var saveStats: String?
    /// Feature cache folder; nil = no cache.
    public var cacheDir: String?
    public var batchSize = 16

    public init(paths: [String]) { self.paths = paths }
}

/// What an evaluation produced: the report and what it was computed from (for the JSON).
public struct EvaluationResult {
    public var report: EvalReport
    public var samples: [String]
    public var reference: String
    /// The Inception file, "none", or "none (toy classifier PATH)".
    public var inception: String
    public var classifier: String?
}

public enum EvaluationRun {
    /// Runs the request. `log` gets notes for the user (which network, statistics written); `progress` makes a
    /// progress handler for a labelled pass over a set. Returns nil when only statistics were asked for.
    public static func run(
        _ q: EvaluationRequest, log: (String) -> Void,
        progress: ((String) -> ProgressHandler)? = nil
    ) throws -> EvaluationResult? {
        guard q.batchSize >= 1 else { throw GenerationError("--batch-size must be at least 1") }
        guard !q.paths.isEmpty else { throw GenerationError("give SAMPLES... REFERENCE") }
        guard q.paths.count >= 2 || q.saveStats != nil else {
            throw GenerationError("give at least one sample set and a reference (or --save-stats F with one set)")
        }
        if let h = q.dinov2Heads, h < 1 { throw GenerationError("--dinov2-heads must be at least 1") }
        // Outputs that could not be written are refused before any feature is computed.
        if let s = q.saveStats { try AtomicFile.checkWritable(s, what: "--save-stats") }
        let explicit = q.metrics != nil
        var kinds = q.metrics ?? MetricKind.allCases
        let cache = FeatureCache(dir: q.cacheDir)
        cache.batchSize = q.batchSize
        let representations = RepresentationMetrics(
            dinov2: try q.dinov2.map { DINOv2Features(try DINOv2(path: $0, heads: q.dinov2Heads)) },
            clip: try q.clip.map { CLIPFeatures(try CLIPVision(location: $0)) }, cache: cache)
        representations.progress = progress
        if !explicit {
            kinds = kinds.filter { k in
                k == .fdDINOv2 ? representations.dinov2 != nil : k == .cmmd ? representations.clip != nil : true
            }
        }
        let statsNote = [representations.dinov2.map { "; \($0.name)" }, representations.clip.map { "; \($0.name)" }].compactMap { $0 }
            .joined()
        let referencePath = q.paths.last!
        let reference = try ImageSet(paths: [referencePath])
        func requireReferenceImages() throws {
            guard reference.count > 0 else { throw GenerationError("--save-stats needs images in \(referencePath)") }
        }
        func sampleSet() throws -> ImageSet {
            let samples = try ImageSet(paths: Array(q.paths.dropLast()))
            guard samples.count > 0 else { throw GenerationError("\(samples.paths.joined(separator: ", ")): no sample images") }
            return samples
        }
        func result(_ report: EvalReport, _ samples: ImageSet, inception: String, classifier: String?) -> EvaluationResult {
            EvaluationResult(
                report: report, samples: samples.paths, reference: reference.paths[0], inception: inception, classifier: classifier)
        }

        // Only FD-DINOv2 / CMMD asked for, or only statistics to save without an Inception: no Inception, no toy classifier.
        if !kinds.contains(where: \.usesInceptionOrClassifier)
            || (q.inception == nil && q.paths.count == 1 && (representations.dinov2 != nil || representations.clip != nil))
        {
            if let s = q.saveStats {
                try requireReferenceImages()
                try ReferenceStatistics.write(try representations.statisticsArrays(of: reference), notes: reference.notes, to: s)
                log("wrote statistics of \(reference.count) images (\(statsNote.dropFirst(2))) to \(s)")
                if q.paths.count == 1 { return nil }
            }
            let samples = try sampleSet()
            var report = EvalReport()
            try representations.run(samples: samples, reference: reference, metrics: kinds, explicit: true, into: &report)
            report.notes = samples.notes + reference.notes + report.notes
            return result(report, samples, inception: "none", classifier: nil)
        }

        guard let inceptionPath = q.inception else {
            // No Inception network: the toy classifier is the network (toy-FID etc., for toy samples).
            guard q.classifier == nil else {
                throw GenerationError("--classifier is an ImageNet ResNet: give --inception too, or neither for toy metrics")
            }
            let path =
                try q.toyClassifier
                ?? BuiltinModels.path(BuiltinModels.classifier, instead: "--inception (Inception FID) or --toy-classifier")
            log(
                "no --inception (nor VARLAB_INCEPTION): using the toy classifier \(path) as the network; toy-FID and the other toy metrics are only comparable with toy metrics, not with Inception FID"
            )
            let toy = try ToyEvaluation(path: path)
            if let s = q.saveStats {
                // Toy-classifier statistics are not saved (they are only ever compared within one run).
                guard representations.dinov2 != nil || representations.clip != nil else {
                    throw GenerationError("--save-stats writes Inception, DINOv2 or CLIP statistics: give --inception, --dinov2 or --clip")
                }
                try requireReferenceImages()
                try ReferenceStatistics.write(try representations.statisticsArrays(of: reference), notes: reference.notes, to: s)
                log("wrote statistics of \(reference.count) images (\(statsNote.dropFirst(2)); toy statistics are not saved) to \(s)")
                if q.paths.count == 1 { return nil }
            }
            let samples = try sampleSet()
            let sf = try toy.features(of: samples)
            let rf = reference.count > 0 ? try toy.features(of: reference).features : nil
            var report = try toy.report(samples: sf, labels: samples.labels, reference: rf, metrics: kinds, explicit: explicit)
            try representations.run(samples: samples, reference: reference, metrics: kinds, explicit: explicit, into: &report)
            report.notes = samples.notes + reference.notes + report.notes
            return result(report, samples, inception: "none (toy classifier \(path))", classifier: path)
        }

        let extractor = FeatureExtractor(
            network: try InceptionV3(path: inceptionPath), preprocessing: q.preprocessing, cacheDir: q.cacheDir)
        extractor.batchSize = q.batchSize
        let evaluator = Evaluator(extractor: extractor, classifier: try q.classifier.map { try ResNet(path: $0) })
        evaluator.isSplits = q.isSplits
        evaluator.admFloat16PrecisionRecall = q.prADMFloat16
        evaluator.progress = progress
        evaluator.representations = representations
        if let s = q.saveStats {
            try requireReferenceImages()
            let n = try evaluator.saveStatistics(of: reference, to: s)
            log("wrote statistics of \(n) images (\(q.preprocessing.rawValue) preprocessing\(statsNote)) to \(s)")
            if q.paths.count == 1 { return nil }
        }
        let samples = try ImageSet(paths: Array(q.paths.dropLast()))
        let report = try evaluator.run(samples: samples, reference: reference, metrics: kinds, explicit: explicit)
        return result(report, samples, inception: inceptionPath, classifier: q.classifier)
    }
}
