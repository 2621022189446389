import Autoencoders
import DiT
import Foundation
import ModelIO
import Samplers
import Tensor
import TestSupport
import XCTest

/// RePaint / SDEdit on the fixture DiT (dit/dit.safetensors, respacing and labels from dit/manifest.json).
/// The known latent is a fixed random tensor (the KL-VAE only changes where it comes from).
final class EditDiffusionTests: XCTestCase {
    struct Setup { var model: DiTModel; var diffusion: GaussianDiffusion; var labels: [Int]; var shape: [Int] }

    func setup() throws -> Setup {
        let manifest = try Fixtures.json("dit/manifest.json")
        let cfg = try XCTUnwrap((manifest["meta"] as? [String: Any])?["config"] as? [String: Any])
        let model = try DiTModel.load(path: Fixtures.path("dit/dit.safetensors"))
        let d = try GaussianDiffusion(respacing: try XCTUnwrap(cfg["respacing"] as? String), learnSigma: model.config.learnSigma)
        let labels = try XCTUnwrap(cfg["sample_y"] as? [Int])
        let c = model.config
        return Setup(model: model, diffusion: d, labels: labels, shape: [labels.count, c.inChannels, c.inputSize, c.inputSize])
    }

    func known(_ shape: [Int]) -> Tensor {
        var rng = PhiloxRandom(seed: 77)
        return Tensor.randn(shape, rng: &rng)
    }

    /// Left half of the latent kept, right half regenerated.
    func halfMask(_ s: Setup) -> [Bool] {
        let w = s.shape[3]
        return (0..<(s.shape[2] * w)).map { ($0 % w) < w / 2 }
    }

    func run(
        _ s: Setup, keep: [Bool], mode: DiffusionEditor.Mode = .inpaint, method: DiffusionSampler.Method = .ddpm,
        resample: (Int, Int)? = nil, seed: UInt64 = 5
    ) throws -> Tensor {
        let ed = DiffusionEditor(
            sampler: DiffusionSampler(diffusion: s.diffusion, method: method), mode: mode,
            resample: resample.map { (jumpLength: $0.0, jumpNSample: $0.1) })
        var noise = PerSampleNoise(seed: seed, sampleIndices: Array(0..<s.labels.count))
        var editNoise = PerSampleNoise(seed: seed ^ 0xED17, sampleIndices: Array(0..<s.labels.count))
        return try ed.run(
            known: known(s.shape), keep: keep, noise: &noise, editNoise: &editNoise,
            denoiser: DiTDenoisers.plain(s.model, labels: s.labels))
    }

    func keptValues(_ x: Tensor, _ keep: [Bool]) -> [Float] {
        let hw = keep.count
        return x.data.enumerated().filter { keep[$0.offset % hw] }.map(\.element)
    }

    func testKeptRegionEqualsKnownLatentExactly() throws {
        let s = try setup()
        let keep = halfMask(s)
        let k = known(s.shape)
        for (mode, method, resample) in [
            (DiffusionEditor.Mode.inpaint, DiffusionSampler.Method.ddpm, nil as (Int, Int)?),
            (.inpaint, .ddim(eta: 0), nil), (.inpaint, .ddpm, (5, 2)),
            (.sdedit(strength: 0.5), .ddpm, nil),
        ] {
            let x = try run(s, keep: keep, mode: mode, method: method, resample: resample)
            XCTAssertEqual(keptValues(x, keep), keptValues(k, keep), "\(mode) \(method)")
            // the regenerated region is not the known latent
            XCTAssertNotEqual(keptValues(x, keep.map { !$0 }), keptValues(k, keep.map { !$0 }))
        }
    }

    func testKeepAllReturnsKnownLatent() throws {
        let s = try setup()
        let x = try run(s, keep: [Bool](repeating: true, count: s.shape[2] * s.shape[3]))
        XCTAssertEqual(x.data, known(s.shape).data)
    }

