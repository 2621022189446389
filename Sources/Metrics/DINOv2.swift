import Foundation
import ImageIO
import ModelIO
import Tensor

/// DINOv2 ViT as torch hub builds it (facebookresearch/dinov2 `hub/backbones.py`, `models/vision_transformer.py`)
/// and dgm-eval's FD-DINOv2 feature: the CLS token after the final LayerNorm.
///
/// Everything is read from the released `dinov2_vit{s,b,l,g}14[_reg4]_pretrain.pth` state dict: width
/// (`cls_token`), patch size (`patch_embed.proj.weight`), the training grid (`pos_embed`: 1 + 37 x 37 for
/// img_size 518), depth, register tokens (`register_tokens`), MLP or SwiGLU feed-forward (`mlp.fc1` / `mlp.w12`).
/// The head count cannot be read from weights; the hub models all use 64-wide heads, the default here.
public struct DINOv2Config: Codable, Sendable, Equatable {
    public var width: Int
    public var depth: Int
    public var heads: Int
    public var patchSize: Int
    /// Side of the position-embedding grid the model was trained with (37 for img_size 518).
    public var trainGrid: Int
    public var registers: Int
    public var swiglu: Bool
    public var mlpHidden: Int
    /// The hub's `interpolate_offset` / `interpolate_antialias`: 0.1 / false, and 0 / true for the `_reg` models.
    public var interpolateOffset: Double
    public var interpolateAntialias: Bool
    /// dgm-eval resizes every image to this side (squashing non-square images).
    public var inputSize = 224
    /// `partial(nn.LayerNorm, eps=1e-6)` everywhere.
    public var eps: Float = 1e-6

    /// The configuration of a hub state dict, from its key names and shapes alone (no tensor is read).
    /// `heads`: nil = width / 64, as every hub model.
    public static func inferred(from a: TensorArchive, heads: Int? = nil) throws -> DINOv2Config {
        let path = a.path
        func fail(_ why: String) -> Error { CheckpointError.malformed(path: path, reason: why) }
        for k in ["cls_token", "pos_embed", "patch_embed.proj.weight", "norm.weight"] where !a.contains(k) {
            throw fail("not a DINOv2 backbone: no '\(k)' (expected the torch-hub state dict dinov2_vit*14*_pretrain.pth)")
        }
        func shape(_ k: String, rank: Int) throws -> [Int] {
            let s = try a.requireInfo(k).shape
            guard s.count == rank, s.allSatisfy({ $0 > 0 }) else { throw fail("\(k) has shape \(s), expected \(rank) positive sizes") }
            return s
        }
        let cls = try shape("cls_token", rank: 3)
        let width = cls[2]
        let pw = try shape("patch_embed.proj.weight", rank: 4)
        guard pw[0] == width, pw[1] == 3, pw[2] == pw[3] else {
            throw fail("patch_embed.proj.weight \(pw): expected [\(width), 3, p, p]")
        }
        let pos = try shape("pos_embed", rank: 3)
        guard pos[0] == 1, pos[2] == width, pos[1] >= 2 else { throw fail("pos_embed \(pos): expected [1, 1 + grid^2, \(width)]") }
        let grid = try ViTShapes.gridSide(pos[1] - 1, path: path, key: "pos_embed", shape: pos)
        var depth = 0
        while a.contains("blocks.\(depth).norm1.weight") { depth += 1 }
        guard depth > 0 else { throw fail("no transformer blocks (blocks.0.norm1.weight)") }
        let nHeads = heads ?? width / 64
        guard nHeads > 0, width % nHeads == 0 else {
            throw fail("width \(width) cannot be split into \(nHeads) attention heads (give the head count)")
        }
        var registers = 0
        if a.contains("register_tokens") {
            let rs = try shape("register_tokens", rank: 3)
            guard rs[0] == 1, rs[2] == width else { throw fail("register_tokens \(rs): expected [1, R, \(width)]") }
            registers = rs[1]
        }
        let swiglu = a.contains("blocks.0.mlp.w12.weight")
        let hidden = try shape(swiglu ? "blocks.0.mlp.w3.weight" : "blocks.0.mlp.fc1.weight", rank: 2)[swiglu ? 1 : 0]
        return DINOv2Config(
            width: width, depth: depth, heads: nHeads, patchSize: pw[2], trainGrid: grid,
            registers: registers, swiglu: swiglu, mlpHidden: hidden,
            interpolateOffset: registers > 0 ? 0 : 0.1, interpolateAntialias: registers > 0)
    }

