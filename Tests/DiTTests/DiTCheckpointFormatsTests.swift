import DiT
import Foundation
import ModelIO
import Tensor
import TestSupport
import XCTest

/// The same DiT weights in the other containers users meet (fixture README "Extra checkpoint containers"):
/// the legacy pre-1.6 torch.save file and DiT's train.py checkpoint {model, ema, opt, args}.
final class DiTCheckpointFormatsTests: XCTestCase {
    /// Skips only while ModelIO cannot read PyTorch files at all; any other failure fails the test.
    func open(_ relative: String, keyPath: String? = nil) throws -> TensorArchive {
        do {
            return try CheckpointLoader.open(path: Fixtures.path(relative), keyPath: keyPath)
        } catch let CheckpointError.unsupported(_, reason) where reason.contains("not readable yet") {
            throw XCTSkip("PyTorch reader not available in this build: \(reason)")
        }
    }

    func assertSameWeights(_ a: TensorArchive, _ ref: TensorArchive, scale: Float = 1) throws {
        XCTAssertEqual(Set(a.keys), Set(ref.keys))
        for k in ref.keys {
            let r = try ref.floatTensor(k)
            XCTAssertEqual(try a.floatTensor(k), scale == 1 ? r : r * scale, k)
        }
    }

    func testLegacyTorchSaveLoadsTheSameModel() throws {
        let ref = try Fixtures.safetensors("dit/dit.safetensors")
        let legacy = try open("dit/dit_legacy_format.pt")
        try assertSameWeights(legacy, ref)
        let m = try DiTModel.load(path: Fixtures.path("dit/dit_legacy_format.pt"))
        XCTAssertEqual(m.config, try DiTModel.load(path: Fixtures.path("dit/dit.safetensors")).config)
    }

    func testTrainCheckpointModelAndEMA() throws {
        let ref = try Fixtures.safetensors("dit/dit.safetensors")
        try assertSameWeights(try open("dit/dit_train_checkpoint.pt", keyPath: "model"), ref)
        // 'ema' holds the floating tensors times 0.5 (exact in float32).
        try assertSameWeights(try open("dit/dit_train_checkpoint.pt", keyPath: "ema"), ref, scale: 0.5)
        let m = try DiTModel.load(path: Fixtures.path("dit/dit_train_checkpoint.pt"), keyPath: "model")
        let f = try Fixtures.safetensors("dit/dit_forward_io.safetensors")
        let out = try m.forward(try f.floatTensor("x"), t: try f.intTensor("t").values.map { Float($0) },
                                y: try f.intTensor("y").values.map { Int($0) })
        XCTAssertLessThanOrEqual(relativeError(out, try f.floatTensor("out")), 1e-4)
    }
}
