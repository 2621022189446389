import ArgumentParser
import Foundation
import Generation
import Metrics
import ModelIO

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract:
            "FID, sFID, Inception Score, precision/recall, density/coverage, classifier accuracy, FD-DINOv2 and CMMD of samples against a reference.",
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

    @Option(
        help: "FID Inception weights: pytorch-fid's pt_inception-2015-12-05-*.pth or a safetensors conversion (default $VARLAB_INCEPTION).")
    var inception: String?

    @Option(help: "ImageNet classifier for accuracy: torchvision resnet50-*.pth (or safetensors).")
    var classifier: String?

    @Option(
        help:
            "DINOv2 backbone for FD-DINOv2: torch hub's dinov2_vit{s,b,l,g}14[_reg4]_pretrain.pth or a safetensors copy (default $VARLAB_DINOV2)."
    )
    var dinov2: String?

    @Option(help: "Attention heads of the DINOv2 model (default: width / 64, as every hub model).")
    var dinov2Heads: Int?

    @Option(
        help:
            "CLIP for CMMD: a transformers openai/clip-vit-large-patch14-336 folder (model.safetensors or pytorch_model.bin + config.json) or its weights file (default $VARLAB_CLIP)."
    )
    var clip: String?

    @Option(
        help:
            "Toy classifier for toy metrics when no --inception is given (default: the built-in assets/models/toy-classifier.safetensors).")
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
            throw ValidationError(
                "--preprocess must be one of \(InceptionPreprocessing.allCases.map(\.rawValue).joined(separator: ", ")), got '\(preprocess)'"
            )
        }
        if let isSplits, isSplits < 1 { throw ValidationError("--is-splits must be at least 1") }
        guard isSplitSize >= 1 else { throw ValidationError("--is-split-size must be at least 1") }
        if let json { try AtomicFile.checkWritable(json, what: "--json") }
        let env = ProcessInfo.processInfo.environment
        var q = EvaluationRequest(paths: paths)
        if let metrics {
            q.metrics = try metrics.split(separator: ",").map { s in
                let t = s.trimmingCharacters(in: .whitespaces).lowercased()
                guard let k = MetricKind(rawValue: t) else {
                    throw ValidationError(
                        "unknown metric '\(t)'; choose from \(MetricKind.allCases.map(\.rawValue).joined(separator: ","))")
                }
                return k
            }
        }
        q.inception = inception ?? env["VARLAB_INCEPTION"]
        q.preprocessing = mode
        q.classifier = classifier
        q.dinov2 = dinov2 ?? env["VARLAB_DINOV2"]
        q.dinov2Heads = dinov2Heads
        q.clip = clip ?? env["VARLAB_CLIP"]
        q.toyClassifier = toyClassifier
        q.isSplits = isTorchFidelity ? .torchFidelity(count: isSplits ?? 10, seed: 2020) : isSplits.map { .count($0) } ?? .size(isSplitSize)
        q.prADMFloat16 = prADMFloat16
        q.saveStats = saveStats
        q.cacheDir =
            noCache
            ? nil
            : (cacheDir ?? env["VARLAB_CACHE"]
                ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/varlab/features").path)
        q.batchSize = batchSize
        guard let r = try EvaluationRun.run(q, log: note, progress: { Progress(label: $0).handler }) else { return }
        print(r.report.table())
        for n in r.report.notes { note("note: \(n)") }
        if let json {
            try AtomicFile.write(
                try r.report.json(
                    samples: r.samples, reference: r.reference, inception: r.inception,
                    classifier: r.classifier), to: json)
            note("wrote \(json)")
        }
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
            let s = String(
                format: "\r%@: %d/%d images  %.1f images/s  ETA %d:%02d:%02d", label, done, total, rate,
                Int(eta) / 3600, Int(eta) / 60 % 60, Int(eta) % 60)
            FileHandle.standardError.write((s + (done == total ? "\n" : "")).data(using: .utf8)!)
        }
    }
}
