import Autoencoders
import DiT
import Foundation
import ModelIO
import Tensor
import Training
import XCTest

/// The DiT trainer: training/inference parity through a checkpoint, learning, determinism, resume, and the
/// VQ-VAE f-hat latent codec that the tiny DiT samples and edits through.
final class DiTTrainTests: XCTestCase {
    func tmp(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(getpid()).safetensors").path
    }

    /// A trainable DiT with non-zero weights everywhere, saved with TrainCheckpoint, loads in the inference DiTModel
    /// (official names; config inferred from shapes, heads from the metadata) and gives the trainable forward's output.
    func testCheckpointLoadsInInferenceDiTWithSameOutput() throws {
        var c = DiTTrainGradTests.tinyConfig
        c.depth = 3; c.numHeads = 4
        let m = try DiTTrainGradTests.randomised(c, seed: 21)
        let path = tmp("dit-parity")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try TrainCheckpoint.write(
            path: path, model: DiTModel.checkpointName, configJSON: try c.canonicalJSON(), step: 0,
            params: m.stateDict, optimizer: nil, extra: ["varlab.heads": String(c.numHeads)])
        let heads = Int(try SafetensorsFile(path: path).metadata["varlab.heads"] ?? "")
        let inf = try DiTModel.load(path: path, numHeads: heads)
        var expected = c
        expected.classDropout = 0.1  // a training setting: the shapes do not say it, so the loaded config has the default
        XCTAssertEqual(inf.config, expected)
        XCTAssertFalse(inf.config.learnSigma)
        let x = GradCheck.random([3, 3, 4, 4], seed: 22), t: [Float] = [0, 499, 999], y = [0, 2, 3]
        let a = m.trainingForward(x, t: t, y: y), b = try inf.forward(x, t: t, y: y)
        XCTAssertEqual(a.shape, b.shape)
        // Same float32 ops except the attention kernels (summation order): a few ulps.
        XCTAssertLessThan(relErr(a, b), 1e-5)
        XCTAssertGreaterThan(a.data.map(abs).max() ?? 0, 0.1, "non-trivial output")
    }

    /// The official initialisation: zero adaLN and final layer, so the untrained model predicts eps = 0.
    func testOfficialInitGivesZeroOutput() throws {
        let m = try DiTModel(config: DiTTrainGradTests.tinyConfig, seed: 1)
        let out = m.trainingForward(GradCheck.random([2, 3, 4, 4], seed: 2), t: [3, 900], y: [0, 1])
        XCTAssertEqual(out.data.map(abs).max(), 0)
        XCTAssertTrue(m.parameters.filter { $0.name.contains("adaLN") }.allSatisfy { $0.value.data.allSatisfy { $0 == 0 } })
        XCTAssertEqual(m.parameters.first { $0.name == "y_embedder.embedding_table.weight" }?.value.shape, [4, 16], "classes + null row")
    }

    /// Repeating one training batch (same t, noise, dropout) the loss must fall well below its start.
    func testOverfitsATinyProblem() throws {
        var o = TrainOptions(); o.seed = 4
        let tr = try DiTTrainer(config: DiTTrainGradTests.tinyConfig, options: o)
        let x = GradCheck.random([4, 3, 4, 4], seed: 30), y = [0, 1, 2, 0]
        let opt = AdamW(tr.model.parameters, weightDecay: 0)
        var first = 0.0, last = 0.0
        for s in 0..<60 {
            for p in tr.model.parameters { p.zeroGrad() }
            let loss = tr.trainStep(x, y, step: 0)
            if s == 0 { first = loss }
            last = loss
            opt.update(lr: 3e-3)
        }
        XCTAssertEqual(first, 1, accuracy: 0.5, "the zero-init model's loss is the noise variance")
        XCTAssertLessThan(last, 0.3 * first, "loss \(first) -> \(last)")
    }

    /// Min-SNR-γ: weight min(SNR, γ)/SNR (1 where SNR <= γ, i.e. noisy steps; γ/SNR on nearly clean ones), and a
    /// step's loss equals the hand-weighted per-sample MSE of the same draw.
    func testMinSNRWeighting() throws {
        var objective = DiTObjective()
        objective.minSNRGamma = 5
        var o = TrainOptions(); o.seed = 4
        let tr = try DiTTrainer(config: DiTTrainGradTests.tinyConfig, objective: objective, options: o)
        let abar = tr.diffusion.alphasCumprod
        for t in [0, 10, 200, 999] {
            let snr = abar[t] / (1 - abar[t])
            XCTAssertEqual(Double(tr.minSNRWeight(t: t, gamma: 5)), min(snr, 5) / snr, accuracy: 1e-6, "t = \(t)")
        }
        XCTAssertEqual(tr.minSNRWeight(t: 999, gamma: 5), 1, "pure-noise steps keep weight 1")
        XCTAssertLessThan(tr.minSNRWeight(t: 0, gamma: 5), 0.01, "nearly clean steps are down-weighted")
        // Same step with and without weighting: the weighted loss is smaller (weights <= 1), and not zero.
        let x = GradCheck.random([4, 3, 4, 4], seed: 30), y = [0, 1, 2, 0]
        let plain = try DiTTrainer(config: DiTTrainGradTests.tinyConfig, options: o)
        let lw = tr.trainStep(x, y, step: 3), lp = plain.trainStep(x, y, step: 3)
        XCTAssertGreaterThan(lw, 0)
        XCTAssertLessThanOrEqual(lw, lp)
        XCTAssertThrowsError(
            try {
                var bad = objective; bad.minSNRGamma = -1; try bad.validate()
            }())
    }

