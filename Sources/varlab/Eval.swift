import ArgumentParser
import Foundation
import Generation
import ImageIO
import Metrics
import ModelIO
import Tensor
import Training

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "FID, sFID, Inception Score, precision/recall, density/coverage, classifier accuracy, FD-DINOv2 and CMMD of samples against a reference.",
        discussion: """
        SAMPLES: folders of PNG/JPEG (labels from labels.txt / labels.json beside them or from `class{C}_` file \
        names) or ADM sample batches (.npz with arr_0 uint8 NHWC, arr_1 labels); several are evaluated together \
        (shards). REFERENCE (the last path): the same kinds, or an ADM reference batch / --save-stats file with \
        precomputed mu, sigma, mu_s, sigma_s (used as ADM does). With --save-stats and a single path, only the \
        statistics of that set are written.
        Without --inception (and VARLAB_INCEPTION), the built-in toy classifier is the network: toy-FID, toy-IS, \
        toy precision/recall and toy classifier accuracy, for samples of the built-in toy models (never comparable \
        with Inception FID).
        FD-DINOv2 (--dinov2, as layer6ai-labs/dgm-eval) and CMMD (--clip, as google-research cmmd) need no \
        Inception and are computed whenever their network is given; unlike the official CMMD loader, every image \
        counts (none beyond the last full batch is dropped).
        """)

    @Argument(help: "SAMPLES... REFERENCE (sample shards first, the reference last).")
    var paths: [String]

    @Option(help: "Comma-separated metrics: fid,sfid,is,pr,prdc,acc,fd-dinov2,cmmd (default: all that the inputs and networks allow).")
    var metrics: String?

    @Option(help: "FID Inception weights: pytorch-fid's pt_inception-2015-12-05-*.pth or a safetensors conversion (default $VARLAB_INCEPTION).")
    var inception: String?

    @Option(help: "ImageNet classifier for accuracy: torchvision resnet50-*.pth (or safetensors).")
    var classifier: String?

    @Option(help: "DINOv2 backbone for FD-DINOv2: torch hub's dinov2_vit{s,b,l,g}14[_reg4]_pretrain.pth or a safetensors copy (default $VARLAB_DINOV2).")
    var dinov2: String?

    @Option(help: "Attention heads of the DINOv2 model (default: width / 64, as every hub model).")
    var dinov2Heads: Int?

    @Option(help: "CLIP for CMMD: a transformers openai/clip-vit-large-patch14-336 folder (model.safetensors or pytorch_model.bin + config.json) or its weights file (default $VARLAB_CLIP).")
    var clip: String?

    @Option(help: "Toy classifier for toy metrics when no --inception is given (default: the built-in assets/models/toy-classifier.safetensors).")
    var toyClassifier: String?

    @Option(help: "Inception preprocessing: tf (ADM evaluator, default) or pytorch-fid.")
    var preprocess: String = InceptionPreprocessing.tf.rawValue

    @Option(help: "Inception Score: number of equal contiguous splits (default: ADM's splits of 5000 samples).")
    var isSplits: Int?

    @Option(help: "Inception Score: samples per split, as ADM (default 5000).")
    var isSplitSize: Int = 5000

    @Flag(help: "Inception Score as torch-fidelity: rows shuffled by numpy RandomState(2020), then --is-splits (default 10) splits.")
    var isTorchFidelity = false

    @Flag(help: "Precision/recall with ADM's float16 distances (reproduces published ADM numbers; default: exact distances).")
    var prADMFloat16 = false

    @Option(help: "Write the results as JSON (atomically).")
    var json: String?

    @Option(help: "Write mu, sigma, mu_s, sigma_s of the reference (last path) in ADM's reference-batch layout.")
    var saveStats: String?

    @Option(help: "Feature cache folder (default $VARLAB_CACHE or ~/.cache/varlab/features).")
    var cacheDir: String?

    @Flag(help: "Do not read or write the feature cache.")
    var noCache = false

    @Option(help: "Images per network batch.")
    var batchSize: Int = 16

    @OptionGroup var common: CommonOptions

    func run() throws {
        try common.apply()
        guard let mode = InceptionPreprocessing(rawValue: preprocess) else {
            throw ValidationError("--preprocess must be one of \(InceptionPreprocessing.allCases.map(\.rawValue).joined(separator: ", ")), got '\(preprocess)'")
        }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        if let isSplits, isSplits < 1 { throw ValidationError("--is-splits must be at least 1") }
        guard isSplitSize >= 1 else { throw ValidationError("--is-split-size must be at least 1") }
        guard !paths.isEmpty else { throw ValidationError("give SAMPLES... REFERENCE") }
        guard paths.count >= 2 || saveStats != nil else {
            throw ValidationError("give at least one sample set and a reference (or --save-stats F with one set)")
        }
        var kinds: [MetricKind] = MetricKind.allCases
        let explicit = metrics != nil
        if let metrics {
            kinds = try metrics.split(separator: ",").map { s in
                let t = s.trimmingCharacters(in: .whitespaces).lowercased()
                guard let k = MetricKind(rawValue: t) else {
                    throw ValidationError("unknown metric '\(t)'; choose from \(MetricKind.allCases.map(\.rawValue).joined(separator: ","))")
                }
                return k
            }
        }
        if let dinov2Heads, dinov2Heads < 1 { throw ValidationError("--dinov2-heads must be at least 1") }
        // Outputs that could not be written are refused before any feature is computed.
        if let json { try AtomicFile.checkWritable(json, what: "--json") }
        if let saveStats { try AtomicFile.checkWritable(saveStats, what: "--save-stats") }
        let env = ProcessInfo.processInfo.environment
        let cache: String? = noCache ? nil : (cacheDir ?? env["VARLAB_CACHE"]
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/varlab/features").path)
        let representations = try representationMetrics(cacheDir: cache, env: env)
        if !explicit {
            kinds = kinds.filter { k in
                k == .fdDINOv2 ? representations.dinov2 != nil : k == .cmmd ? representations.clip != nil : true
            }
        }
        let inceptionPath = inception ?? env["VARLAB_INCEPTION"]
        // Only FD-DINOv2 / CMMD asked for, or only statistics to save without an Inception: no toy classifier.
        if !kinds.contains(where: \.usesInceptionOrClassifier)
            || (inceptionPath == nil && paths.count == 1 && (representations.dinov2 != nil || representations.clip != nil)) {
            return try runRepresentationsOnly(kinds: kinds, representations)
        }
        guard let inceptionPath else {
            return try runToy(kinds: kinds, explicit: explicit, representations)
        }
        let network = try InceptionV3(path: inceptionPath)
        let extractor = FeatureExtractor(network: network, preprocessing: mode, cacheDir: cache)
        extractor.batchSize = batchSize
        let resnet = try classifier.map { try ResNet(path: $0) }
        let evaluator = Evaluator(extractor: extractor, classifier: resnet)
        evaluator.isSplits = isTorchFidelity ? .torchFidelity(count: isSplits ?? 10, seed: 2020)
            : isSplits.map { .count($0) } ?? .size(isSplitSize)
        evaluator.admFloat16PrecisionRecall = prADMFloat16
        evaluator.progress = { label in Progress(label: label).handler }
        evaluator.representations = representations

        let reference = try ImageSet(paths: [paths.last!])
        if let saveStats {
            guard reference.count > 0 else { throw ValidationError("--save-stats needs images in \(paths.last!)") }
            let n = try evaluator.saveStatistics(of: reference, to: saveStats)
            note("wrote statistics of \(n) images (\(mode.rawValue) preprocessing\(statisticsNote(representations))) to \(saveStats)")
            if paths.count == 1 { return }
        }
        let samples = try ImageSet(paths: Array(paths.dropLast()))
        let report = try evaluator.run(samples: samples, reference: reference, metrics: kinds, explicit: explicit)
        try finish(report, samples: samples, reference: reference, inception: inceptionPath, classifier: classifier)
    }

    /// The DINOv2 / CLIP networks given by flag or environment (either may be absent).
    func representationMetrics(cacheDir: String?, env: [String: String]) throws -> RepresentationMetrics {
        let cache = FeatureCache(dir: cacheDir)
        cache.batchSize = batchSize
        let r = RepresentationMetrics(dinov2: try (dinov2 ?? env["VARLAB_DINOV2"]).map { DINOv2Features(try DINOv2(path: $0, heads: dinov2Heads)) },
                                      clip: try (clip ?? env["VARLAB_CLIP"]).map { CLIPFeatures(try CLIPVision(location: $0)) },
                                      cache: cache)
        r.progress = { label in Progress(label: label).handler }
        return r
    }

    func statisticsNote(_ r: RepresentationMetrics) -> String {
        [r.dinov2.map { "; \($0.name)" }, r.clip.map { "; \($0.name)" }].compactMap { $0 }.joined()
    }

    /// Only FD-DINOv2 / CMMD asked for: neither the Inception nor the toy classifier is loaded.
    func runRepresentationsOnly(kinds: [MetricKind], _ representations: RepresentationMetrics) throws {
        let reference = try ImageSet(paths: [paths.last!])
        if let saveStats {
            guard reference.count > 0 else { throw ValidationError("--save-stats needs images in \(paths.last!)") }
            try ReferenceStatistics.write(try representations.statisticsArrays(of: reference), notes: reference.notes, to: saveStats)
            note("wrote statistics of \(reference.count) images (\(statisticsNote(representations).dropFirst(2))) to \(saveStats)")
            if paths.count == 1 { return }
        }
        let samples = try ImageSet(paths: Array(paths.dropLast()))
        guard samples.count > 0 else { throw ValidationError("\(samples.paths.joined(separator: ", ")): no sample images") }
        var report = EvalReport()
        try representations.run(samples: samples, reference: reference, metrics: kinds, explicit: true, into: &report)
        report.notes = samples.notes + reference.notes + report.notes
        try finish(report, samples: samples, reference: reference, inception: "none", classifier: nil)
    }

    /// Prints the table and notes, writes --json.
    func finish(_ report: EvalReport, samples: ImageSet, reference: ImageSet, inception: String, classifier: String?) throws {
        print(report.table())
        for n in report.notes { note("note: \(n)") }
        if let json {
            try AtomicFile.write(try report.json(samples: samples.paths, reference: reference.paths[0], inception: inception, classifier: classifier), to: json)
            note("wrote \(json)")
        }
    }

    /// No Inception network given: the built-in toy classifier is the network (toy-FID etc., for toy samples).
    func runToy(kinds: [MetricKind], explicit: Bool, _ representations: RepresentationMetrics) throws {
        guard classifier == nil else { throw ValidationError("--classifier is an ImageNet ResNet: give --inception too, or neither for toy metrics") }
        let path = try toyClassifier ?? BuiltinModels.path(BuiltinModels.classifier, instead: "--inception (Inception FID) or --toy-classifier")
        note("no --inception (nor VARLAB_INCEPTION): using the toy classifier \(path) as the network; toy-FID and the other toy metrics are only comparable with toy metrics, not with Inception FID")
        let toy = try ToyEvaluation(path: path)
        let reference = try ImageSet(paths: [paths.last!])
        if let saveStats {
            // Toy-classifier statistics are not saved (they are only ever compared within one run).
            guard representations.dinov2 != nil || representations.clip != nil else {
                throw ValidationError("--save-stats writes Inception, DINOv2 or CLIP statistics: give --inception, --dinov2 or --clip")
            }
            guard reference.count > 0 else { throw ValidationError("--save-stats needs images in \(paths.last!)") }
            try ReferenceStatistics.write(try representations.statisticsArrays(of: reference), notes: reference.notes, to: saveStats)
            note("wrote statistics of \(reference.count) images (\(statisticsNote(representations).dropFirst(2)); toy statistics are not saved) to \(saveStats)")
            if paths.count == 1 { return }
        }
        let samples = try ImageSet(paths: Array(paths.dropLast()))
        guard samples.count > 0 else { throw ValidationError("\(samples.paths.joined(separator: ", ")): no sample images") }
        let sf = try toy.features(of: samples)
        let rf = reference.count > 0 ? try toy.features(of: reference).features : nil
        var report = try toy.report(samples: sf, labels: samples.labels, reference: rf, metrics: kinds, explicit: explicit)
        try representations.run(samples: samples, reference: reference, metrics: kinds, explicit: explicit, into: &report)
        report.notes = samples.notes + reference.notes + report.notes
        try finish(report, samples: samples, reference: reference, inception: "none (toy classifier \(path))", classifier: path)
    }
}

/// Progress on stderr (at most twice a second): images done, images/s, ETA.
final class Progress: @unchecked Sendable {
    let label: String
    var last = Date.distantPast
    init(label: String) { self.label = label }
    var handler: ProgressHandler {
        { [self] done, total, elapsed in
            let now = Date()
            guard done == total || now.timeIntervalSince(last) >= 0.5 else { return }
            last = now
            let rate = elapsed > 0 ? Double(done) / elapsed : 0
            let eta = rate > 0 ? Double(total - done) / rate : 0
            let s = String(format: "\r%@: %d/%d images  %.1f images/s  ETA %d:%02d:%02d", label, done, total, rate,
                           Int(eta) / 3600, Int(eta) / 60 % 60, Int(eta) % 60)
            FileHandle.standardError.write((s + (done == total ? "\n" : "")).data(using: .utf8)!)
        }
    }
}
