import Autoencoders
import Foundation
import ModelIO
import Samplers
import Tensor
import TestSupport
import VAR
import XCTest

/// Greedy (top-k 1) next-scale sampling against the official autoregressive_infer_cfg runs, for every ar_cfg*
/// fixture in the manifest. Tokens must match exactly at every scale (smallest top1-top2 margin in the fixtures
/// ~3e-3, float32 noise here ~1e-6); guided logits and the [0,1] image within the README's single-pass tolerance
/// 1e-4 * max(1, max|ref|) (PyTorch's own variants differ by ~5e-6 on the image).
final class VARGreedySamplingTests: XCTestCase {
    func fixtures() throws -> [(file: String, cfg: Double)] {
        let files = try FileManager.default.contentsOfDirectory(atPath: Fixtures.path("var"))
            .filter { $0.hasPrefix("ar_cfg") && $0.hasSuffix("_greedy_io.safetensors") }.sorted()
        XCTAssertFalse(files.isEmpty)
        return files.map { f in
            let cfg = Double(f.dropFirst("ar_cfg".count).prefix { $0 != "_" })!
            return ("var/" + f, cfg)
        }
    }

    func models() throws -> (VARModel, VQVAE) {
        let cfg = try Fixtures.json("var/var_config.json")
        let pn = ((cfg["kwargs"] as! [String: Any])["patch_nums"] as! [NSNumber]).map { $0.intValue }
        let m = try VARModel(archive: try Fixtures.safetensors("var/var.safetensors"), patchNums: pn)
        let vae = try VQVAE(archive: try Fixtures.safetensors("var/vqvae.safetensors"), patchNums: pn)
        return (m, vae)
    }

    func testGreedyParity() throws {
        let (m, vae) = try models()
        for (file, cfg) in try fixtures() {
            let io = try Fixtures.safetensors(file)
            let labels = try io.intTensor("labels").values.map { Int($0) }
            let seed = UInt64(try io.intTensor("g_seed").values[0])
            let s = try NextScaleSampler(model: m, vae: vae, cfg: cfg, options: .greedy)
            let r = try s.sample(labels: labels, seed: seed, recordLogits: true)
            for si in 0..<m.config.patchNums.count {
                XCTAssertEqual(r.tokens[si], try io.intTensor("tokens_scale\(si)").values.map { Int($0) }, "\(file) scale \(si)")
                XCTAssertLessThanOrEqual(
                    relativeError(r.guidedLogits[si], try io.floatTensor("guided_logits_scale\(si)")), 1e-4,
                    "\(file) logits \(si)")
            }
            XCTAssertLessThanOrEqual(relativeError(r.fhat, try io.floatTensor("fhat")), 1e-4, "\(file) fhat")
            let img = r.images!.map { ($0 + 1) * 0.5 }
            let err = relativeError(img, try io.floatTensor("image"))
            XCTAssertLessThanOrEqual(err, 1e-4, "\(file) image")
            print("\(file): image relative error \(err)")
        }
    }

    /// Same images whatever the batch composition and thread count: sample i depends only on (seed, i).
    func testDeterminismAcrossBatchAndThreads() throws {
        let (m, vae) = try models()
        let s = try NextScaleSampler(model: m, vae: vae, cfg: 1.5, options: TokenSamplingOptions(topK: 20, topP: 0.9))
        let labels = [1, 5, 9, 2]
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        Parallel.threads = 2
        let all = try s.sample(labels: labels, sampleIndices: [10, 11, 12, 13], seed: 42)
        Parallel.threads = 1
        var single: [[Int]] = []
        for i in 0..<4 {
            let r = try s.sample(labels: [labels[i]], sampleIndices: [10 + i], seed: 42, decode: false)
            single.append(r.tokens.flatMap { $0 })
        }
        let pns = m.config.patchNums
        for i in 0..<4 {
            var fromBatch: [Int] = []
            for si in 0..<pns.count {
                let n = pns[si] * pns[si]
                fromBatch += all.tokens[si][(i * n)..<((i + 1) * n)]
            }
            XCTAssertEqual(fromBatch, single[i], "sample \(i)")
        }
        let again = try s.sample(labels: Array(labels[2...]), sampleIndices: [12, 13], seed: 42)
        let n = again.images!.count
        XCTAssertEqual(again.images!.data, Array(all.images!.data[(all.images!.count - n)...]))
        // another seed changes the result
        let other = try s.sample(labels: labels, sampleIndices: [10, 11, 12, 13], seed: 43, decode: false)
        XCTAssertNotEqual(other.tokens, all.tokens)
    }

    /// The hook sees each scale and can force tokens (editing builds on this).
    func testHookReplacesTokens() throws {
        let (m, vae) = try models()
        let s = try NextScaleSampler(model: m, vae: vae, cfg: 1.0, options: .greedy)
        var seen: [Int] = []
        let r = try s.sample(labels: [3], seed: 0, decode: false) { step in
            seen.append(step.scale)
            step.tokens = [Int](repeating: 7, count: step.tokens.count)
            step.embedding = vae.quantizer.embed(step.tokens, batch: 1, pn: step.patchNum)
        }
        XCTAssertEqual(seen, Array(0..<m.config.patchNums.count))
        XCTAssertTrue(r.tokens.allSatisfy { $0.allSatisfy { $0 == 7 } })
        let expected = vae.quantizer.fhat(tokens: r.tokens, batch: 1).last!
        XCTAssertLessThanOrEqual(relativeError(r.fhat, expected), 1e-6)
    }

    /// `--bf16` against the official greedy runs: how many tokens the rounding flips (printed for the README; no
    /// bound is asserted, a flip depends on each fixture's logit margins) and the same tokens for any batch split.
    func testBFloat16GreedySampling() throws {
        try XCTSkipUnless(MatmulPrecision.bfloat16Available, "this CPU has no AVX512-BF16")
        let (m, vae) = try models()
        m.setMatmulPrecision(.bfloat16)
        defer { m.setMatmulPrecision(.float32) }
        for (file, cfg) in try fixtures() {
            let io = try Fixtures.safetensors(file)
            let labels = try io.intTensor("labels").values.map { Int($0) }
            let seed = UInt64(try io.intTensor("g_seed").values[0])
            let s = try NextScaleSampler(model: m, vae: vae, cfg: cfg, options: .greedy)
            let r = try s.sample(labels: labels, seed: seed, decode: false, recordLogits: true)
            var differ = 0, total = 0, firstLogitError: Float = 0
            var firstFlip: Int?
            for si in 0..<m.config.patchNums.count {
                let ref = try io.intTensor("tokens_scale\(si)").values.map { Int($0) }
                let flips = zip(r.tokens[si], ref).filter { $0 != $1 }.count
                if flips > 0 && firstFlip == nil { firstFlip = si }
                if si == 0 { firstLogitError = relativeError(r.guidedLogits[0], try io.floatTensor("guided_logits_scale0")) }
                differ += flips
                total += ref.count
            }
            print(
                "\(file) --bf16: \(differ) of \(total) greedy tokens differ from the official run (first at scale "
                    + "\(firstFlip.map(String.init) ?? "none")); first-scale guided logits relative error \(firstLogitError)")
            let last = labels.count - 1
            let alone = try s.sample(labels: [labels[last]], sampleIndices: [last], seed: seed, decode: false)
            for si in 0..<m.config.patchNums.count {
                let n = r.tokens[si].count / labels.count
                XCTAssertEqual(alone.tokens[si], Array(r.tokens[si][(last * n)...]), "\(file): last sample alone, scale \(si)")
            }
        }
    }
}
