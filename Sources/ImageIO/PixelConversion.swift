import Foundation
import Tensor

/// Conversions between 8-bit pixels and floats.
/// - uint8 -> [-1, 1]: v / 127.5 - 1 (exact inverse of the affine map the official pipelines use for input).
/// - [-1, 1] -> uint8: clamp((x + 1) * 127.5 + 0.5) truncated, i.e. round half up, as `sample_ddp.py`
///   (`torch.clamp(127.5 * x + 128.0, 0, 255).to(uint8)`).
/// - [0, 1] -> uint8: clamp(x * 255 + 0.5) truncated (round half up), like torchvision's save_image.
public enum PixelConversion {
    public static func toSigned(_ v: UInt8) -> Float { Float(v) / 127.5 - 1 }
    public static func fromSigned(_ x: Float) -> UInt8 {
        let v = 127.5 * x + 128
        if !(v > 0) { return 0 }
        return v >= 255 ? 255 : UInt8(v)
    }
    public static func fromUnit(_ x: Float) -> UInt8 {
        let v = x * 255 + 0.5
        if !(v > 0) { return 0 }
        return v >= 255 ? 255 : UInt8(v)
    }
}
