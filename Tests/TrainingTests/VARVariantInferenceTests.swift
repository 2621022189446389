import Autoencoders
import Foundation
import ModelIO
import Samplers
import Tensor
import Training
import VAR
import XCTest

/// The three models of the VAR family are one type: a file written by the trainer loads as an inference model, and
/// its KV-cached steps through the `TokenModel` seam (one scale per step, or one token per step for `ar`) give the
/// logits of the training forward. Tolerance: float32 rounding, since a cached step multiplies fewer rows per GEMM.
final class VARVariantInferenceTests: XCTestCase {
    func testCachedStepsEqualTrainingForwardForEveryVariant() throws {
        for variant in VARVariant.allCases {
            var opts = TrainOptions(); opts.steps = 1; opts.batchSize = 2
            let trainer = try VARTrainFixture.trainer(variant, images: 6, options: opts)
            let (model, path) = try VARTrainFixture.perturbedExport(trainer, seed: 31, name: "variant-\(variant.rawValue)")
            defer { try? FileManager.default.removeItem(atPath: path) }
            XCTAssertEqual(model.config, trainer.config, "\(variant.rawValue): config from the file")

            let indices = [1, 4], labels = [2, 3]  // 3 = the null class
            let (targets, input) = trainer.batch(indices)
            let train = try trainer.model.forward(labels: labels, input: input)
            let (b, L, v) = (labels.count, model.config.totalTokens, model.vocabSize)
            var state = try model.beginInference(labels: labels)
            var x = model.firstInput(state)
            var got = [[Float]](repeating: [], count: b)
            for (k, st) in model.steps.enumerated() {
                let logits = model.step(x, state: &state)
                let n = st.positions.count
                for s in 0..<b { got[s] += Array(logits.data[(s * n * v)..<((s + 1) * n * v)]) }
                guard k + 1 < model.steps.count else { break }
                switch input {
                case .tokens:
                    // Teacher forcing: the previous step's tokens are the targets at its positions.
                    let prev = (0..<b).flatMap { s in targets[(s * L + k)..<(s * L + k + 1)] }
                    x = model.input(
                        step: k + 1, previousTokens: prev, fhat: Tensor(zeros: [0]), quantizer: trainer.vae.quantizer, state: state)
                case .features(let f):
                    let (lo, hi) = model.config.beginEnds[k + 1]
                    let fl = model.config.firstL
                    let rows = (0..<b).map { s in f.slice0(s, s + 1).split([lo - fl, hi - lo, f.shape[1] - (hi - fl)], dim: 1)[1] }
                    x = model.scaleInput(Tensor.cat0(rows), scale: k + 1, state: state)
                }
            }
            XCTAssertEqual(state.position, L)
            for s in 0..<b {
                let ref = Array(train.data[(s * L * v)..<((s + 1) * L * v)])
                XCTAssertLessThan(VARTrainFixture.relErr(got[s], ref), 1e-5, "\(variant.rawValue) sample \(s)")
            }
        }
    }

    /// Every variant runs through the one sampler with every option: top-k, top-p, temperature, more-smooth,
    /// guidance, and the editing hook (kept tokens come back as the ground truth).
    func testEverySamplingOptionAndEditingOnEveryVariant() throws {
        for variant in VARVariant.allCases {
            var opts = TrainOptions(); opts.steps = 1; opts.batchSize = 2
            let trainer = try VARTrainFixture.trainer(variant, images: 4, options: opts)
            var options = TokenSamplingOptions()
            options.topK = 5; options.topP = 0.9; options.temperature = 0.9; options.moreSmooth = true
            let sampler = try NextScaleSampler(model: trainer.model, vae: trainer.vae, cfg: 2, options: options)
            let a = try sampler.sample(labels: [0, 2], sampleIndices: [0, 1], seed: 4)
            let one = try sampler.sample(labels: [2], sampleIndices: [1], seed: 4)
            XCTAssertEqual(a.images!.slice0(1, 2).data, one.images!.data, "\(variant.rawValue): a sample does not depend on its batch")
            XCTAssertEqual(a.tokens.count, variant == .ar ? 1 : trainer.vae.patchNums.count)

            let images = VARTrainFixture.RandomImages(count: 1).batch([0]).images
            let mask = try TokenEditMask(size: trainer.vae.patchNums.last!, values: (0..<16).map { $0 < 8 ? 1 : 0 })
            let edit = try VARZeroShotEditor(sampler: sampler).edit(images: images, mask: mask, labels: [1], seed: 5)
            let truth = try trainer.model.groundTruthTokens(latent: trainer.vae.encodeLatent(images), quantizer: trainer.vae.quantizer)
            let last = edit.sample.tokens.last!
            for p in 0..<8 { XCTAssertEqual(last[p], truth.last![p], "\(variant.rawValue): kept token \(p)") }
        }
    }
}

/// A varlab VAR file's `varlab.config` is read before any tensor: sizes beyond any VAR, a non-finite MLP ratio or
/// patch numbers whose squares overflow are refused with one line naming the file, not a trap or a huge allocation.
final class VARConfigLimitsTests: XCTestCase {
    func testHostileConfigMetadataIsRefused() throws {
        var opts = TrainOptions()
        opts.steps = 1; opts.batchSize = 2
        let trainer = try VARTrainFixture.trainer(images: 2, options: opts)
        let good = VARTrainFixture.tempPath("limits-good"), bad = VARTrainFixture.tempPath("limits-bad")
        defer { for p in [good, bad] { try? FileManager.default.removeItem(atPath: p) } }
        try trainer.exportWeights(to: good)
        let f = try SafetensorsFile(path: good)
        let json = try XCTUnwrap(f.metadata["varlab.config"])
        let cases = [
            ("\"mlpRatio\":2", "\"mlpRatio\":1e300"), ("\"patchNums\":[1,2,4]", "\"patchNums\":[1,2,3037000500]"),
            ("\"depth\":2", "\"depth\":100000000"), ("\"width\":32", "\"width\":4611686018427387904"),
        ]
        for (from, to) in cases {
            XCTAssertTrue(json.contains(from), json)
            var w = SafetensorsWriter()
            for k in f.keys { w.add(k, try f.floatTensor(k)) }
            for (k, v) in f.metadata { w.metadata[k] = v }
            w.metadata["varlab.config"] = json.replacingOccurrences(of: from, with: to)
            try w.write(to: bad)
            XCTAssertThrowsError(try VARModel(archive: try SafetensorsFile(path: bad)), to) { e in
                XCTAssertTrue("\(e)".contains("out of range") && !"\(e)".contains("\n"), "\(e)")
            }
        }
    }
}
