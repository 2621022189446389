import Autoencoders
import Foundation
import ModelIO
import Samplers
import Tensor
import TestSupport
import VAR
import XCTest

/// The .pth files (as the released checkpoints are stored) and their safetensors twins load to identical models:
/// same tokens and bit-identical images from the same greedy run (the VQ-VAE twin is fp16-rounded in safetensors,
/// with exactly the values the fp32 .pth holds).
final class VARCheckpointTwinsTests: XCTestCase {
    func open(_ rel: String) throws -> TensorArchive {
        do { return try CheckpointLoader.open(path: Fixtures.path(rel)) } catch let e as CheckpointError {
            if case .unsupported = e { throw XCTSkip("PyTorch .pth reader not available in this build: \(e)") }
            throw e
        }
    }

    func testPthAndSafetensorsTwinsAgree() throws {
        let cfg = try Fixtures.json("var/var_config.json")
        let pn = ((cfg["kwargs"] as! [String: Any])["patch_nums"] as! [NSNumber]).map { $0.intValue }
        let pairs = [("var/var.pth", "var/var.safetensors"), ("var/vqvae.pth", "var/vqvae.safetensors")]
        for (a, b) in pairs {
            let pa = try open(a), pb = try open(b)
            XCTAssertEqual(Set(pa.keys), Set(pb.keys), a)
            for k in pb.keys where pb.info(k)!.dtype.isFloatingPoint {
                XCTAssertEqual(try pa.floatTensor(k), try pb.floatTensor(k), "\(a) \(k)")
            }
        }
        var images: [Tensor] = []
        for (v, q) in [("var/var.pth", "var/vqvae.pth"), ("var/var.safetensors", "var/vqvae.safetensors")] {
            let m = try VARModel(archive: try open(v), patchNums: pn)
            let vae = try VQVAE(archive: try open(q), patchNums: pn)
            let s = try NextScaleSampler(model: m, vae: vae, cfg: 1.5, options: .greedy)
            images.append(try s.sample(labels: [3, 7], seed: 0).images!)
        }
        XCTAssertEqual(images[0], images[1])
    }
}
