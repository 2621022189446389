import Metrics
import ModelIO
import Tensor
import TestSupport
import XCTest

/// float64 values of a fixture tensor (the generic reader converts to Float32, which would lose the digits
/// the FID tolerance is about).
func doubles(_ f: SafetensorsFile, _ key: String) throws -> [Double] {
    let info = try f.requireInfo(key)
    let raw = try f.rawBytes(key)
    switch info.dtype {
    case .f64: return (0..<info.count).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self) }
    default: return try f.floatTensor(key).data.map(Double.init)
    }
}

func relDiff(_ a: Double, _ b: Double) -> Double { abs(a - b) / max(abs(b), 1e-300) }

final class FormulaTests: XCTestCase {
    var io: SafetensorsFile!
    var config: [String: Any] = [:]

    override func setUpWithError() throws {
        io = try Fixtures.safetensors("eval/metrics_io.safetensors")
        let manifest = try Fixtures.json("eval/manifest.json")
        config = ((manifest["meta"] as? [String: Any])?["config"] as? [String: Any]) ?? [:]
    }

    func testMeanAndCovarianceMatchNumpy() throws {
        for set in ["A", "B"] {
            let feats = try io.floatTensor("feats_\(set)")
            let stats = try GaussianStats(features: feats)
            let mu = try doubles(io, "mu_\(set)"), sigma = try doubles(io, "sigma_\(set)")
            XCTAssertEqual(stats.count, feats.shape[0])
            let scale = sigma.map(abs).max()!
            XCTAssertLessThan(zip(stats.mu, mu).map { abs($0 - $1) }.max()!, 1e-12 * max(1, mu.map(abs).max()!), "mu_\(set)")
            XCTAssertLessThan(zip(stats.sigma, sigma).map { abs($0 - $1) }.max()!, 1e-12 * scale, "sigma_\(set)")
        }
    }

    func testFIDMatchesPytorchFidAndADM() throws {
        let a = try GaussianStats(features: io.floatTensor("feats_A")), b = try GaussianStats(features: io.floatTensor("feats_B"))
        let fid = try FID.distance(a, b)
        print("FID \(fid) vs pytorch-fid \(try doubles(io, "fid_AB")[0])")
        XCTAssertLessThan(relDiff(fid, try doubles(io, "fid_AB")[0]), 1e-6, "FID \(fid)")
        XCTAssertLessThan(relDiff(fid, try doubles(io, "fid_AB_adm")[0]), 1e-6)
        // From the stored statistics too (as when an ADM reference batch supplies them).
        let sa = try GaussianStats(mu: doubles(io, "mu_A"), sigma: doubles(io, "sigma_A"))
        let sb = try GaussianStats(mu: doubles(io, "mu_B"), sigma: doubles(io, "sigma_B"))
        XCTAssertLessThan(relDiff(try FID.distance(sa, sb), try doubles(io, "fid_AB")[0]), 1e-6)
        // Symmetric, and zero against itself.
        XCTAssertLessThan(relDiff(try FID.distance(b, a), fid), 1e-9)
        XCTAssertLessThan(abs(try FID.distance(a, a)), 1e-8 * fid)
    }

    func testFIDRankDeficient() throws {
        let a = try GaussianStats(features: io.floatTensor("feats_rdA")), b = try GaussianStats(features: io.floatTensor("feats_rdB"))
        XCTAssertLessThan(a.count!, a.dim, "the fixture's set should be rank deficient")
        let fid = try FID.distance(a, b)
        XCTAssertTrue(fid.isFinite)
        print("rank-deficient FID \(fid) vs scipy \(try doubles(io, "fid_rank_deficient")[0])")
        XCTAssertLessThan(relDiff(fid, try doubles(io, "fid_rank_deficient")[0]), 1e-3, "rank-deficient FID \(fid)")
    }