    /// The torch-hub models: `dinov2_vit{s,b,l,g}14` and their `_reg` (4 registers) versions.
    public static func hub(_ size: String, registers: Bool = false) -> DINOv2Config? {
        guard let (w, d) = ["s": (384, 12), "b": (768, 12), "l": (1024, 24), "g": (1536, 40)][size.lowercased()] else { return nil }
        let swiglu = size.lowercased() == "g"
        return DINOv2Config(
            width: w, depth: d, heads: w / 64, patchSize: 14, trainGrid: 37, registers: registers ? 4 : 0,
            swiglu: swiglu, mlpHidden: swiglu ? (Int(Double(4 * w) * 2 / 3) + 7) / 8 * 8 : 4 * w,
            interpolateOffset: registers ? 0 : 0.1, interpolateAntialias: registers)
    }

    /// Key names and shapes of the released state dict (for random-weight benchmarks).
    public var stateDictShapes: [(String, [Int])] {
        let d = width
        var s: [(String, [Int])] = [("cls_token", [1, 1, d]), ("pos_embed", [1, 1 + trainGrid * trainGrid, d])]
        if registers > 0 { s.append(("register_tokens", [1, registers, d])) }
        s += [("mask_token", [1, d]), ("patch_embed.proj.weight", [d, 3, patchSize, patchSize]), ("patch_embed.proj.bias", [d])]
        for i in 0..<depth {
            let b = "blocks.\(i)."
            s += [
                (b + "norm1.weight", [d]), (b + "norm1.bias", [d]), (b + "attn.qkv.weight", [3 * d, d]), (b + "attn.qkv.bias", [3 * d]),
                (b + "attn.proj.weight", [d, d]), (b + "attn.proj.bias", [d]), (b + "ls1.gamma", [d]),
                (b + "norm2.weight", [d]), (b + "norm2.bias", [d]),
            ]
            s +=
                swiglu
                ? [
                    (b + "mlp.w12.weight", [2 * mlpHidden, d]), (b + "mlp.w12.bias", [2 * mlpHidden]),
                    (b + "mlp.w3.weight", [d, mlpHidden]), (b + "mlp.w3.bias", [d]),
                ]
                : [
                    (b + "mlp.fc1.weight", [mlpHidden, d]), (b + "mlp.fc1.bias", [mlpHidden]),
                    (b + "mlp.fc2.weight", [d, mlpHidden]), (b + "mlp.fc2.bias", [d]),
                ]
            s.append((b + "ls2.gamma", [d]))
        }
        return s + [("norm.weight", [d]), ("norm.bias", [d])]
    }

    /// Multiply-adds x 2 of one image's forward pass (linear layers and attention; norms and activations left out).
    public var flopsPerImage: Double {
        let g = inputSize / patchSize
        let t = Double(1 + registers + g * g), d = Double(width)
        let ffn = swiglu ? 3 * d * Double(mlpHidden) : 2 * d * Double(mlpHidden)
        let block = 2 * t * (4 * d * d + ffn) + 2 * 2 * t * t * d
        // The last block runs only the CLS row past its keys and values (`ViTBlock.firstTokenOutput`).
        let last = 2 * t * 2 * d * d + 2 * (2 * d * d + ffn) + 2 * 2 * t * d
        return Double(depth - 1) * block + last + 2 * Double(g * g) * d * Double(3 * patchSize * patchSize)
    }

    /// "ViT-L/14" etc. (the hub's names by width), "+4 registers" when present.
    public var name: String {
        let size = [384: "S", 768: "B", 1024: "L", 1536: "g"][width] ?? "\(width)d"
        return "ViT-\(size)/\(patchSize)" + (registers > 0 ? " +\(registers) registers" : "")
    }
}

