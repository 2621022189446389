import Autoencoders
import Foundation
import ModelIO
import Tensor
import TestSupport
import XCTest

/// diffusers AutoencoderKL encode/decode against dit/autoencoder_kl_io.safetensors, loading the weights under the
/// current (to_q/...) and the legacy (query/...) attention names. Tolerance: the README's single-forward bound
/// 1e-4 * max(1, max|ref|) (float32 re-ordering alone moved these by ~1e-6 relative).
final class KLVAETests: XCTestCase {
    static let tolerance: Float = 1e-4

    func check(_ a: Tensor, _ ref: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.shape, ref.shape, what, file: file, line: line)
        guard a.shape == ref.shape else { return }
        let e = relativeError(a, ref)
        print("\(what): relative error \(e)")
        XCTAssertLessThanOrEqual(e, Self.tolerance, what, file: file, line: line)
    }

    func runParity(_ vae: KLVAE, _ label: String) throws {
        let io = try Fixtures.safetensors("dit/autoencoder_kl_io.safetensors")
        check(try vae.decode(try io.floatTensor("latents")), try io.floatTensor("decoded"), "\(label) decode")
        let (mean, logvar) = try vae.encode(try io.floatTensor("images"))
        check(mean, try io.floatTensor("enc_mean"), "\(label) mean")
        check(logvar, try io.floatTensor("enc_logvar"), "\(label) logvar")
        check(logvar.map { expf(0.5 * $0) }, try io.floatTensor("enc_std"), "\(label) std")
        check(try vae.decode(mean), try io.floatTensor("decoded_from_mean"), "\(label) decode(mean)")
    }

    func testDirectoryWithConfigCurrentKeyNames() throws {
        let vae = try KLVAE.load(path: Fixtures.path("dit/autoencoder_kl"))
        let cfg = try Fixtures.json("dit/autoencoder_kl/config.json")
        XCTAssertEqual(vae.config.scalingFactor, (cfg["scaling_factor"] as? NSNumber)?.floatValue)
        XCTAssertEqual(vae.config.normNumGroups, (cfg["norm_num_groups"] as? NSNumber)?.intValue)
        try runParity(vae, "current keys")
    }

    func testLegacyAttentionKeyNames() throws {
        // The legacy file sits beside no config.json: sizes come from the shapes, the group count from the
        // fixture's config (it is not in the shapes).
        let cfg = try Fixtures.json("dit/autoencoder_kl/config.json")
        let groups = try XCTUnwrap((cfg["norm_num_groups"] as? NSNumber)?.intValue)
        let archive = try CheckpointLoader.open(path: Fixtures.path("dit/autoencoder_kl_oldkeys.safetensors"))
        XCTAssertTrue(archive.keys.contains { $0.hasSuffix("attentions.0.query.weight") })
        let inferred = try KLVAEConfig.infer(from: archive, groups: groups)
        XCTAssertEqual(inferred.blockOutChannels, (cfg["block_out_channels"] as? [NSNumber])?.map(\.intValue))
        XCTAssertEqual(inferred.layersPerBlock, (cfg["layers_per_block"] as? NSNumber)?.intValue)
        XCTAssertEqual(inferred.latentChannels, (cfg["latent_channels"] as? NSNumber)?.intValue)
        try runParity(try KLVAE(archive: archive, config: inferred), "legacy keys")
    }

    /// A config.json beside the weights that is not JSON is an error naming it, never replaced by guessed sizes
    /// (the GroupNorm count is not in the shapes); one of another model (valid JSON, not a VAE) still falls back.
    func testUnparseableConfigBesideTheWeightsIsRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("varlab-klcfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let weights = dir.appendingPathComponent("diffusion_pytorch_model.safetensors")
        try FileManager.default.copyItem(
            atPath: Fixtures.path("dit/autoencoder_kl/diffusion_pytorch_model.safetensors"), toPath: weights.path)
        let config = dir.appendingPathComponent("config.json")
        for broken in ["{\"_class_name\": \"AutoencoderKL\", \"norm_num_groups\": ", "", "\u{FF}\u{FE}"] {
            try Data(broken.utf8).write(to: config)
            XCTAssertThrowsError(try KLVAE.load(path: dir.path)) { e in
                XCTAssertTrue("\(e)".contains(config.path) && "\(e)".contains("not valid JSON"), "\(e)")
            }
        }
        try Data("{\"_class_name\": \"SomethingElse\"}".utf8).write(to: config)
        let groups = try XCTUnwrap((try Fixtures.json("dit/autoencoder_kl/config.json")["norm_num_groups"] as? NSNumber)?.intValue)
        XCTAssertEqual(try KLVAE.load(path: dir.path, groups: groups).config.normNumGroups, groups)
    }

    func testStateDictShapesMatchTheFile() throws {
        let vae = try KLVAE.load(path: Fixtures.path("dit/autoencoder_kl"))
        let f = try Fixtures.safetensors("dit/autoencoder_kl/diffusion_pytorch_model.safetensors")
        let ours = vae.config.stateDictShapes()
        XCTAssertEqual(Set(ours.map(\.key)), Set(f.keys))
        for (k, s) in ours { XCTAssertEqual(f.info(k)?.shape, s, k) }
    }

    func testBadInputs() throws {
        let vae = try KLVAE.load(path: Fixtures.path("dit/autoencoder_kl"))
        let l = vae.config.latentChannels
        XCTAssertThrowsError(try vae.decode(Tensor(zeros: [1, l + 1, 4, 4])))
        XCTAssertThrowsError(try vae.encode(Tensor(zeros: [1, 3, 7, 8])))
        // A DiT checkpoint is not a VAE: the error names the file.
        let dit = Fixtures.path("dit/dit.safetensors")
        XCTAssertThrowsError(try KLVAE.load(path: dit)) { e in XCTAssertTrue("\(e)".contains(dit), "\(e)") }
        XCTAssertThrowsError(try KLVAE.load(path: Fixtures.path("dit/no-such-dir")))
    }
}
