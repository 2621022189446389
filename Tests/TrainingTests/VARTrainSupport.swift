import Autoencoders
import Foundation
import ModelIO
import Tensor
import Training
import VAR
import XCTest

/// Shared fixtures of the VAR training tests: a tiny VQ-VAE (random weights, 8x8 images, 4x4 latent, scales 1,2,4,
/// vocabulary 16) and a random labelled image set. Sizes are small so every test runs in seconds.
enum VARTrainFixture {
    static let patchNums = [1, 2, 4]

    static func tempPath(_ name: String) -> String {
        NSTemporaryDirectory() + "varlab-vartrain-\(ProcessInfo.processInfo.processIdentifier)-\(name).safetensors"
    }

    /// Writes a random-initialised trainable VQ-VAE as a checkpoint and loads it in the inference VQVAE.
    static func vae() throws -> (VQVAE, String) {
        let c = VQVAEConfig(
            ch: 32, chMult: [1, 2], numResBlocks: 1, zChannels: 4, vocabSize: 16, attnAtLowest: false, midAttn: false,
            phiLayout: .partiallyShared(4))
        let m = try VQVAE(config: c, patchNums: patchNums, seed: 3)
        // Spread the codebook (init is ±1/V) so the tokens vary across images.
        m.quantizer.codebook.value = GradCheckHelpers.random(m.quantizer.embedding.shape, seed: 9, scale: 0.5)
        let path = tempPath("vq")
        try TrainCheckpoint.write(
            path: path, model: VQVAE.checkpointName, configJSON: try c.canonicalJSON(), step: 0,
            params: m.parameters, optimizer: nil, extra: ["varlab.patch_nums": "1,2,4"])
        return (try VQVAE(archive: try SafetensorsFile(path: path), patchNums: patchNums), path)
    }

    struct RandomImages: LabeledImageSource {
        let count: Int
        var classCount: Int { 3 }
        var imageSize: Int { 8 }
        var summary: String { "random test images" }
        func batch(_ indices: [Int]) -> (images: Tensor, labels: [Int]) {
            let imgs = indices.map { GradCheckHelpers.random([1, 3, 8, 8], seed: 77, stream: UInt64($0), scale: 0.6) }
            return (Tensor.cat0(imgs), indices.map { $0 % 3 })
        }
    }

    static func config(_ variant: VARVariant = .next, vae: VQVAE) -> VARConfig {
        var c = VARConfig()
        c.variant = variant; c.depth = 2; c.width = 32; c.heads = 2; c.mlpRatio = 2
        c.vocabSize = vae.quantizer.vocabSize; c.cvae = vae.quantizer.channels; c.numClasses = 3; c.patchNums = vae.patchNums
        return c
    }

    static func trainer(_ variant: VARVariant = .next, images: Int = 8, options: TrainOptions, ema: Float = 0) throws -> VARTrainer {
        let (vae, _) = try vae()
        let kind: VARTokenSet.Kind = variant == .ar ? .finestOnly : .multiScale
        let data = try VARTokenSet.encode(vae: vae, source: RandomImages(count: images), count: images, kind: kind)
        return try VARTrainer(config: config(variant, vae: vae), options: options, vae: vae, data: data, emaDecay: ema)
    }
}

extension VARTrainFixture {
    /// Moves the weights away from the near-identity init (so every block matters), writes them as the trainer
    /// ships them and loads that file as an inference model. The caller removes the file.
    static func perturbedExport(_ trainer: VARTrainer, seed: UInt64, name: String) throws -> (model: VARModel, path: String) {
        for (i, p) in trainer.model.parameters.enumerated() {
            p.value = p.value + GradCheck.random(p.value.shape, seed: seed, stream: UInt64(i), scale: 0.2)
        }
        let path = tempPath(name)
        try trainer.exportWeights(to: path)
        return (try VARModel(archive: try SafetensorsFile(path: path)), path)
    }

    /// Relative L2 error ‖a - b‖ / ‖b‖ in Double.
    static func relErr(_ a: [Float], _ b: [Float]) -> Double {
        var num = 0.0, den = 0.0
        for i in 0..<a.count { let d = Double(a[i]) - Double(b[i]); num += d * d; den += Double(b[i]) * Double(b[i]) }
        return (num / max(den, 1e-30)).squareRoot()
    }
}

enum GradCheckHelpers {
    static func random(_ shape: [Int], seed: UInt64, stream: UInt64 = 0, scale: Float = 1) -> Tensor {
        GradCheck.random(shape, seed: seed, stream: stream, scale: scale)
    }
}
