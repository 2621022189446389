import Foundation
import ModelIO
import Tensor

/// The latent space a diffusion model denoises in, as its sampler and editor see it: scaled latents
/// [N, C, h, w] <-> images [N, 3, H, W] in [-1, 1]. "Scaled" means as the denoiser was trained (SD's
/// `latent * 0.18215`, or the tiny VQ-VAE's f-hat times its `latent_scale`).
public protocol LatentCodec {
    var latentChannels: Int { get }
    /// Image side / latent side.
    var downsampleFactor: Int { get }
    /// Scaled latents -> images (the decoder's raw output for the KL-VAE, clamped to [-1, 1] for the VQ-VAE); throws
    /// `NonFiniteError` when the latents or the decoder's output hold NaN or infinity.
    func decode(_ latents: Tensor) throws -> Tensor
    /// Images -> scaled latents, deterministically (the posterior mean for the KL-VAE).
    func encode(_ images: Tensor) throws -> Tensor
}

/// The SD KL-VAE: latents = (posterior mean - shift) * scaling_factor; decode(z / scaling_factor + shift).
public struct KLLatentCodec: LatentCodec {
    public let vae: KLVAE
    public init(vae: KLVAE) { self.vae = vae }
    public var latentChannels: Int { vae.config.latentChannels }
    public var downsampleFactor: Int { vae.config.downsampleFactor }
    var scale: Float { vae.config.scalingFactor }
    var shift: Float { vae.config.shiftFactor ?? 0 }

    public func decode(_ latents: Tensor) throws -> Tensor {
        try latents.requireFinite("latents given to the KL-VAE decoder")
        let images = try vae.decode(latents.map { $0 / scale + shift })
        try images.requireFinite("KL-VAE decoder output")
        return images
    }
    public func encode(_ images: Tensor) throws -> Tensor { try vae.encode(images).mean.map { ($0 - shift) * scale } }
}

/// The VAR multi-scale VQ-VAE's continuous latent f-hat (the sum over scales that its decoder consumes), times a
/// scalar `scale` (1 / std of f-hat over training images): decode = decoder(post_quant_conv(latents / scale)),
/// encode = f-hat of the image's tokens (encoder, quant_conv, quantiser) * scale. Used by the tiny DiT, so VAR and
/// DiT share one decoder.
public struct VQLatentCodec: LatentCodec {
    public let vae: VQVAE
    public let scale: Float
    public init(vae: VQVAE, scale: Float) { self.vae = vae; self.scale = scale }
    public var latentChannels: Int { vae.config.zChannels }
    public var downsampleFactor: Int { vae.config.downsampling }

    public func decode(_ latents: Tensor) throws -> Tensor {
        guard latents.rank == 4, latents.shape[1] == latentChannels else {
            throw AutoencoderError.badInput("VQ-VAE decode expects latents [N, \(latentChannels), h, w], got \(latents.shape)")
        }
        try latents.requireFinite("latents given to the VQ-VAE decoder")
        let images = vae.decode(fhat: latents.map { $0 / scale })
        try images.requireFinite("VQ-VAE decoder output")
        return images
    }

    /// f-hat (unscaled) of images [N, 3, H, W]; H / downsampling must be the last patch number.
    public func fhat(_ images: Tensor) throws -> Tensor {
        let side = vae.patchNums.last! * downsampleFactor
        guard images.rank == 4, images.shape[1] == vae.config.inChannels, images.shape[2] == side, images.shape[3] == side else {
            throw AutoencoderError.badInput(
                "VQ-VAE encode expects images [N, \(vae.config.inChannels), \(side), \(side)], got \(images.shape)")
        }
        return vae.quantizer.fhat(tokens: try vae.tokens(images: images), batch: images.shape[0]).last!
    }

    public func encode(_ images: Tensor) throws -> Tensor { try fhat(images).map { $0 * scale } }

    /// Opens a VQ-VAE checkpoint whose scale schedule is in its metadata (`varlab.patch_nums`, written by
    /// `varlab train vqvae`) or given.
    public static func loadVQVAE(path: String, patchNums: [Int]? = nil) throws -> VQVAE {
        let archive = try CheckpointLoader.open(path: path)
        var pns = patchNums
        if pns == nil, let meta = (archive as? SafetensorsFile)?.metadata[.patchNums] {
            pns = meta.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        }
        guard let pns, !pns.isEmpty else {
            throw AutoencoderError.badInput("\(path): no scale schedule (metadata 'varlab.patch_nums' missing); cannot build the VQ-VAE")
        }
        return try VQVAE(archive: archive, patchNums: pns)
    }

    /// True when the file holds a VAR VQ-VAE (multi-scale quantiser keys), false otherwise (or unreadable).
    public static func isVQVAE(path: String) -> Bool {
        guard let a = try? CheckpointLoader.open(path: path) else { return false }
        return a.contains("quantize.embedding.weight") && a.contains("decoder.conv_in.weight")
    }
}
