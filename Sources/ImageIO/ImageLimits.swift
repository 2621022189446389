import Foundation

/// How large an image the decoders accept, checked from the file's header before anything is allocated, so a
/// tiny file declaring 30000 x 30000 pixels fails at once instead of taking gigabytes.
public enum ImageLimits {
    /// PIL's decompression-bomb limit (2 x `Image.MAX_IMAGE_PIXELS` = 178,956,970 pixels, about 13,377 squared),
    /// or `VARLAB_MAX_PIXELS` when set to a positive integer.
    nonisolated(unsafe) public static var maxPixels: Int = {
        if let s = ProcessInfo.processInfo.environment["VARLAB_MAX_PIXELS"], let v = Int(s), v > 0 { return v }
        return 178_956_970
    }()
}