public final class DINOv2: @unchecked Sendable {
    public let config: DINOv2Config
    public let path: String
    let patchEmbed: Conv2d
    let clsToken: Tensor  // [D]
    let registerTokens: Tensor?  // [R, D]
    /// The position embedding added at `inputSize`: [1 + grid^2, D] (interpolated once, at load).
    public let positionEmbedding: Tensor
    public let blocks: [ViTBlock]
    /// The last block, for the CLS row only.
    let lastBlock: FirstTokenBlock
    let norm: LayerNorm

    /// dgm-eval's `transforms.Normalize` constants (ImageNet), as float32.
    static let mean: [Float] = [0.485, 0.456, 0.406]
    static let std: [Float] = [0.229, 0.224, 0.225]

    /// `heads`: nil = width / 64 (every hub model).
    public convenience init(path: String, heads: Int? = nil) throws {
        try self.init(archive: try CheckpointLoader.open(path: path), heads: heads)
    }

    public init(archive: TensorArchive, heads: Int? = nil) throws {
        path = archive.path
        let r = WeightReader(archive)
        config = try DINOv2Config.inferred(from: archive, heads: heads)
        let c = config
        let (width, hidden, grid, nReg) = (c.width, c.mlpHidden, c.trainGrid, c.registers)
        let cls = try r.tensor("cls_token", shape: [1, 1, width])
        let pw = try r.tensor("patch_embed.proj.weight", shape: [width, 3, c.patchSize, c.patchSize])
        let pos = try r.tensor("pos_embed", shape: [1, 1 + grid * grid, width])
        let registers = nReg > 0 ? try r.tensor("register_tokens", shape: [1, nReg, width]) : nil
        patchEmbed = Conv2d(weight: pw, bias: try r.tensor("patch_embed.proj.bias", shape: [width]), stride: c.patchSize, padding: 0)
        clsToken = cls.reshaped([width])
        registerTokens = registers.map { $0.reshaped([nReg, width]) }
        positionEmbedding = DINOv2.interpolatedPositions(pos.reshaped([1 + grid * grid, width]), config: c)
        blocks = try (0..<c.depth).map { i in
            let b = r["blocks"]["\(i)"]
            let ffn: ViTFeedForward =
                c.swiglu
                ? .swiglu(
                    w12: try b["mlp"].linear("w12", inFeatures: width, outFeatures: 2 * hidden),
                    w3: try b["mlp"].linear("w3", inFeatures: hidden, outFeatures: width))
                : .mlp(
                    fc1: try b["mlp"].linear("fc1", inFeatures: width, outFeatures: hidden),
                    fc2: try b["mlp"].linear("fc2", inFeatures: hidden, outFeatures: width), activation: .gelu)
            return ViTBlock(
                norm1: try b.layerNorm("norm1", width: width, eps: c.eps),
                attention: SelfAttention(
                    qkv: try b["attn"].linear("qkv", inFeatures: width, outFeatures: 3 * width),
                    proj: try b["attn"].linear("proj", inFeatures: width, outFeatures: width),
                    heads: c.heads),
                norm2: try b.layerNorm("norm2", width: width, eps: c.eps), feedForward: ffn,
                layerScale1: b.has("ls1.gamma") ? try b.tensor("ls1.gamma", shape: [width]) : nil,
                layerScale2: b.has("ls2.gamma") ? try b.tensor("ls2.gamma", shape: [width]) : nil)
        }
        norm = try r.layerNorm("norm", width: width, eps: c.eps)
        lastBlock = FirstTokenBlock(blocks[blocks.count - 1])
    }

