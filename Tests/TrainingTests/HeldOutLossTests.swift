import DiT
import Foundation
import Layers
import Tensor
import Training
import VAR
import XCTest

/// The held-out losses the lab's scaling law is fitted to.
final class HeldOutLossTests: XCTestCase {
    /// VAR: the mean token cross-entropy over the set with the true classes, the same for any batch size, and the
    /// training step's loss on the same rows when class dropout is off. Every variant; a set of another kind is refused.
    func testVARHeldOutLossIsTheTrainingLossWithoutDropout() throws {
        for variant in VARVariant.allCases {
            var o = TrainOptions()
            o.batchSize = 8
            let t = try VARTrainFixture.trainer(variant, images: 8, options: o)
            let held = try t.heldOutLoss(t.data, batchSize: 3)
            XCTAssertEqual(held, try t.heldOutLoss(t.data, batchSize: 8), accuracy: 1e-6 * held, "\(variant)")
            let (targets, input) = t.batch(Array(0..<8))
            let logits = try t.model.forward(labels: t.data.labels, input: input)
            XCTAssertEqual(held, Losses.softmaxCrossEntropy(logits: logits, labels: targets).loss, accuracy: 1e-6 * held)
            XCTAssertGreaterThan(held, 0.5, "a random model is far from certain")
        }
        let ms = try VARTrainFixture.trainer(.next, images: 4, options: TrainOptions())
        let ar = try VARTrainFixture.trainer(.ar, images: 4, options: TrainOptions())
        XCTAssertThrowsError(try ms.heldOutLoss(ar.data)) { XCTAssertTrue("\($0)".contains("do not fit"), "\($0)") }
    }

    /// DiT: fixed draws (the same loss twice and for any batch size), each latent at its stratified timestep, and
    /// a set of another shape refused.
    func testDiTHeldOutLossIsDeterministicAndStratified() throws {
        let c = DiTTrainGradTests.tinyConfig
        var o = TrainOptions()
        o.seed = 3
        let t = try DiTTrainer(config: c, options: o)
        let m = try DiTTrainGradTests.randomised(c, seed: 5)
        for (a, b) in zip(t.model.parameters, m.parameters) { a.value = b.value }
        let n = 6, per = c.inChannels * c.inputSize * c.inputSize
        let set = LatentSet(
            latents: GradCheck.random([n * per], seed: 8).data, labels: (0..<n).map { $0 % 3 },
            latentShape: [c.inChannels, c.inputSize, c.inputSize], classCount: 3, summary: "random", scale: 1)
        let l1 = try t.heldOutLoss(set, seed: 4, batchSize: 4), l2 = try t.heldOutLoss(set, seed: 4, batchSize: 1)
        XCTAssertEqual(l1, l2, accuracy: 1e-6 * l1)
        XCTAssertNotEqual(l1, try t.heldOutLoss(set, seed: 5), "another seed, other noise")
        // By hand: latent i at t_i = floor((2i + 1) T / 2n) with the noise of Philox stream i, averaged.
        var sum = 0.0
        for i in 0..<n {
            var rng = PhiloxRandom(seed: 4, stream: UInt64(i))
            let eps = Tensor(shape: [1] + set.latentShape, data: (0..<per).map { _ in rng.normal() })
            let ti = (2 * i + 1) * 1000 / (2 * n)
            let (x0, y) = set.batch([i])
            let out = t.model.trainingForward(t.diffusion.qSample(x0: x0, t: [ti], noise: eps), t: [Float(ti)], y: y)
            sum += Losses.mse(out, eps).loss
        }
        XCTAssertEqual(l1, sum / Double(n), accuracy: 1e-6 * l1)
        let wrong = LatentSet(
            latents: [Float](repeating: 0, count: 2 * per), labels: [0], latentShape: [2 * c.inChannels, c.inputSize, c.inputSize],
            classCount: 3, summary: "wrong")
        XCTAssertThrowsError(try t.heldOutLoss(wrong)) { XCTAssertTrue("\($0)".contains("do not fit"), "\($0)") }
    }
}