    func testFIDRejectsBadInput() throws {
        let feats = try io.floatTensor("feats_A")
        XCTAssertThrowsError(try GaussianStats(features: feats.slice0(0, 1)))
        var bad = feats
        bad.data[5] = .nan
        XCTAssertThrowsError(try GaussianStats(features: bad)) { XCTAssertTrue("\($0)".contains("NaN")) }
        let a = try GaussianStats(features: feats)
        let narrow = try GaussianStats(features: Tensor(shape: [3, 2], data: [1, 2, 3, 5, 4, 4]))
        XCTAssertThrowsError(try FID.distance(a, narrow)) { XCTAssertTrue("\($0)".contains("widths differ")) }
    }

    func testADMPrecisionRecallExact() throws {
        let ref = try doubles(io, "adm_precision_recall_k3_exact")
        let pr = try PrecisionRecall.compute(reference: io.floatTensor("feats_A"), samples: io.floatTensor("feats_B"))
        XCTAssertEqual(pr.precision, ref[0])
        XCTAssertEqual(pr.recall, ref[1])
    }

    /// The stored radii come from ADM's float16 distance block, so they match ours only to fp16 accuracy; the
    /// median relative difference still separates the right neighbour index (3) from its neighbours.
    func testADMRadiiAreThirdNeighbour() throws {
        for set in ["A", "B"] {
            let fp16 = try io.floatTensor("adm_radii_\(set)").data.map(Double.init)
            let feats = try io.floatTensor("feats_\(set)")
            func medianRel(_ k: Int) throws -> Double {
                let r = try PrecisionRecall.radii(feats, k: k)
                let rel = zip(r, fp16).map { abs($0 - $1) / $1 }.sorted()
                return rel[rel.count / 2]
            }
            let m3 = try medianRel(3)
            XCTAssertLessThan(m3, 2e-3, "radii_\(set)")
            XCTAssertLessThan(m3, try medianRel(2) / 4)
            XCTAssertLessThan(m3, try medianRel(4) / 4)
        }
    }

    func testPRDC() throws {
        let ref = try doubles(io, "prdc_k5")
        let r = try PRDC.compute(real: io.floatTensor("feats_A"), fake: io.floatTensor("feats_B"))
        XCTAssertEqual([r.precision, r.recall, r.density, r.coverage], ref)
    }

    func testInceptionScore() throws {
        let logits = try io.floatTensor("is_logits")
        let n = logits.shape[0]
        let splits = try XCTUnwrap(config["is_splits"] as? Int)
        XCTAssertEqual(n, config["is_n"] as? Int)
        let isRef = try doubles(io, "inception_score")[0], isF64 = try doubles(io, "inception_score_f64")[0]
        let bySize = try InceptionScore.compute(logits: logits, splits: .size(n / splits))
        XCTAssertLessThan(relDiff(bySize, isF64), 1e-9)
        XCTAssertLessThan(relDiff(bySize, isRef), 1e-6)
        XCTAssertLessThan(relDiff(try InceptionScore.compute(logits: logits, splits: .count(splits)), isF64), 1e-9)
        let single = try InceptionScore.compute(logits: logits)  // ADM default split 5000 > N: one split
        XCTAssertLessThan(relDiff(single, try doubles(io, "inception_score_default_split")[0]), 1e-6)
    }

