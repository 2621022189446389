import Foundation
import ImageIO
import Tensor

/// How uint8 RGB images become the Inception's [N, 3, 299, 299] input. Both modes resize every image to
/// 299 x 299 with plain bilinear interpolation (no antialiasing), even when it already is 299 x 299 (then the
/// resize is an exact identity).
public enum InceptionPreprocessing: String, Sendable, CaseIterable {
    /// What the ADM evaluator's TensorFlow graph (`classify_image_graph_def.pb`, fed at `ExpandDims:0`) does,
    /// the default because VAR and DiT report ADM numbers: float pixels in [0, 255] -> TF1 `ResizeBilinear`
    /// (align_corners=False, **no** half-pixel offset: src = dst * in / out) -> (x - 128) / 128.
    case tf
    /// pytorch-fid's `get_activations`: x / 255 -> `F.interpolate(299, bilinear, align_corners=False)`
    /// (half-pixel centres) -> 2x - 1.
    case pytorchFid = "pytorch-fid"

    /// Preprocessed input for RGB images (any sizes; each is resized on its own).
    public func input(_ images: [Image8]) throws -> Tensor {
        let s = InceptionV3.inputSize
        var out = [Float]()
        out.reserveCapacity(images.count * 3 * s * s)
        for img in images {
            guard img.channels == 3 else {
                throw MetricsError.input("Inception input must be RGB (3 channels), got \(img.channels); convert first")
            }
            let plane = img.width * img.height
            var chw = [Float](repeating: 0, count: 3 * plane)
            for i in 0..<plane {
                for c in 0..<3 {
                    let v = Float(img.pixels[i * 3 + c])
                    chw[c * plane + i] = self == .tf ? v : v / 255
                }
            }
            let x = Tensor(shape: [1, 3, img.height, img.width], data: chw)
            let r = x.interpolated(height: s, width: s, mode: self == .tf ? .bilinearNoHalfPixel : .bilinear)
            switch self {
            case .tf: out.append(contentsOf: r.data.map { ($0 - 128) * 0.0078125 })
            case .pytorchFid: out.append(contentsOf: r.data.map { 2 * $0 - 1 })
            }
        }
        return Tensor(shape: [images.count, 3, s, s], data: out)
    }
}
