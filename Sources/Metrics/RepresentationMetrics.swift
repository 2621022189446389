import Foundation
import ModelIO
import Tensor

/// The metrics that do not lean on InceptionV3, for both evaluation paths (Inception and toy):
/// FD-DINOv2 (dgm-eval: Fréchet distance of DINOv2 CLS features, float64) and CMMD (google-research cmmd: MMD of
/// unit-norm CLIP embeddings). Reference sides come from a statistics file (`mu_dinov2` / `sigma_dinov2`,
/// `clip_embeddings`, written by `saveStatistics`) when it was made by the same network, else from its images.
public final class RepresentationMetrics {
    public var dinov2: DINOv2Features?
    public var clip: CLIPFeatures?
    public let cache: FeatureCache
    public var progress: ((String) -> ProgressHandler)?

    public init(dinov2: DINOv2Features?, clip: CLIPFeatures?, cache: FeatureCache) {
        self.dinov2 = dinov2; self.clip = clip; self.cache = cache
    }

    public static let kinds: [MetricKind] = [.fdDINOv2, .cmmd]

    /// What identifies a network's statistics in a file (architecture and head count; not the file name).
    var dinov2Identity: String? { dinov2.map { "DINOv2 \($0.model.config.name), \($0.model.config.heads) heads" } }
    var clipIdentity: String? { clip.map { "CLIP \($0.model.config.name), \($0.model.config.heads) heads" } }

    /// Appends FD-DINOv2 / CMMD for the requested kinds. `explicit`: a missing network or reference is an error.
    public func run(samples: ImageSet, reference: ImageSet, metrics: [MetricKind], explicit: Bool, into report: inout EvalReport) throws {
        for m in metrics where Self.kinds.contains(m) {
            switch m {
            case .fdDINOv2:
                guard let dinov2 else {
                    if explicit { throw MetricsError.input("fd-dinov2 needs the DINOv2 weights: give --dinov2 dinov2_vitl14_pretrain.pth") }
                    continue
                }
                let s = try GaussianStats(
                    features: try features(samples, dinov2, "samples", &report)["cls"]!, what: "sample DINOv2 features")
                var r: GaussianStats
                if let pre = reference.dinov2Stats,
                    usable(reference, pre.dim, s.dim, reference.dinov2Network, dinov2Identity!, "FD-DINOv2", &report)
                {
                    r = pre
                } else {
                    guard reference.count > 0 else { throw noImages(reference, "FD-DINOv2", report) }
                    r = try GaussianStats(
                        features: try features(reference, dinov2, "reference", &report)["cls"]!, what: "reference DINOv2 features")
                }
                var v = MetricValue(
                    name: "FD-DINOv2", value: try FID.distance(s, r), samples: s.count ?? samples.count,
                    reference: r.count, network: dinov2.name, preprocessing: dinov2.preprocessing)
                v.referenceCountUnknown = r.count == nil
                report.values.append(v)
            case .cmmd:
                guard let clip else {
                    if explicit {
                        throw MetricsError.input(
                            "cmmd needs the CLIP weights: give --clip DIR (openai/clip-vit-large-patch14-336 with config.json)")
                    }
                    continue
                }
                let x = try features(samples, clip, "samples", &report)["embedding"]!
                var y: Tensor
                if let pre = reference.clipEmbeddings,
                    usable(reference, pre.shape[1], x.shape[1], reference.clipNetwork, clipIdentity!, "CMMD", &report)
                {
                    y = pre
                } else {
                    guard reference.count > 0 else { throw noImages(reference, "CMMD", report) }
                    y = try features(reference, clip, "reference", &report)["embedding"]!
                }
                let v = try CMMD.compute(x, y)
                report.values.append(
                    MetricValue(
                        name: "CMMD", value: v.value, samples: x.shape[0], reference: y.shape[0],
                        network: clip.name, preprocessing: clip.preprocessing))
            default: break
            }
        }
    }

    /// Statistics arrays of a set for `--save-stats`: DINOv2 mean / covariance and CLIP embeddings, each with
    /// the network that made them.
    public func statisticsArrays(of set: ImageSet) throws -> [(String, NPYArray)] {
        var out: [(String, NPYArray)] = []
        var scratch = EvalReport()
        if let dinov2, let id = dinov2Identity {
            let s = try GaussianStats(features: try features(set, dinov2, "statistics (DINOv2)", &scratch)["cls"]!, what: "DINOv2 features")
            out.append(("mu_dinov2", try NPYArray(float64: s.mu, shape: [s.dim])))
            out.append(("sigma_dinov2", try NPYArray(float64: s.sigma, shape: [s.dim, s.dim])))
            out.append(("dinov2_network", try NPYArray(uint8: Array(id.utf8), shape: [id.utf8.count])))
            out.append(("n_dinov2", try NPYArray(int64: [Int64(s.count ?? 0)], shape: [1])))
        }
        if let clip, let id = clipIdentity {
            let e = try features(set, clip, "statistics (CLIP)", &scratch)["embedding"]!
            out.append(("clip_embeddings", try NPYArray(float32: e.data, shape: e.shape)))
            out.append(("clip_network", try NPYArray(uint8: Array(id.utf8), shape: [id.utf8.count])))
        }
        return out
    }

    private func features(_ set: ImageSet, _ net: FeatureNetwork, _ what: String, _ report: inout EvalReport) throws -> FeatureSets {
        let f = try cache.features(of: set, network: net, progress: progress?("\(what) (\(net.cacheName))"))
        if cache.lastFromCache { report.notes.append("\(what) \(net.cacheName) features read from the cache") }
        return f
    }

    /// Precomputed reference statistics are used only when the same architecture made them.
    private func usable(
        _ set: ImageSet, _ dim: Int, _ expected: Int, _ madeBy: String?, _ network: String, _ what: String,
        _ report: inout EvalReport
    ) -> Bool {
        let file = set.paths[0]
        if dim == expected, madeBy == nil || madeBy == network {
            report.notes.append(
                "\(what) reference: precomputed statistics of \(file) used\(madeBy == nil ? " (the file does not name its network)" : "")")
            return true
        }
        report.notes.append(
            "\(what) reference: \(file) holds statistics of \(madeBy ?? "\(dim)-dim features"), not of \(network); \(set.count > 0 ? "recomputed from its images" : "it has no images to recompute from")"
        )
        return false
    }

    /// The reference has nothing to compute `what` from; the last note says why its statistics did not fit.
    private func noImages(_ set: ImageSet, _ what: String, _ report: EvalReport) -> Error {
        let why = report.notes.last(where: { $0.hasPrefix("\(what) reference:") }).map { " (\($0))" } ?? ""
        return MetricsError.input(
            "\(set.paths.joined(separator: ", ")): no images and no usable \(what) statistics for the reference\(why)")
    }
}