    func latentSet(_ n: Int) -> LatentSet {
        let x = GradCheck.random([n, 3, 4, 4], seed: 40)
        return LatentSet(latents: x.data, labels: (0..<n).map { $0 % 3 }, latentShape: [3, 4, 4], classCount: 3, summary: "random")
    }

    func train(threads: Int, config: DiTConfig, steps: Int, path: String, resume: Bool = false, ema: Float = 0.9) throws -> DiTTrainer {
        let saved = Parallel.threads
        Parallel.threads = threads
        defer { Parallel.threads = saved }
        var o = TrainOptions(); o.steps = steps; o.batchSize = 4; o.saveEvery = 1; o.warmupSteps = 1; o.seed = 9
        let tr = try DiTTrainer(config: config, options: o, emaDecay: ema)
        tr.loop.checkpointPath = path
        if resume { try tr.resume(from: path) }
        try tr.run(source: latentSet(12))
        return tr
    }

    /// Same seed -> the same checkpoint file, byte for byte, with 1 or 2 threads; resuming at step 1 reproduces
    /// the uninterrupted run (weights, EMA, optimizer).
    func testDeterministicAcrossThreadsAndResume() throws {
        let c = DiTTrainGradTests.tinyConfig
        let p1 = tmp("dit-det1"), p2 = tmp("dit-det2"), p3 = tmp("dit-det3")
        defer { for p in [p1, p2, p3] { try? FileManager.default.removeItem(atPath: p) } }
        _ = try train(threads: 1, config: c, steps: 2, path: p1)
        _ = try train(threads: 2, config: c, steps: 2, path: p2)
        XCTAssertEqual(FileManager.default.contents(atPath: p1), FileManager.default.contents(atPath: p2))
        _ = try train(threads: 2, config: c, steps: 1, path: p3)
        let resumed = try train(threads: 1, config: c, steps: 2, path: p3, resume: true)
        XCTAssertEqual(resumed.loop.step, 2)
        XCTAssertEqual(FileManager.default.contents(atPath: p1), FileManager.default.contents(atPath: p3))
    }

    func testResumeRefusesAnotherConfig() throws {
        let path = tmp("dit-cfg")
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try train(threads: 1, config: DiTTrainGradTests.tinyConfig, steps: 1, path: path)
        var other = DiTTrainGradTests.tinyConfig
        other.depth = 3
        XCTAssertThrowsError(try train(threads: 1, config: other, steps: 2, path: path, resume: true)) { e in
            guard case let TrainingError.checkpoint(msg) = e else { return XCTFail("\(e)") }
            XCTAssertTrue(msg.contains("cannot resume"), msg)
        }
    }

    /// Encoding a toy image to scaled f-hat and decoding it equals the VQ-VAE's own reconstruction
    /// (decoder(post_quant_conv(f-hat of its tokens))).
    func testVQLatentCodecRoundTripIsTheVQVAEReconstruction() throws {
        let vc = VQVAEConfig(
            ch: 32, chMult: [1, 2], numResBlocks: 1, zChannels: 4, vocabSize: 16, attnAtLowest: false, midAttn: false,
            phiLayout: .partiallyShared(2))
        let tv = try VQVAE(config: vc, patchNums: [1, 2, 4], seed: 2)
        let path = tmp("dit-vq")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try TrainCheckpoint.write(
            path: path, model: VQVAE.checkpointName, configJSON: try vc.canonicalJSON(), step: 0,
            params: tv.parameters, optimizer: nil, extra: ["varlab.patch_nums": "1,2,4"])
        XCTAssertTrue(VQLatentCodec.isVQVAE(path: path))
        let vae = try VQLatentCodec.loadVQVAE(path: path)
        let codec = VQLatentCodec(vae: vae, scale: 3.7)
        let x = ToyDataset(seed: 0, size: 8).batch([0, 5]).images
        let z = try codec.encode(x)
        XCTAssertEqual(z.shape, [2, 4, 4, 4])
        let own = vae.decode(tokens: try vae.tokens(images: x))
        XCTAssertLessThan(relErr(try codec.decode(z), own), 1e-5)
        XCTAssertThrowsError(try codec.encode(GradCheck.random([1, 3, 16, 16], seed: 1)), "wrong image size is an error")
    }

    /// The encoded set's scale makes the latents unit-variance.
    func testLatentSetScaleIsInverseStd() {
        let v = (0..<1000).map { Float($0 % 7) * 0.3 - 0.5 }
        let s = LatentSet(latents: v, labels: [Int](repeating: 0, count: 10), latentShape: [1, 10, 10], classCount: 1, summary: "")
        let b = s.batch(Array(0..<10)).images.data
        let mean = b.reduce(0.0) { $0 + Double($1) } / 1000
        let variance = b.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / 1000
        XCTAssertEqual(variance, 1, accuracy: 1e-5)
    }

    func relErr(_ a: Tensor, _ b: Tensor) -> Float {
        var n: Float = 0, d: Float = 0
        for i in 0..<a.count { n += (a.data[i] - b.data[i]) * (a.data[i] - b.data[i]); d += b.data[i] * b.data[i] }
        return (n / max(d, 1e-20)).squareRoot()
    }
}