    /// `interpolate_pos_encoding(x, 224, 224)`: the class position kept, the patch grid resampled bicubically to
    /// the input's grid. Without registers the hub passes `scale_factor = (grid + 0.1) / trainGrid`, so the source
    /// step is 1 / that factor (37 / 16.1, not 37 / 16); the `_reg` models pass the size with antialiasing.
    static func interpolatedPositions(_ pos: Tensor, config c: DINOv2Config) -> Tensor {
        let g = c.inputSize / c.patchSize, m = c.trainGrid, d = c.width
        if g == m { return pos }
        let patches = Tensor(shape: [1, m, m, d], data: Array(pos.data[d...])).permuted([0, 3, 1, 2])  // [1, D, m, m]
        let resized: Tensor
        if c.interpolateOffset != 0 {
            let factor = (Double(g) + c.interpolateOffset) / Double(m)
            let out = Int((Double(m) * factor).rounded(.down))
            precondition(out == g, "DINOv2 position grid \(m) -> \(out), expected \(g)")
            resized =
                c.interpolateAntialias
                ? patches.interpolatedBicubicAntialiased(height: out, width: out)
                : patches.interpolated(height: out, width: out, mode: .bicubic, scaleFactor: (factor, factor))
        } else {
            resized =
                c.interpolateAntialias
                ? patches.interpolatedBicubicAntialiased(height: g, width: g)
                : patches.interpolated(height: g, width: g, mode: .bicubic)
        }
        let rows = resized.permuted([0, 2, 3, 1]).reshaped([g * g, d])
        return Tensor(shape: [1 + g * g, d], data: Array(pos.data[0..<d]) + rows.data)
    }

    /// dgm-eval's `DINOv2Encoder.transform`: PIL bicubic resize to 224 x 224 (aspect ratio not kept), u8 / 255,
    /// then (x - mean) / std, all float32. Returns the resized image and the [1, 3, 224, 224] tensor.
    public func preprocess(_ image: Image8) throws -> (resized: Image8, pixels: Tensor) {
        let s = config.inputSize
        let rgb = image.toRGB()
        let resized = try rgb.resized(width: s, height: s, filter: .bicubic)
        let plane = s * s
        var chw = [Float](repeating: 0, count: 3 * plane)
        for i in 0..<plane {
            for c in 0..<3 {
                chw[c * plane + i] = (Float(resized.pixels[i * 3 + c]) / 255 - DINOv2.mean[c]) / DINOv2.std[c]
            }
        }
        return (resized, Tensor(shape: [1, 3, s, s], data: chw))
    }

    /// `patch_embed`: [1, 3, S, S] -> [1, grid^2, D].
    public func patchEmbedding(_ pixels: Tensor) -> Tensor { patchTokens(patchEmbed(pixels)) }

    /// `prepare_tokens_with_masks` (no masks): cat(cls, patches) + positions, then the registers after cls.
    public func tokens(_ pixels: Tensor) -> Tensor {
        let d = config.width
        let patches = patchEmbedding(pixels)
        var x = Tensor(shape: [1, 1 + patches.shape[1], d], data: clsToken.data + patches.data)
        precondition(x.shape[1] == positionEmbedding.shape[0], "DINOv2 input grid \(x.shape) vs positions \(positionEmbedding.shape)")
        x.addInPlace(positionEmbedding.reshaped(x.shape))
        guard let registerTokens else { return x }
        let r = registerTokens.shape[0]
        return Tensor(shape: [1, 1 + r + patches.shape[1], d], data: Array(x.data[0..<d]) + registerTokens.data + Array(x.data[d...]))
    }

    /// The FD-DINOv2 feature of preprocessed pixels [1, 3, S, S]: `x_norm_clstoken` [D].
    public func feature(pixels: Tensor) -> Tensor {
        var x = tokens(pixels)
        for b in blocks.dropLast() { x = b(x) }
        return norm(tokenRow(lastBlock(x), 0))
    }
}

/// DINOv2 as a metric network: one image at a time, output "cls".
public final class DINOv2Features: FeatureNetwork {
    public let model: DINOv2
    public init(_ model: DINOv2) { self.model = model }
    public var name: String { "DINOv2 \(model.config.name) (\(URL(fileURLWithPath: model.path).lastPathComponent))" }
    public var cacheName: String { "dinov2" }
    public var cacheIdentity: String {
        let c = model.config
        return "dinov2-v1|\(ImageSet.stamp(model.path))|heads \(c.heads)|input \(c.inputSize) squash, PIL bicubic"
    }
    public var outputs: [FeatureOutput] { [FeatureOutput(name: "cls", width: model.config.width)] }
    public var preprocessing: String {
        "PIL bicubic \(model.config.inputSize)x\(model.config.inputSize) (squashed), ImageNet mean/std (dgm-eval)"
    }
    public func features(_ images: [Image8]) throws -> [String: Tensor] {
        ["cls": try featuresOneByOne(images, width: model.config.width) { model.feature(pixels: try model.preprocess($0).pixels) }]
    }
}
