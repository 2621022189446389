import Autoencoders
import DiT
import Foundation
import Samplers
import Tensor

/// DiT at an official size with random weights in the released shapes. One denoising step is the CFG pair
/// (batch 2: the conditional and the null row of one image), exactly what the official sample.py runs per step;
/// an image at N steps costs N steps plus one SD-VAE decode.
public final class DiTBenchmark {
    public let config: DiTConfig
    public let buildSeconds: Double
    let model: DiTModel

    public init(config: DiTConfig, shareBlocks: Bool = false, precision: MatmulPrecision = .float32) throws {
        self.config = config
        let t0 = Date()
        model = try DiTModel.random(config: config, shareBlocks: shareBlocks)
        model.setMatmulPrecision(precision)
        buildSeconds = Date().timeIntervalSince(t0)
    }

    /// Analytic FLOPs of one step (the CFG pair).
    public var stepGFLOP: Double { config.forwardFLOPs * 2 / 1e9 }

    public struct StepResult: Sendable {
        public let warmUp: Double
        /// Median wall seconds per step over the repeats, and the mean CPU seconds per step.
        public let median: Double
        public let cpuPerStep: Double
        public let profile: OpProfile?
    }

    public func steps(repeats: Int, profile: Bool = false) throws -> StepResult {
        let diffusion = try GaussianDiffusion(respacing: "250")
        var rng = PhiloxRandom(seed: 1)
        let x = Tensor.randn([1, config.inChannels, config.inputSize, config.inputSize], rng: &rng)
        let denoiser = DiTDenoisers.guided(model, labels: [207], scale: 1.5)
        func step(_ k: Int) throws {
            let t = Float(diffusion.timestepMap[diffusion.numSteps - 1 - k % diffusion.numSteps])
            _ = try denoiser(x, [t])
        }
        let (_, warm) = try Timing.measure { try step(0) }
        var walls: [Double] = []
        var cpu = 0.0
        for k in 0..<repeats {
            let (_, t) = try Timing.measure { try step(k + 1) }
            walls.append(t.wall)
            cpu += t.cpu
        }
        var table: OpProfile?
        if profile {
            (_, _, table) = try profiled(true, "one denoising step (batch 2, CFG pair)") { try step(repeats + 1) }
        }
        return StepResult(warmUp: warm.wall, median: walls.sorted()[walls.count / 2], cpuPerStep: cpu / Double(repeats), profile: table)
    }
}

/// The SD-VAE (KL-f8) decode of one latent with random weights, built and warmed up once, then run as often as asked.
public final class SDVAEDecodeBenchmark {
    let vae: KLVAE
    let z: Tensor

    public init(latentSize: Int) throws {
        vae = try KLVAE.random(config: .stableDiffusion)
        var rng = PhiloxRandom(seed: 2)
        z = Tensor.randn([1, 4, latentSize, latentSize], rng: &rng)
        _ = try vae.decode(z)
    }

    public func run(profile: Bool = false) throws -> (Timing, OpProfile?) {
        let (_, t, table) = try profiled(profile, "SD-VAE decode") { try vae.decode(z) }
        return (t, table)
    }
}
