import Foundation
import ImageIO
import ModelIO
import Tensor

/// The vision tower of CLIP (plus its projection), from the transformers layout of the released
/// `openai/clip-vit-large-patch14(-336)` repositories: `model.safetensors` or `pytorch_model.bin` with
/// `config.json`. The feature is CMMD's: the projected CLS embedding divided by its L2 norm (scenic's
/// `encode_image(normalize=True)`, transformers' `CLIPModel(...).image_embeds`).
public struct CLIPVisionConfig: Codable, Sendable, Equatable {
    public var width: Int
    public var depth: Int
    public var heads: Int
    public var patchSize: Int
    public var imageSize: Int
    public var mlpHidden: Int
    public var projectionDim: Int
    public var eps: Float
    public var activation: ViTFeedForward.Activation

    /// openai/clip-vit-large-patch14-336's vision tower.
    public static let vitL14_336 = CLIPVisionConfig(
        width: 1024, depth: 24, heads: 16, patchSize: 14, imageSize: 336, mlpHidden: 4096,
        projectionDim: 768, eps: 1e-5, activation: .quickGELU)

    /// Key names and shapes of the vision tower and projection in the transformers layout (random-weight benchmarks).
    public var stateDictShapes: [(String, [Int])] {
        let d = width, g = imageSize / patchSize, v = "vision_model."
        var s: [(String, [Int])] = [
            (v + "embeddings.class_embedding", [d]), (v + "embeddings.patch_embedding.weight", [d, 3, patchSize, patchSize]),
            (v + "embeddings.position_embedding.weight", [1 + g * g, d]),
            (v + "pre_layrnorm.weight", [d]), (v + "pre_layrnorm.bias", [d]),
        ]
        for i in 0..<depth {
            let l = v + "encoder.layers.\(i)."
            s += [(l + "layer_norm1.weight", [d]), (l + "layer_norm1.bias", [d])]
            for p in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                s += [(l + "self_attn.\(p).weight", [d, d]), (l + "self_attn.\(p).bias", [d])]
            }
            s += [
                (l + "layer_norm2.weight", [d]), (l + "layer_norm2.bias", [d]), (l + "mlp.fc1.weight", [mlpHidden, d]),
                (l + "mlp.fc1.bias", [mlpHidden]),
                (l + "mlp.fc2.weight", [d, mlpHidden]), (l + "mlp.fc2.bias", [d]),
            ]
        }
        return s + [
            (v + "post_layernorm.weight", [d]), (v + "post_layernorm.bias", [d]), ("visual_projection.weight", [projectionDim, d]),
        ]
    }

    /// Multiply-adds x 2 of one image's forward pass (linear layers, attention, patch conv, projection).
    public var flopsPerImage: Double {
        let g = imageSize / patchSize
        let t = Double(1 + g * g), d = Double(width)
        let ffn = 2 * d * Double(mlpHidden)
        let block = 2 * t * (4 * d * d + ffn) + 2 * 2 * t * t * d
        // The last block runs only the CLS row past its keys and values (`ViTBlock.firstTokenOutput`).
        let last = 2 * t * 2 * d * d + 2 * (2 * d * d + ffn) + 2 * 2 * t * d
        return Double(depth - 1) * block + last + 2 * Double(g * g) * d * Double(3 * patchSize * patchSize) + 2 * d * Double(projectionDim)
    }

    /// "ViT-L/14-336" etc.
    public var name: String {
        let size = [768: "B", 1024: "L", 1280: "H"][width] ?? "\(width)d"
        return "ViT-\(size)/\(patchSize)" + (imageSize != 224 ? "-\(imageSize)" : "")
    }

    /// The shapes of a transformers CLIP state dict, from key names and shapes alone; the head count (not in
    /// the weights) is width / 64 as in every released CLIP, eps 1e-5, quick GELU.
    public static func inferred(from a: TensorArchive) throws -> CLIPVisionConfig {
        let path = a.path
        func fail(_ why: String) -> Error { CheckpointError.malformed(path: path, reason: why) }
        let v = "vision_model."
        for k in [
            "embeddings.class_embedding", "embeddings.patch_embedding.weight", "embeddings.position_embedding.weight",
            "encoder.layers.0.mlp.fc1.weight",
        ] where !a.contains(v + k) {
            throw fail("not a transformers CLIP vision tower: no '\(v)\(k)'")
        }
        guard a.contains("visual_projection.weight") else {
            throw fail("no 'visual_projection.weight': CMMD needs CLIPModel or CLIPVisionModelWithProjection weights")
        }
        func shape(_ k: String, rank: Int) throws -> [Int] {
            let s = try a.requireInfo(k).shape
            guard s.count == rank, s.allSatisfy({ $0 > 0 }) else { throw fail("\(k) has shape \(s), expected \(rank) positive sizes") }
            return s
        }
        let width = try shape(v + "embeddings.class_embedding", rank: 1)[0]
        let pw = try shape(v + "embeddings.patch_embedding.weight", rank: 4)
        guard pw[0] == width, pw[1] == 3, pw[2] == pw[3] else {
            throw fail("\(v)embeddings.patch_embedding.weight \(pw): expected [\(width), 3, p, p]")
        }
        let pos = try shape(v + "embeddings.position_embedding.weight", rank: 2)
        guard pos[1] == width, pos[0] >= 2 else {
            throw fail("\(v)embeddings.position_embedding.weight \(pos): expected [1 + grid^2, \(width)]")
        }
        let grid = try ViTShapes.gridSide(pos[0] - 1, path: path, key: v + "embeddings.position_embedding.weight", shape: pos)
        var depth = 0
        while a.contains("\(v)encoder.layers.\(depth).layer_norm1.weight") { depth += 1 }
        guard depth > 0 else { throw fail("no encoder layers (\(v)encoder.layers.0.layer_norm1.weight)") }
        let hidden = try shape(v + "encoder.layers.0.mlp.fc1.weight", rank: 2)[0]
        let proj = try shape("visual_projection.weight", rank: 2)
        guard proj[1] == width else { throw fail("visual_projection.weight \(proj): expected [P, \(width)]") }
        return CLIPVisionConfig(
            width: width, depth: depth, heads: max(width / 64, 1), patchSize: pw[2], imageSize: grid * pw[2],
            mlpHidden: hidden, projectionDim: proj[0], eps: 1e-5, activation: .quickGELU)
    }

    /// This config (from config.json) if it describes the weights: a config.json of another model would
    /// silently mis-shape them.
    func checked(against w: CLIPVisionConfig, config: String, weights: String) throws -> CLIPVisionConfig {
        for (what, a, b) in [
            ("hidden_size", width, w.width), ("num_hidden_layers", depth, w.depth),
            ("patch_size", patchSize, w.patchSize), ("image_size", imageSize, w.imageSize),
            ("intermediate_size", mlpHidden, w.mlpHidden), ("projection_dim", projectionDim, w.projectionDim),
        ] where a != b {
            throw CheckpointError.malformed(path: config, reason: "\(what) \(a) does not match the weights in \(weights) (\(b))")
        }
        guard heads > 0, width % heads == 0 else {
            throw CheckpointError.malformed(path: config, reason: "hidden_size \(width) cannot be split into \(heads) attention heads")
        }
        return self
    }

    /// `vision_config` of a transformers CLIP `config.json` (and the top-level `projection_dim`).
    static func fromJSON(_ data: Data, path: String) throws -> CLIPVisionConfig {
        func fail(_ why: String) -> Error { CheckpointError.malformed(path: path, reason: why) }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw fail("not a JSON object (expected transformers' CLIP config.json)")
        }
        let vision = root["vision_config"] as? [String: Any] ?? root  // a CLIPVisionConfig file has the keys at the top
        func int(_ k: String, in d: [String: Any]) throws -> Int {
            guard let v = d[k] as? NSNumber, let i = Int(exactly: v.doubleValue), i > 0, i < 1 << 20 else {
                throw fail("vision_config.\(k) missing or not a positive integer")
            }
            return i
        }
        let act = vision["hidden_act"] as? String ?? "quick_gelu"
        guard let activation = ViTFeedForward.Activation(rawValue: act) else {
            throw fail("vision_config.hidden_act '\(act)' is not supported (quick_gelu or gelu)")
        }
        let eps = (vision["layer_norm_eps"] as? NSNumber)?.floatValue ?? 1e-5
        guard eps.isFinite, eps > 0, eps < 1 else { throw fail("vision_config.layer_norm_eps \(eps) is not a small positive number") }
        let proj =
            try (root["projection_dim"] as? NSNumber).flatMap { Int(exactly: $0.doubleValue) }
            ?? int("projection_dim", in: vision)
        return CLIPVisionConfig(
            width: try int("hidden_size", in: vision), depth: try int("num_hidden_layers", in: vision),
            heads: try int("num_attention_heads", in: vision), patchSize: try int("patch_size", in: vision),
            imageSize: try int("image_size", in: vision), mlpHidden: try int("intermediate_size", in: vision),
            projectionDim: proj, eps: eps, activation: activation)
    }
}

