import Autoencoders
import Foundation
import ModelIO
import Tensor
import Training
import VAR
import XCTest

/// Training code and inference code compute the same VAR: a trainable VAR (weights perturbed away from the
/// near-identity init so every block matters) saved by the trainer loads unchanged in `VARModel` - config
/// (depth, width, heads from metadata, schedule from metadata, vocab, Cvae, classes) and logits - and the
/// teacher-forced logits agree to float32 rounding (different summation order in attention / LayerNorm).
final class VARTrainParityTests: XCTestCase {
    func testCheckpointLoadsInVARModelWithSameLogits() throws {
        var opts = TrainOptions(); opts.steps = 1; opts.batchSize = 4
        let trainer = try VARTrainFixture.trainer(options: opts)
        let (model, path) = try VARTrainFixture.perturbedExport(trainer, seed: 5, name: "parity")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let c = trainer.config
        XCTAssertEqual(model.config.depth, c.depth)
        XCTAssertEqual(model.config.width, c.width)
        XCTAssertEqual(model.config.heads, c.heads, "heads from varlab.heads metadata")
        XCTAssertEqual(model.config.patchNums, c.patchNums, "schedule from varlab.patch_nums metadata")
        XCTAssertEqual(model.config.mlpHidden, c.mlpHidden)
        XCTAssertEqual(model.config.numClasses, c.numClasses)
        XCTAssertFalse(model.config.attnL2Norm)
        XCTAssertFalse(model.config.sharedAdaLN)

        let indices = [0, 1, 2, 5]
        let labels = [0, 2, 3, 1]  // 3 = the null class
        let (_, input) = trainer.batch(indices)
        guard case .features(let feats) = input else { return XCTFail("var input is features") }
        let train = try trainer.model.forward(labels: labels, input: input)
        let infer = try model.forward(labels: labels, varInput: feats)
        XCTAssertEqual(train.shape, infer.shape)
        let err = VARTrainFixture.relErr(train.data, infer.data)
        XCTAssertLessThan(err, 1e-5, "training vs inference logits, relative L2 error \(err)")
        XCTAssertGreaterThan(train.data.map(abs).max() ?? 0, 1e-2, "logits are not trivially zero")

        // Incremental (KV-cached) inference of the first two scales agrees too.
        var state = try model.beginInference(labels: labels)
        let first = model.step(model.firstInput(state), state: &state)
        let fl = c.patchNums[0] * c.patchNums[0], l1 = c.patchNums[1] * c.patchNums[1]
        let second = model.step(model.scaleInput(feats.split([l1, feats.shape[1] - l1], dim: 1)[0], scale: 1, state: state), state: &state)
        let v = c.vocabSize
        for b in 0..<labels.count {
            let ref = Array(train.data[(b * c.totalTokens * v)..<((b * c.totalTokens + fl + l1) * v)])
            let got = Array(first.data[(b * fl * v)..<((b + 1) * fl * v)]) + Array(second.data[(b * l1 * v)..<((b + 1) * l1 * v)])
            XCTAssertLessThan(VARTrainFixture.relErr(got, ref), 1e-5, "cached inference, sample \(b)")
        }
    }
}
