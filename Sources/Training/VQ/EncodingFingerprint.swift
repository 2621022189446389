import Foundation
import ModelIO

/// Identity of what a VQ-VAE file does to an image on the way in: the tensors encoding reads (encoder, quant_conv,
/// the quantiser's codebook and phi convolutions) and the metadata that shapes them (scales, GroupNorm groups),
/// hashed with FNV-1a 64. The decoder, post_quant_conv and optimizer state are left out, so a decoder fine-tune or
/// a copy of the file keeps the token and latent caches made from its base. A file that is not safetensors (an
/// official .pth) is identified by all of its bytes.
public enum EncodingFingerprint {
    /// Tensor name prefixes that do not affect encoding.
    static let ignoredPrefixes = ["decoder.", "post_quant_conv.", "optimizer."]

    public static func of(vaePath: String) throws -> String {
        var h = FNV1a64()
        guard (try? CheckpointLoader.detectFormat(path: vaePath)) == .safetensors else {
            let d = try Data(contentsOf: URL(fileURLWithPath: vaePath), options: .mappedIfSafe)
            d.withUnsafeBytes { h.add($0) }
            return "vae \(d.count) bytes fnv1a \(h.hex)"
        }
        let f = try SafetensorsFile(path: vaePath)
        let keys = f.keys.filter { k in !ignoredPrefixes.contains { k.hasPrefix($0) } }.sorted()
        var bytes = 0
        for k in keys {
            guard let info = f.info(k) else { continue }
            h.add(Array("\(k) \(info.dtype) \(info.shape)\n".utf8))
            let raw = try f.rawBytes(k)
            h.add(raw)
            bytes += raw.count
        }
        for key in [MetadataKey.patchNums, .normGroups] { h.add(Array("\(key.rawValue)=\(f.metadata[key] ?? "")\n".utf8)) }
        return "vae encoder \(keys.count) tensors \(bytes) bytes fnv1a \(h.hex)"
    }
}

/// FNV-1a, 64 bits: a fast, stable fingerprint (not a cryptographic hash; caches only need to tell files apart).
struct FNV1a64 {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
    mutating func add(_ p: UnsafeRawBufferPointer) {
        for byte in p { value = (value ^ UInt64(byte)) &* 0x100_0000_01b3 }
    }
    mutating func add(_ bytes: [UInt8]) { bytes.withUnsafeBytes { add($0) } }
    var hex: String { String(value, radix: 16) }
}
