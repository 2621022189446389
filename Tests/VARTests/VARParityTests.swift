import Autoencoders
import Foundation
import ModelIO
import Tensor
import TestSupport
import VAR
import XCTest

/// Teacher-forced logits of the VAR transformer against the official forward (var/vae_var_io.safetensors).
/// Tolerance: the README's single-forward check max|a-b| <= 1e-4 * max(1, max|ref|); PyTorch's own variants
/// agree bit for bit here, an independent GEMM order gives ~1e-6 relative on these 2-block models.
final class VARParityTests: XCTestCase {
    func patchNums(_ cfgFile: String) throws -> [Int] {
        let cfg = try Fixtures.json(cfgFile)
        return ((cfg["kwargs"] as! [String: Any])["patch_nums"] as! [NSNumber]).map { $0.intValue }
    }

    func load(_ file: String, _ cfg: String) throws -> VARModel {
        try VARModel(archive: try Fixtures.safetensors(file), patchNums: try patchNums(cfg))
    }

    func testConfigInferred() throws {
        let cfg = try Fixtures.json("var/var_config.json")
        let kw = cfg["kwargs"] as! [String: Any]
        let m = try load("var/var.safetensors", "var/var_config.json")
        XCTAssertEqual(m.config.depth, (kw["depth"] as! NSNumber).intValue)
        XCTAssertEqual(m.config.width, (kw["embed_dim"] as! NSNumber).intValue)
        XCTAssertEqual(m.config.heads, (kw["num_heads"] as! NSNumber).intValue)
        XCTAssertEqual(m.config.numClasses, (kw["num_classes"] as! NSNumber).intValue)
        XCTAssertEqual(m.config.sharedAdaLN, kw["shared_aln"] as! Bool)
        let shared = try load("var/var_shared_aln.safetensors", "var/var_shared_aln_config.json")
        XCTAssertTrue(shared.config.sharedAdaLN)
    }

    /// Our block-causal mask equals the stored attn_bias_for_masking buffer.
    func testMaskMatchesBuffer() throws {
        let a = try Fixtures.safetensors("var/var.safetensors")
        let m = try load("var/var.safetensors", "var/var_config.json")
        let stored = try a.floatTensor("attn_bias_for_masking")
        XCTAssertEqual(m.attentionMask().data, stored.data)
    }

    func check(_ file: String, _ cfg: String, key: String) throws {
        let io = try Fixtures.safetensors("var/vae_var_io.safetensors")
        let m = try load(file, cfg)
        let labels = try io.intTensor("tf_labels").values.map { Int($0) }
        let logits = try m.forward(labels: labels, varInput: try io.floatTensor("var_input"))
        let err = relativeError(logits, try io.floatTensor(key))
        XCTAssertLessThanOrEqual(err, 1e-4, "\(key)")
        print("\(key) relative error \(err)")
    }

    func testTeacherForcedLogits() throws { try check("var/var.safetensors", "var/var_config.json", key: "logits_tf") }

    func testTeacherForcedLogitsSharedAdaLN() throws {
        try check("var/var_shared_aln.safetensors", "var/var_shared_aln_config.json", key: "logits_tf_shared_aln")
    }

    /// KV-cached scale-by-scale inference on the teacher-forcing input gives the full masked forward's logits.
    func testKVCacheMatchesFullForward() throws {
        let io = try Fixtures.safetensors("var/vae_var_io.safetensors")
        let m = try load("var/var.safetensors", "var/var_config.json")
        let labels = try io.intTensor("tf_labels").values.map { Int($0) }
        let vin = try io.floatTensor("var_input")
        let full = try m.forward(labels: labels, varInput: vin)
        var st = try m.beginInference(labels: labels)
        var parts: [Tensor] = [m.step(m.firstInput(st), state: &st)]
        let fl = m.config.firstL
        for si in 1..<m.config.patchNums.count {
            let (b, e) = m.config.beginEnds[si]
            let feats = vin.split([b - fl, e - b, vin.shape[1] - (e - fl)], dim: 1)[1]
            parts.append(m.step(m.scaleInput(feats, scale: si, state: st), state: &st))
        }
        let inc = Tensor.cat(parts, dim: 1)
        XCTAssertLessThanOrEqual(relativeError(inc, full), 1e-5)
    }

    func testBadInputs() throws {
        let a = try Fixtures.safetensors("var/var.safetensors")
        // impossible schedule
        XCTAssertThrowsError(try VARModel(archive: a, patchNums: [1, 2, 3, 5])) { e in XCTAssertTrue("\(e)".contains("patch-nums"), "\(e)")
        }
        // no schedule for a non-official length
        XCTAssertThrowsError(try VARModel(archive: a)) { e in XCTAssertTrue("\(e)".contains("--patch-nums"), "\(e)") }
        // a VQ-VAE given as VAR
        XCTAssertThrowsError(try VARModel(archive: try Fixtures.safetensors("var/vqvae.safetensors"), patchNums: [1, 2, 3, 4])) { e in
            XCTAssertTrue("\(e)".contains("vqvae.safetensors") && "\(e)".contains("not a VAR"), "\(e)")
        }
        let m = try load("var/var.safetensors", "var/var_config.json")
        XCTAssertThrowsError(try m.conditioning(labels: [m.config.numClasses + 1]))
        XCTAssertThrowsError(
            try m.checkCompatible(vocabSize: m.config.vocabSize + 1, cvae: m.config.cvae, varPath: "a.pth", vaePath: "b.pth")
        ) { e in
            XCTAssertTrue("\(e)".contains("a.pth") && "\(e)".contains("b.pth"))
        }
    }
}
