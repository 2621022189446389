import Foundation
import Tensor

/// An 8-bit image, row-major HWC (channels 1 = gray, 3 = RGB, 4 = RGBA), as image files and ADM `.npz`
/// batches store pixels.
public struct Image8: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * channels, "Image8: \(pixels.count) bytes for \(width)x\(height)x\(channels)")
        self.width = width; self.height = height; self.channels = channels; self.pixels = pixels
    }

    /// From a [3, H, W] (or [1, 3, H, W]) tensor in [-1, 1], with `PixelConversion.fromSigned` rounding.
    public init(signedCHW t: Tensor) {
        let s = t.rank == 4 ? Array(t.shape.dropFirst()) : t.shape
        precondition(s.count == 3, "expected [C, H, W], got \(t.shape)")
        let (c, h, w) = (s[0], s[1], s[2])
        var px = [UInt8](repeating: 0, count: c * h * w)
        for ch in 0..<c { for i in 0..<(h * w) { px[i * c + ch] = PixelConversion.fromSigned(t.data[ch * h * w + i]) } }
        self.init(width: w, height: h, channels: c, pixels: px)
    }

    /// As a [1, C, H, W] tensor in [-1, 1].
    public func signedCHW() -> Tensor {
        var d = [Float](repeating: 0, count: pixels.count)
        let hw = width * height
        for i in 0..<hw { for ch in 0..<channels { d[ch * hw + i] = PixelConversion.toSigned(pixels[i * channels + ch]) } }
        return Tensor(shape: [1, channels, height, width], data: d)
    }
}
