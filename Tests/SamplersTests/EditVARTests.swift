import Autoencoders
import Foundation
import ModelIO
import Samplers
import Tensor
import TestSupport
import VAR
import XCTest

/// VAR zero-shot editing against the official notebook runs (var/edit_*_greedy_io.safetensors) and properties on
/// the fixture models. Box, labels, cfg and patch_nums come from var/manifest.json -> meta.edit and the fixture files.
/// Tokens exact (smallest decision margin of the runs 3.5e-3, our float32 logits differ by ~1e-6); f_hat and image
/// within the README's single-pass tolerance 1e-4 * max(1, max|ref|).
final class EditVARTests: XCTestCase {
    struct Run { let name: String; let box: [Double]; let inpainting: Bool; let labels: [Int]; let cfg: Double; let seed: UInt64 }

    func meta() throws -> (patchNums: [Int], numClasses: Int, runs: [Run]) {
        let manifest = try Fixtures.json("var/manifest.json")
        guard let edit = (manifest["meta"] as? [String: Any])?["edit"] as? [String: Any],
            let pns = edit["patch_nums"] as? [Int], let nc = edit["num_classes"] as? Int,
            let runs = edit["runs"] as? [String: Any]
        else { throw XCTSkip("no meta.edit") }
        let list = try runs.keys.sorted().map { name -> Run in
            let r = try XCTUnwrap(runs[name] as? [String: Any])
            return Run(
                name: name, box: try XCTUnwrap(r["box_y0x0y1x1"] as? [Double]), inpainting: try XCTUnwrap(r["inpainting"] as? Bool),
                labels: try XCTUnwrap(r["labels"] as? [Int]), cfg: try XCTUnwrap((r["cfg"] as? NSNumber)?.doubleValue),
                seed: UInt64(try XCTUnwrap(r["g_seed"] as? Int)))
        }
        return (pns, nc, list)
    }

    func models(_ pns: [Int]) throws -> (VARModel, VQVAE) {
        let m = try VARModel(archive: try Fixtures.safetensors("var/var.safetensors"), patchNums: pns)
        let vae = try VQVAE(archive: try Fixtures.safetensors("var/vqvae.safetensors"), patchNums: pns)
        return (m, vae)
    }

    func mask(_ r: Run, _ pns: [Int]) throws -> TokenEditMask {
        try TokenEditMask.box(gridSize: pns.last!, y0: r.box[0], x0: r.box[1], y1: r.box[2], x1: r.box[3], inpainting: r.inpainting)
    }

    func ints(_ f: SafetensorsFile, _ k: String) throws -> [Int] { try f.intTensor(k).values.map { Int($0) } }

    func testParityWithOfficialNotebook() throws {
        let (pns, nc, runs) = try meta()
        let (m, vae) = try models(pns)
        XCTAssertEqual(m.config.numClasses, nc)
        for r in runs {
            let io = try Fixtures.safetensors("var/edit_\(r.name)_greedy_io.safetensors")
            XCTAssertEqual(try ints(io, "labels"), r.labels)
            let images = try io.floatTensor("images")
            let sampler = try NextScaleSampler(model: m, vae: vae, cfg: r.cfg, options: .greedy)
            let out = try VARZeroShotEditor(sampler: sampler).edit(
                images: images, mask: try mask(r, pns), labels: r.labels,
                seed: r.seed, recordLogits: true)
            for si in pns.indices {
                let gt = try ints(io, "gt_tokens_scale\(si)"), n = pns[si] * pns[si]
                XCTAssertEqual(
                    try io.intTensor("keep_mask_scale\(si)").values.map { $0 != 0 },
                    (0..<gt.count).map { out.editor.keep[si][$0 % n] }, "\(r.name) keep \(si)")
                for i in gt.indices where out.editor.keep[si][i % n] { XCTAssertEqual(out.sample.tokens[si][i], gt[i]) }
                XCTAssertEqual(out.editor.sampled[si].flatMap { $0 }, try ints(io, "sampled_tokens_scale\(si)"), "\(r.name) sampled \(si)")
                XCTAssertEqual(out.sample.tokens[si], try ints(io, "tokens_scale\(si)"), "\(r.name) merged \(si)")
                XCTAssertLessThanOrEqual(
                    relativeError(out.sample.guidedLogits[si], try io.floatTensor("guided_logits_scale\(si)")), 1e-4,
                    "\(r.name) logits \(si)")
            }
            XCTAssertLessThanOrEqual(relativeError(out.sample.fhat, try io.floatTensor("fhat")), 1e-4, "\(r.name) fhat")
            let img = try XCTUnwrap(out.sample.images).map { ($0 + 1) * 0.5 }
            let e = relativeError(img, try io.floatTensor("image"))
            XCTAssertLessThanOrEqual(e, 1e-4, "\(r.name) image")
            print("edit \(r.name): image relative error \(e)")
        }
    }