    func testTopKAccuracy() throws {
        let logits = try io.floatTensor("acc_logits")
        let labels = try io.intTensor("acc_labels").values.map { Int($0) }
        let acc = try Accuracy(logits: logits, labels: labels)
        let ref = try doubles(io, "top1_top5")
        XCTAssertEqual(acc.top1, ref[0])
        XCTAssertEqual(acc.top5, ref[1])
        XCTAssertEqual(acc.perClass.reduce(0) { $0 + $1.total }, labels.count)
        XCTAssertEqual(Double(acc.perClass.reduce(0) { $0 + $1.correct }) / Double(labels.count), acc.top1)
        // What each class was confused with: the argmax of every wrongly classified sample, counted per true class.
        let c = logits.shape[1]
        var expected: [Int: [Int: Int]] = [:]
        for (i, label) in labels.enumerated() {
            let row = Array(logits.data[(i * c)..<((i + 1) * c)])
            let predicted = row.indices.max { row[$0] < row[$1] || (row[$0] == row[$1] && $0 > $1) }!
            if predicted != label { expected[label, default: [:]][predicted, default: 0] += 1 }
        }
        for count in acc.perClass {
            XCTAssertEqual(count.mistakes, expected[count.label] ?? [:], "class \(count.label)")
            XCTAssertEqual(count.mistakes.values.reduce(0, +), count.total - count.correct)
        }
        XCTAssertThrowsError(try Accuracy(logits: logits, labels: Array(labels.dropLast())))
        XCTAssertThrowsError(try Accuracy(logits: logits, labels: labels.map { _ in logits.shape[1] }))
    }
}

/// The conventions users compare against: torch-fidelity's shuffled Inception-Score splits and ADM's float16
/// precision / recall.
final class MetricConventionTests: XCTestCase {
    /// Golden values from torch-fidelity itself (scripts/golden_torch_fidelity_is.py prints them) on logits
    /// defined by this formula, so they hold for any fixture set.
    func testTorchFidelityInceptionScore() throws {
        let (n, c) = (97, 13)
        var data = [Float]()
        for i in 0..<n { for j in 0..<c { data.append(Float(sin(0.37 * Double(i) + 1.3 * Double(j)) * 3 + cos(Double(j) * 0.11))) } }
        let logits = Tensor(shape: [n, c], data: data)
        let v = try InceptionScore.compute(logits: logits, splits: .torchFidelity(count: 10, seed: 2020))
        XCTAssertEqual(v, 2.079210136888106, accuracy: 1e-12)
        // The shuffle matters: the same 10 splits without it differ.
        XCTAssertGreaterThan(abs(try InceptionScore.compute(logits: logits, splits: .count(10)) - v), 1e-3)
    }

    func testNumpyRandomStatePermutation() {
        var r = NumpyRandomState(seed: 2020)
        XCTAssertEqual(r.permutation(10), [2, 4, 9, 1, 5, 7, 6, 3, 8, 0])
        var r2 = NumpyRandomState(seed: 2020)
        XCTAssertEqual(Array(r2.permutation(97).prefix(8)), [47, 12, 60, 23, 61, 66, 43, 35])
    }

    /// ADM's float16 distance block, emulated as the fixture README describes: radii bit for bit and the
    /// fp16 precision / recall exactly.
    func testADMFloat16PrecisionRecall() throws {
        let io = try Fixtures.safetensors("eval/metrics_io.safetensors")
        let a = try io.floatTensor("feats_A"), b = try io.floatTensor("feats_B")
        for (set, feats) in [("A", a), ("B", b)] {
            let want = try io.floatTensor("adm_radii_\(set)").data
            let got = try ADMPrecisionRecall.radii(feats)
            let bad = zip(got, want).filter { $0 != $1 }.count
            XCTAssertEqual(bad, 0, "adm_radii_\(set): \(bad) of \(want.count) differ")
        }
        let ref = try doubles(io, "adm_precision_recall_k3")
        let pr = try ADMPrecisionRecall.compute(reference: a, samples: b)
        XCTAssertEqual(pr.precision, ref[0])
        XCTAssertEqual(pr.recall, ref[1])
        // Features that overflow float16 (|x| > 65504) fall back to float32 for the block, as ADM's tf.cond does.
        let big = Tensor(shape: [5, 2], data: [1e5, 0, 0, 1e5, 2e5, 0, 0, 3e5, 1e5, 1e5])
        XCTAssertEqual(try ADMPrecisionRecall.radii(big, k: 2).allSatisfy(\.isFinite), true)
    }
}