    /// Regenerating everything is plain sampling with the same seed: the editing noise is a separate source.
    func testRegenerateAllEqualsPlainSampling() throws {
        let s = try setup()
        let keep = [Bool](repeating: false, count: s.shape[2] * s.shape[3])
        for method in [DiffusionSampler.Method.ddpm, .ddim(eta: 0)] {
            let x = try run(s, keep: keep, method: method)
            var noise = PerSampleNoise(seed: 5, sampleIndices: Array(0..<s.labels.count))
            let plain = try DiffusionSampler(diffusion: s.diffusion, method: method)
                .sample(shape: s.shape, noise: &noise, denoiser: DiTDenoisers.plain(s.model, labels: s.labels))
            XCTAssertEqual(x.data, plain.data, "\(method)")
        }
    }

    func testDeterministicAndSeedDependent() throws {
        let s = try setup()
        let keep = halfMask(s)
        let a = try run(s, keep: keep, resample: (5, 2)), b = try run(s, keep: keep, resample: (5, 2))
        XCTAssertEqual(a.data, b.data)
        let c = try run(s, keep: keep, resample: (5, 2), seed: 6)
        XCTAssertNotEqual(a.data, c.data)
    }

    func testSDEditStartAndSchedule() throws {
        XCTAssertEqual(DiffusionEditor.sdeditStart(strength: 1, steps: 50), 49)
        XCTAssertEqual(DiffusionEditor.sdeditStart(strength: 0.5, steps: 50), 24)
        XCTAssertEqual(DiffusionEditor.sdeditStart(strength: 0.001, steps: 50), 0)
        let s = try setup()
        XCTAssertThrowsError(try run(s, keep: halfMask(s), mode: .sdedit(strength: 0)))
        XCTAssertThrowsError(try run(s, keep: [true], mode: .inpaint))
    }

    /// The whole latent path with the fixture KL-VAE: known latent = encoder mean x scaling factor of the fixture
    /// images (centre crop to the DiT's image size); kept latent cells equal it exactly; keep-all decodes to the
    /// reconstruction decode(mean) (up to the x s / s float32 round trip: 1e-5 relative).
    func testWithKLVAEEncoding() throws {
        let s = try setup()
        let vae = try KLVAE.load(path: Fixtures.path("dit/autoencoder_kl"))
        let images = try Fixtures.safetensors("dit/autoencoder_kl_io.safetensors").floatTensor("images")
        let size = s.model.config.inputSize * vae.config.downsampleFactor
        let (n, ch, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        let (oy, ox) = ((h - size) / 2, (w - size) / 2)
        var crop = [Float]()
        for b in 0..<n {
            for c in 0..<ch {
                for y in 0..<size {
                    for x in 0..<size {
                        crop.append(images.data[((b * ch + c) * h + oy + y) * w + ox + x])
                    }
                }
            }
        }
        let x = Tensor(shape: [n, ch, size, size], data: crop)
        let mean = try vae.encode(x).mean
        let scale = vae.config.scalingFactor
        let known = mean.map { $0 * scale }
        XCTAssertEqual(Array(known.shape.suffix(3)), Array(s.shape.suffix(3)))
        let keep = halfMask(s)
        let ed = DiffusionEditor(sampler: DiffusionSampler(diffusion: s.diffusion, method: .ddpm), mode: .inpaint)
        var noise = PerSampleNoise(seed: 1, sampleIndices: Array(0..<n))
        var editNoise = PerSampleNoise(seed: 2, sampleIndices: Array(0..<n))
        let labels = [Int](repeating: s.model.config.nullClass, count: n)
        let out = try ed.run(
            known: known, keep: keep, noise: &noise, editNoise: &editNoise,
            denoiser: DiTDenoisers.plain(s.model, labels: labels))
        XCTAssertEqual(keptValues(out, keep), keptValues(known, keep))
        var n2 = PerSampleNoise(seed: 1, sampleIndices: Array(0..<n)), e2 = PerSampleNoise(seed: 2, sampleIndices: Array(0..<n))
        let all = try ed.run(
            known: known, keep: [Bool](repeating: true, count: keep.count), noise: &n2, editNoise: &e2,
            denoiser: DiTDenoisers.plain(s.model, labels: labels))
        let recon = try vae.decode(mean)
        XCTAssertLessThanOrEqual(relativeError(try vae.decode(all.map { $0 / scale }), recon), 1e-5)
    }
}
