import Autoencoders
import Foundation
import ModelIO
import Tensor
import TestSupport
import XCTest

/// Parity of the VQ-VAE with the official VQVAE (var/vae_var_io.safetensors). Sizes, scales and the fixture's
/// expected Phi mapping come from var/vqvae_config.json.
///
/// Tolerances: token maps exact (the smallest VQ decision margin in the fixture is ~1e-3, far above float32
/// noise). Continuous tensors: the fixture README suggests max|a-b| <= 1e-4 * max(1, max|ref|) for single forward
/// passes; PyTorch's own thread/kernel variants differ by ~7e-6 on img_recon (17 conv layers in float32), and an
/// independent GEMM/conv order is expected 10x above that.
final class VQVAEParityTests: XCTestCase {
    var vae: VQVAE!
    var io: SafetensorsFile!
    var patchNums: [Int] = []
    var batch = 0

    override func setUpWithError() throws {
        let cfg = try Fixtures.json("var/vqvae_config.json")
        patchNums = ((cfg["kwargs"] as! [String: Any])["v_patch_nums"] as! [NSNumber]).map { $0.intValue }
        vae = try VQVAE(archive: try Fixtures.safetensors("var/vqvae.safetensors"), patchNums: patchNums)
        io = try Fixtures.safetensors("var/vae_var_io.safetensors")
        batch = try io.floatTensor("images").shape[0]
    }

    func ints(_ key: String) throws -> [Int] { try io.intTensor(key).values.map { Int($0) } }

    func testConfigInferred() throws {
        let cfg = try Fixtures.json("var/vqvae_config.json")
        let kw = cfg["kwargs"] as! [String: Any], derived = cfg["derived"] as! [String: Any]
        XCTAssertEqual(vae.config.vocabSize, (kw["vocab_size"] as! NSNumber).intValue)
        XCTAssertEqual(vae.config.zChannels, (kw["z_channels"] as! NSNumber).intValue)
        XCTAssertEqual(vae.config.ch, (kw["ch"] as! NSNumber).intValue)
        XCTAssertEqual(vae.config.chMult, (derived["ch_mult"] as! [NSNumber]).map { $0.intValue })
        XCTAssertEqual(vae.quantizer.phiIndexPerScale, (derived["quant_resi_index_per_scale"] as! [NSNumber]).map { $0.intValue })
    }

    /// The released 10-scale schedule with share_quant_resi 4 (README quirk 4: two float64 ties resolve to 1 and 3).
    func testTickRuleReleasedModel() {
        XCTAssertEqual(MultiScaleQuantizer.tickRule(k: 4, scales: 10), [0, 0, 1, 1, 1, 2, 2, 3, 3, 3])
    }

    func testEncoderLatent() throws {
        let f = vae.encodeLatent(try io.floatTensor("images"))
        let ref = try io.floatTensor("encoder_f")
        XCTAssertLessThanOrEqual(relativeError(f, ref), 1e-4)
    }

    func testTokensExact() throws {
        let toks = try vae.tokens(images: try io.floatTensor("images"))
        XCTAssertEqual(toks.count, patchNums.count)
        for si in 0..<patchNums.count { XCTAssertEqual(toks[si], try ints("idx_scale\(si)"), "scale \(si)") }
        XCTAssertEqual(toks.count, patchNums.count)
    }

    /// f_hat / var_input from the reference tokens (no encoder noise in the input).
    func testFhatAndVarInput() throws {
        let toks = try (0..<patchNums.count).map { try ints("idx_scale\($0)") }
        let fh = vae.quantizer.fhat(tokens: toks, batch: batch)
        for si in 0..<patchNums.count {
            XCTAssertLessThanOrEqual(relativeError(fh[si], try io.floatTensor("fhat_scale\(si)")), 1e-5, "fhat scale \(si)")
        }
        XCTAssertLessThanOrEqual(relativeError(fh.last!, try io.floatTensor("fhat")), 1e-5)
        let vin = vae.quantizer.varInput(tokens: toks, batch: batch)
        XCTAssertLessThanOrEqual(relativeError(vin, try io.floatTensor("var_input")), 1e-5)
    }

    func testDecodeAndProgressive() throws {
        let toks = try (0..<patchNums.count).map { try ints("idx_scale\($0)") }
        XCTAssertLessThanOrEqual(relativeError(vae.decode(tokens: toks), try io.floatTensor("img_recon")), 1e-4)
        let prog = vae.progressiveDecode(tokens: toks)
        for si in 0..<patchNums.count {
            XCTAssertLessThanOrEqual(relativeError(prog[si], try io.floatTensor("img_recon_scale\(si)")), 1e-4, "scale \(si)")
        }
    }

    func testWrongFileIsAClearError() throws {
        XCTAssertThrowsError(try VQVAE(archive: try Fixtures.safetensors("var/var.safetensors"), patchNums: patchNums)) { e in
            XCTAssertTrue("\(e)".contains("var.safetensors") && "\(e)".contains("encoder.conv_in.weight"), "\(e)")
        }
    }
}
