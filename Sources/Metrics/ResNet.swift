import Foundation
import ImageIO
import ModelIO
import Tensor

/// torchvision's Bottleneck ResNet (ResNet-50 = blocks [3, 4, 6, 3]) under torchvision key names, used as the
/// default ImageNet classifier for accuracy. "v1.5": the stride of a downsampling block is in its 3x3 conv.
/// The number of blocks per stage is read from the checkpoint's keys (`layerS.B.conv1.weight`), widths from the
/// weight shapes; only the architecture itself (stem 7x7/2 + max pool 3/2, stage strides 1, 2, 2, 2,
/// BatchNorm eps 1e-5) is fixed, as in torchvision.
public final class ResNet: @unchecked Sendable {
    public static let bnEps: Float = 1e-5

    struct Bottleneck {
        let conv1, conv2, conv3: ConvBN
        let downsample: ConvBN?
        func callAsFunction(_ x: Tensor) -> Tensor {
            var y = conv3(conv2(conv1(x)))
            let identity = downsample.map { $0(x) } ?? x
            y.data.withUnsafeMutableBufferPointer { p in
                identity.data.withUnsafeBufferPointer { q in
                    for i in 0..<p.count { let v = p[i] + q[i]; p[i] = v > 0 ? v : (v.isNaN ? v : 0) }
                }
            }
            return y
        }
    }

    let stem: ConvBN
    let stages: [[Bottleneck]]
    let fc: Linear
    public let path: String
    /// Blocks per stage as found in the checkpoint.
    public var blockCounts: [Int] { stages.map(\.count) }
    public var classes: Int { fc.outFeatures }

    public convenience init(path: String) throws {
        var archive = try CheckpointLoader.open(path: path)
        if !archive.contains("conv1.weight") && archive.contains("module.conv1.weight") {
            archive = PrefixedArchive(archive, prefix: "module.")
        }
        try self.init(archive: archive)
    }

    public init(archive a: TensorArchive) throws {
        path = a.path
        func cbn(_ conv: String, _ bn: String, stride: Int = 1, pad: Int, relu: Bool = true) throws -> ConvBN {
            let c = try ConvBN.load(a, conv: conv, bn: bn, eps: ResNet.bnEps, stride: stride, same: false, relu: relu)
            // torchvision pads explicitly (3 for the 7x7 stem, 1 for 3x3, 0 for 1x1).
            return ConvBN(conv: Conv2d(weight: c.conv.weight, bias: c.conv.bias, stride: stride, padding: pad), relu: relu)
        }
        stem = try cbn("conv1", "bn1", stride: 2, pad: 3)
        guard stem.inChannels == 3 else {
            throw CheckpointError.malformed(path: a.path, reason: "conv1 expects \(stem.inChannels) input channels, not RGB")
        }
        var chain = ShapeChain(path: a.path, channels: stem.outChannels)
        var st: [[Bottleneck]] = []
        var stage = 1
        while a.contains("layer\(stage).0.conv1.weight") {
            var blocks: [Bottleneck] = []
            var b = 0
            while a.contains("layer\(stage).\(b).conv1.weight") {
                let p = "layer\(stage).\(b)"
                let stride = (stage > 1 && b == 0) ? 2 : 1
                let c1 = try cbn(p + ".conv1", p + ".bn1", pad: 0)
                let c2 = try cbn(p + ".conv2", p + ".bn2", stride: stride, pad: 1)
                let c3 = try cbn(p + ".conv3", p + ".bn3", pad: 0, relu: false)
                let ds =
                    a.contains(p + ".downsample.0.weight")
                    ? try cbn(p + ".downsample.0", p + ".downsample.1", stride: stride, pad: 0, relu: false) : nil
                try chain.feed(c1, p + ".conv1")
                if let ds { try chain.feed(ds, p + ".downsample") }
                guard c1.outChannels == c2.inChannels, c2.outChannels == c3.inChannels,
                    c3.outChannels == (ds?.outChannels ?? chain.channels), ds != nil || stride == 1
                else {
                    throw CheckpointError.malformed(
                        path: a.path, reason: "\(p): channel counts do not chain (or a strided block lacks its downsample)")
                }
                chain.channels = c3.outChannels
                blocks.append(Bottleneck(conv1: c1, conv2: c2, conv3: c3, downsample: ds))
                b += 1
            }
            st.append(blocks)
            stage += 1
        }
        guard !st.isEmpty else { throw CheckpointError.missingKey(path: a.path, key: "layer1.0.conv1.weight", available: a.keys.count) }
        stages = st
        let w = try a.floatTensor("fc.weight", shape: [-1, chain.channels])
        fc = Linear(weight: w, bias: try a.floatTensor("fc.bias", shape: [w.shape[0]]))
    }

    /// Logits [N, classes] of normalised input [N, 3, H, W] (see `ResNetPreprocessing`).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        var y = stem(x).maxPool2d(kernel: 3, stride: 2, padding: 1)
        for s in stages { for b in s { y = b(y) } }
        return fc(y.globalAvgPool())
    }
}

/// torchvision's ImageNet evaluation transform: `Resize(256)` (shorter side, PIL bilinear with antialiasing),
/// `CenterCrop(224)`, `ToTensor()`, `Normalize(mean, std)`.
public enum ResNetPreprocessing {
    public static let resize = 256, crop = 224
    public static let mean: [Float] = [0.485, 0.456, 0.406], std: [Float] = [0.229, 0.224, 0.225]

    public static func input(_ images: [Image8]) throws -> Tensor {
        try normalize(images.map { try centerCrop(try resizeShorter($0, to: resize), crop) })
    }

    /// (x / 255 - mean) / std in float32, NCHW; images must share one size.
    public static func normalize(_ images: [Image8]) throws -> Tensor {
        guard let first = images.first else { return Tensor(zeros: [0, 3, crop, crop]) }
        let (h, w) = (first.height, first.width)
        var out = [Float](repeating: 0, count: images.count * 3 * h * w)
        for (n, img) in images.enumerated() {
            guard img.channels == 3, img.width == w, img.height == h else {
                throw MetricsError.input("classifier input: images must be RGB and of one size")
            }
            for i in 0..<(h * w) {
                for c in 0..<3 {
                    out[(n * 3 + c) * h * w + i] = (Float(img.pixels[i * 3 + c]) / 255 - mean[c]) / std[c]
                }
            }
        }
        return Tensor(shape: [images.count, 3, h, w], data: out)
    }

    /// torchvision `Resize(size)` on a PIL image: shorter side -> size, longer side -> int(size * long / short),
    /// PIL bilinear with antialiasing (ImageIO's bit-exact PIL resampler); unchanged if the shorter side already
    /// is `size`.
    public static func resizeShorter(_ img: Image8, to size: Int) throws -> Image8 {
        if min(img.width, img.height) == size { return img }
        return try img.resizedShorterSide(to: size, filter: .bilinear)
    }

    /// torchvision `CenterCrop`: top = round((h - size) / 2), left = round((w - size) / 2) (Python rounding).
    public static func centerCrop(_ img: Image8, _ size: Int) throws -> Image8 {
        guard img.width >= size, img.height >= size else {
            throw MetricsError.input("center crop \(size) of a \(img.width)x\(img.height) image")
        }
        return try img.centerCropped(width: size, height: size)
    }
}