    /// With real sampling (top-k/top-p, several seeds): the kept tokens equal the input's at every scale, exactly.
    func testKeptTokensEqualInputAtEveryScale() throws {
        let (pns, nc, runs) = try meta()
        let (m, vae) = try models(pns)
        let images = try Fixtures.safetensors("var/edit_\(runs[0].name)_greedy_io.safetensors").floatTensor("images")
        let b = images.shape[0]
        let gt = try vae.tokens(images: images)
        for r in runs {
            for seed in [UInt64(1), 2] {
                let s = try NextScaleSampler(model: m, vae: vae, cfg: r.cfg, options: TokenSamplingOptions(topK: 20, topP: 0.9))
                let out = try VARZeroShotEditor(sampler: s).edit(
                    images: images, mask: try mask(r, pns),
                    labels: [Int](repeating: nc, count: b), seed: seed, decode: false)
                for si in pns.indices {
                    let n = pns[si] * pns[si]
                    let keep = try mask(r, pns).keep(at: pns[si])
                    for i in 0..<(b * n) where keep[i % n] {
                        XCTAssertEqual(out.sample.tokens[si][i], gt[si][i], "\(r.name) seed \(seed) scale \(si) pos \(i)")
                    }
                }
            }
        }
    }

    /// An all-keep mask returns the plain reconstruction (tokens = the input's, f_hat and image = its decode).
    func testAllKeepReproducesReconstruction() throws {
        let (pns, nc, runs) = try meta()
        let (m, vae) = try models(pns)
        let images = try Fixtures.safetensors("var/edit_\(runs[0].name)_greedy_io.safetensors").floatTensor("images")
        let gt = try vae.tokens(images: images)
        let s = try NextScaleSampler(model: m, vae: vae, cfg: 1.5, options: TokenSamplingOptions(topK: 20, topP: 0.9))
        let out = try VARZeroShotEditor(sampler: s).edit(
            images: images, mask: try TokenEditMask.all(size: pns.last!, keep: true),
            labels: [Int](repeating: nc, count: images.shape[0]), seed: 3)
        XCTAssertEqual(out.sample.tokens, gt)
        let recon = vae.decode(tokens: gt)
        XCTAssertEqual(try XCTUnwrap(out.sample.images).data, recon.data)
        // and the fixture's reconstruction
        let ref = try Fixtures.safetensors("var/vae_var_io.safetensors")
        if ref.contains("fhat") { XCTAssertLessThanOrEqual(relativeError(out.sample.fhat, try ref.floatTensor("fhat")), 1e-4) }
    }

    func testDeterministicAndClassConditional() throws {
        let (pns, _, runs) = try meta()
        let (m, vae) = try models(pns)
        let images = try Fixtures.safetensors("var/edit_\(runs[0].name)_greedy_io.safetensors").floatTensor("images")
        let r = runs.first { $0.inpainting }!
        let s = try NextScaleSampler(model: m, vae: vae, cfg: 3, options: TokenSamplingOptions(topK: 20, topP: 0.9))
        let ed = VARZeroShotEditor(sampler: s)
        let a = try ed.edit(images: images, mask: try mask(r, pns), labels: [3, 5], seed: 9)
        let b = try ed.edit(images: images, mask: try mask(r, pns), labels: [3, 5], seed: 9)
        XCTAssertEqual(a.sample.tokens, b.sample.tokens)
        XCTAssertEqual(try XCTUnwrap(a.sample.images).data, try XCTUnwrap(b.sample.images).data)
        let c = try ed.edit(images: images, mask: try mask(r, pns), labels: [3, 5], seed: 10)
        XCTAssertNotEqual(a.sample.tokens, c.sample.tokens)
    }
}