public final class CLIPVision: @unchecked Sendable {
    public let config: CLIPVisionConfig
    /// The weights file and the config it was read with (nil: inferred from the weights).
    public let path: String, configPath: String?
    let patchEmbed: Conv2d
    let classEmbedding: Tensor  // [D]
    let positions: Tensor  // [1 + grid^2, D]
    let preNorm: LayerNorm, postNorm: LayerNorm
    public let blocks: [ViTBlock]
    /// The last block, for the CLS row only.
    let lastBlock: FirstTokenBlock
    let projection: Linear  // no bias

    /// scenic's IMAGE_MEAN / IMAGE_STD (= the released preprocessor_config.json).
    static let mean: [Float] = [0.48145466, 0.4578275, 0.40821073]
    static let std: [Float] = [0.26862954, 0.26130258, 0.27577711]

    /// `location`: a folder holding `model.safetensors` or `pytorch_model.bin` (+ `config.json`), or one of those
    /// files (its folder's `config.json` is used when there is one; else the config is inferred with 64-wide heads).
    public convenience init(location: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: location, isDirectory: &isDir) else {
            throw CheckpointError.cannotOpen(path: location, reason: "no such file or folder")
        }
        let dir = isDir.boolValue ? location : URL(fileURLWithPath: location).deletingLastPathComponent().path
        var weights = location
        if isDir.boolValue {
            let candidates = ["model.safetensors", "pytorch_model.bin"].map { URL(fileURLWithPath: dir).appendingPathComponent($0).path }
            guard let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
                throw CheckpointError.cannotOpen(
                    path: location, reason: "holds neither model.safetensors nor pytorch_model.bin (a transformers CLIP repository)")
            }
            weights = found
        }
        let cfg = URL(fileURLWithPath: dir).appendingPathComponent("config.json").path
        let hasConfig = FileManager.default.fileExists(atPath: cfg)
        if isDir.boolValue && !hasConfig {
            throw CheckpointError.cannotOpen(path: cfg, reason: "no such file (the CLIP repository's config.json)")
        }
        var config: CLIPVisionConfig?
        if hasConfig {
            guard let data = FileManager.default.contents(atPath: cfg), data.count < 1 << 24 else {
                throw CheckpointError.cannotOpen(path: cfg, reason: "unreadable or larger than 16 MiB")
            }
            config = try CLIPVisionConfig.fromJSON(data, path: cfg)
        }
        try self.init(archive: try CheckpointLoader.open(path: weights), config: config, configPath: hasConfig ? cfg : nil)
    }

    public init(archive: TensorArchive, config given: CLIPVisionConfig?, configPath: String? = nil) throws {
        path = archive.path
        self.configPath = configPath
        let r = WeightReader(archive)["vision_model"]
        let e = r["embeddings"]
        let inferred = try CLIPVisionConfig.inferred(from: archive)
        let configLocation = configPath ?? archive.path, weightsPath = archive.path
        let c = try given.map { try $0.checked(against: inferred, config: configLocation, weights: weightsPath) } ?? inferred
        let (width, hidden, grid, depth) = (c.width, c.mlpHidden, c.imageSize / c.patchSize, c.depth)
        let cls = try e.tensor("class_embedding", shape: [width])
        let pw = try e.tensor("patch_embedding.weight", shape: [width, 3, c.patchSize, c.patchSize])
        let pos = try e.tensor("position_embedding.weight", shape: [1 + grid * grid, width])
        let proj = try WeightReader(archive).tensor("visual_projection.weight", shape: [c.projectionDim, width])
        config = c
        patchEmbed = Conv2d(weight: pw, bias: nil, stride: c.patchSize, padding: 0)
        classEmbedding = cls
        positions = pos
        preNorm = try r.layerNorm("pre_layrnorm", width: width, eps: c.eps)  // sic, transformers' key name
        postNorm = try r.layerNorm("post_layernorm", width: width, eps: c.eps)
        blocks = try (0..<depth).map { i in
            let l = r["encoder"]["layers"]["\(i)"]
            let a = l["self_attn"]
            // q, k, v stacked into one projection (OpenAI CLIP's in_proj_weight = cat(q, k, v)).
            let q = try a.linear("q_proj", inFeatures: width, outFeatures: width)
            let k = try a.linear("k_proj", inFeatures: width, outFeatures: width)
            let v = try a.linear("v_proj", inFeatures: width, outFeatures: width)
            let bias = [q, k, v].allSatisfy { $0.bias != nil } ? Tensor.cat0([q.bias!, k.bias!, v.bias!]) : nil
            let qkv = Linear(weight: Tensor.cat0([q.weight, k.weight, v.weight]), bias: bias)
            return ViTBlock(
                norm1: try l.layerNorm("layer_norm1", width: width, eps: c.eps),
                attention: SelfAttention(qkv: qkv, proj: try a.linear("out_proj", inFeatures: width, outFeatures: width), heads: c.heads),
                norm2: try l.layerNorm("layer_norm2", width: width, eps: c.eps),
                feedForward: .mlp(
                    fc1: try l["mlp"].linear("fc1", inFeatures: width, outFeatures: hidden),
                    fc2: try l["mlp"].linear("fc2", inFeatures: hidden, outFeatures: width),
                    activation: c.activation))
        }
        projection = Linear(weight: proj, bias: nil)
        lastBlock = FirstTokenBlock(blocks[blocks.count - 1])
    }

    /// cmmd io_util + embedding: the centred square crop (left = (w - l) / 2, top = (h - l) / 2, l = min(w, h)),
    /// PIL bicubic resize to the model's size, u8 / 255, then (x - mean) * (1 / std) in float32 (XLA turns the
    /// division into that multiplication). Returns the resized image and the [1, 3, S, S] tensor.
    public func preprocess(_ image: Image8) throws -> (resized: Image8, pixels: Tensor) {
        let s = config.imageSize
        let rgb = image.toRGB()
        let l = min(rgb.width, rgb.height)
        let square = try rgb.cropped(x: (rgb.width - l) / 2, y: (rgb.height - l) / 2, width: l, height: l)
        let resized = try square.resized(width: s, height: s, filter: .bicubic)
        let plane = s * s
        let invStd = CLIPVision.std.map { 1 / $0 }
        var chw = [Float](repeating: 0, count: 3 * plane)
        for i in 0..<plane {
            for c in 0..<3 {
                chw[c * plane + i] = (Float(resized.pixels[i * 3 + c]) / 255 - CLIPVision.mean[c]) * invStd[c]
            }
        }
        return (resized, Tensor(shape: [1, 3, s, s], data: chw))
    }

    public func patchEmbedding(_ pixels: Tensor) -> Tensor { patchTokens(patchEmbed(pixels)) }

    /// cat(class_embedding, patches) + positions: [1, 1 + grid^2, D] (the input of `pre_layrnorm`).
    public func tokens(_ pixels: Tensor) -> Tensor {
        let patches = patchEmbedding(pixels)
        var x = Tensor(shape: [1, 1 + patches.shape[1], config.width], data: classEmbedding.data + patches.data)
        precondition(x.count == positions.count, "CLIP input grid \(x.shape) vs positions \(positions.shape)")
        x.addInPlace(positions.reshaped(x.shape))
        return x
    }

    /// Hidden states after `pre_layrnorm` and the first `blocks` blocks (for parity checks).
    public func hidden(_ pixels: Tensor, blocks n: Int) -> Tensor {
        var x = preNorm(tokens(pixels))
        for b in blocks.prefix(n) { x = b(x) }
        return x
    }

    /// `post_layernorm(x[:, 0])` (transformers' pooler_output) [D].
    public func pooled(pixels: Tensor) -> Tensor {
        postNorm(tokenRow(lastBlock(hidden(pixels, blocks: blocks.count - 1)), 0))
    }

    /// `visual_projection(pooled)` [P], not normalised.
    public func projected(pixels: Tensor) -> Tensor { projection(pooled(pixels: pixels)) }

    /// The CMMD embedding of preprocessed pixels: the projection over its L2 norm, [P].
    public func embedding(pixels: Tensor) -> Tensor { CLIPVision.normalised(projected(pixels: pixels)) }

    /// x / ||x||_2 in float32, as `jnp.linalg.norm` then the division.
    static func normalised(_ x: Tensor) -> Tensor {
        var s: Float = 0
        for v in x.data { s += v * v }
        let n = s.squareRoot()
        return x.map { $0 / n }
    }
}

/// CLIP as a metric network: one image at a time, output "embedding" (unit norm).
public final class CLIPFeatures: FeatureNetwork {
    public let model: CLIPVision
    public init(_ model: CLIPVision) { self.model = model }
    public var name: String { "CLIP \(model.config.name) (\(URL(fileURLWithPath: model.path).lastPathComponent))" }
    public var cacheName: String { "clip" }
    public var cacheIdentity: String {
        "clip-v1|\(ImageSet.stamp(model.path))|\(model.configPath.map(ImageSet.stamp) ?? "inferred")|centre crop, PIL bicubic \(model.config.imageSize)"
    }
    public var outputs: [FeatureOutput] { [FeatureOutput(name: "embedding", width: model.config.projectionDim)] }
    public var preprocessing: String {
        "centre square crop, PIL bicubic \(model.config.imageSize)x\(model.config.imageSize), CLIP mean/std (cmmd)"
    }
    public func features(_ images: [Image8]) throws -> [String: Tensor] {
        [
            "embedding": try featuresOneByOne(images, width: model.config.projectionDim) {
                model.embedding(pixels: try model.preprocess($0).pixels)
            }
        ]
    }
}
