import Autoencoders
import Foundation
import ModelIO
import Samplers
import Tensor
import VAR

/// VAR at an official size with random weights in the exact released shapes (VAR-d{depth} + the ch160 / z32 /
/// v4096 VQ-VAE), so it runs without downloads: a full 256x256 generation with the official settings (cfg 1.5,
/// top-k 900, top-p 0.96), split into the transformer loop (scales, KV cache, token sampling) and the decode.
public final class VARBenchmark {
    public let config: VARConfig
    public let pruning: TokenPruning?
    public let buildSeconds: Double
    public let precision: MatmulPrecision
    let vae: VQVAE
    let model: VARModel
    let sampler: NextScaleSampler<VARModel>

    public init(
        depth: Int, shareBlocks: Bool = false, pruning: TokenPruning? = nil, precision: MatmulPrecision = .float32
    ) throws {
        config = VARConfig.official(depth: depth)
        self.pruning = pruning
        let t0 = Date()
        self.precision = precision
        model = try VARModel(archive: RandomArchive(shapes: config.stateDictShapes, shareBlocks: shareBlocks))
        model.setMatmulPrecision(precision)
        vae = try VQVAE(
            archive: RandomArchive(shapes: VQVAEConfig.official.stateDictShapes, shareBlocks: false), patchNums: config.patchNums)
        sampler = try NextScaleSampler(model: model, vae: vae, cfg: 1.5, options: TokenSamplingOptions(), pruning: pruning)
        buildSeconds = Date().timeIntervalSince(t0)
    }

    /// Analytic FLOPs per image (multiply-adds x 2): the transformer's CFG pair and the VQ-VAE decode.
    public var transformerGFLOP: Double { config.samplingFLOPs / 1e9 }
    public var decodeGFLOP: Double { VQVAEConfig.official.decoderFLOPs(latent: config.patchNums.last!) / 1e9 }

    /// One untimed generation (pages in the weights, sizes the BLAS buffers).
    public func warmUp() throws { _ = try sampler.sample(labels: [1], seed: 0, decode: false) }

    public struct Result: Sendable {
        public let batch: Int
        /// Per image, means over the repeats.
        public let transformer: Timing
        public let decode: Timing
        /// The last repeat's op profiles, transformer then decode (with `profile`; GEMM FLOPs are for the batch).
        public let profiles: [OpProfile]
        public var total: Timing { transformer + decode }
    }

    /// Per scale, the fraction of tokens the benchmark's precision draws exactly as float32 does (same labels, seeds
    /// and sampling settings; a flipped token changes every later scale's context, so differences compound).
    public func tokenAgreementWithFloat32(batch: Int) throws -> [Double] {
        let labels = (0..<batch).map { ($0 * 97) % config.numClasses }
        let ours = try sampler.sample(labels: labels, seed: 0, decode: false)
        model.setMatmulPrecision(.float32)
        defer { model.setMatmulPrecision(precision) }
        let reference = try sampler.sample(labels: labels, seed: 0, decode: false)
        return zip(ours.tokens, reference.tokens).map { a, b in Double(zip(a, b).filter { $0 == $1 }.count) / Double(a.count) }
    }

    public func run(batch: Int, repeats: Int, profile: Bool = false) throws -> Result {
        var tT = Timing(), tD = Timing()
        var profiles: [OpProfile] = []
        for r in 0..<repeats {
            let labels = (0..<batch).map { ($0 * 97 + r) % config.numClasses }
            let last = profile && r == repeats - 1
            let (res, t1, p1) = try profiled(last, "transformer phase, batch \(batch)") {
                try sampler.sample(labels: labels, sampleIndices: Array(0..<batch), seed: UInt64(r), decode: false)
            }
            let (_, t2, p2) = profiled(last, "VQ-VAE decode, batch \(batch)") { vae.decode(fhat: res.fhat) }
            tT = tT + t1
            tD = tD + t2
            profiles += [p1, p2].compactMap { $0 }
        }
        let n = Double(batch * repeats)
        return Result(batch: batch, transformer: tT / n, decode: tD / n, profiles: profiles)
    }
}
