import Foundation
import ImageIO
import Metrics
import ModelIO
import Tensor
import TestSupport
import XCTest

/// The `image{i}_u8` tensors (H x W x 3 each, sizes differ) of a dinov2_io / clip_io fixture, in index order.
func fixtureImages(_ f: SafetensorsFile) throws -> [Image8] {
    var out: [Image8] = []
    while let info = f.info("image\(out.count)_u8") {
        XCTAssertEqual(info.dtype, .u8)
        XCTAssertEqual(info.shape.count, 3)
        out.append(
            Image8(
                width: info.shape[1], height: info.shape[0], channels: info.shape[2],
                pixels: [UInt8](try f.rawBytes("image\(out.count)_u8"))))
    }
    XCTAssertFalse(out.isEmpty, "no image0_u8 in \(f.path)")
    return out
}

/// Row `i` of a [N, ...] tensor as [1, ...].
func row(_ t: Tensor, _ i: Int) -> Tensor {
    let per = t.count / t.shape[0]
    return Tensor(shape: [1] + Array(t.shape.dropFirst()), data: Array(t.data[(i * per)..<((i + 1) * per)]))
}

/// The fixture README's check for intermediates: max |a - b| <= tol * max(1, max |ref|).
func assertClose(_ a: Tensor, _ ref: Tensor, tol: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, ref.count, "\(what): \(a.shape) vs \(ref.shape)", file: file, line: line)
    guard a.count == ref.count else { return }
    let err = Tensor(shape: [a.count], data: a.data).maxAbsDiff(Tensor(shape: [ref.count], data: ref.data))
    XCTAssertLessThanOrEqual(err, tol * max(1, ref.maxAbs()), "\(what): max abs diff \(err)", file: file, line: line)
}

func assertBitExact(_ a: [Float], _ b: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, what, file: file, line: line)
    let bad = zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count
    XCTAssertEqual(
        bad, 0, "\(what): \(bad) of \(a.count) values differ (max \(zip(a, b).map { abs($0 - $1) }.max() ?? 0))", file: file, line: line)
}

/// NHWC [N, H, W, C] uint8 fixture -> image i.
func nhwcImage(_ f: SafetensorsFile, _ key: String, _ i: Int) throws -> Image8 {
    let s = try f.requireInfo(key).shape
    let per = s[1] * s[2] * s[3]
    return Image8(width: s[2], height: s[1], channels: s[3], pixels: Array([UInt8](try f.rawBytes(key))[(i * per)..<((i + 1) * per)]))
}

final class DINOv2ParityTests: XCTestCase {
    static var cached: DINOv2?
    var model: DINOv2!
    var io: SafetensorsFile!

    override func setUpWithError() throws {
        if Self.cached == nil {
            // The head count is not in the weights; the fixture's config says it (every hub model: width / 64).
            let heads = try XCTUnwrap(try Fixtures.json("eval/dinov2_tiny_config.json")["num_heads"] as? Int)
            Self.cached = try DINOv2(path: Fixtures.path("eval/dinov2_tiny_pretrain.pth"), heads: heads)
        }
        model = Self.cached
        io = try Fixtures.safetensors("eval/dinov2_io.safetensors")
    }

    func testConfigFromTheWeights() throws {
        let cfg = try Fixtures.json("eval/dinov2_tiny_config.json")
        let c = model.config
        XCTAssertEqual(c.width, cfg["embed_dim"] as? Int)
        XCTAssertEqual(c.depth, cfg["depth"] as? Int)
        XCTAssertEqual(c.patchSize, cfg["patch_size"] as? Int)
        XCTAssertEqual(c.trainGrid * c.patchSize, cfg["img_size"] as? Int)
        XCTAssertEqual(c.registers, cfg["num_register_tokens"] as? Int)
        XCTAssertEqual(c.interpolateOffset, cfg["interpolate_offset"] as? Double)
        XCTAssertEqual(c.interpolateAntialias, cfg["interpolate_antialias"] as? Bool)
        XCTAssertEqual(c.mlpHidden, c.width * (cfg["mlp_ratio"] as? Int ?? 0))
        XCTAssertFalse(c.swiglu)
        // The safetensors twin loads to the same model.
        let twin = try DINOv2(path: Fixtures.path("eval/dinov2_tiny.safetensors"), heads: c.heads)
        XCTAssertEqual(twin.config, c)
    }

    /// The real ViT-L/14's keys and shapes (no weights) give the hub's vit_large configuration.
    func testConfigOfTheReleasedViTL14() throws {
        let keys = try XCTUnwrap(try Fixtures.json("eval/dinov2_vitl14_keys.json")["keys"] as? [String: [Int]])
        let c = try DINOv2Config.inferred(from: ShapeArchive(keys, path: "dinov2_vitl14_pretrain.pth"))
        XCTAssertEqual([c.width, c.depth, c.heads, c.patchSize, c.trainGrid, c.registers, c.mlpHidden], [1024, 24, 16, 14, 37, 0, 4096])
        XCTAssertEqual(c.name, "ViT-L/14")
        XCTAssertEqual(c.interpolateOffset, 0.1)
    }

    func testPreprocessingBitExact() throws {
        let imgs = try fixtureImages(io)
        let sel = try io.intTensor("sel_index").values.map { Int($0) }
        let pixels = try io.floatTensor("pixel_values_sel")
        for (i, img) in imgs.enumerated() {
            let (resized, x) = try model.preprocess(img)
            XCTAssertEqual(resized.pixels, try nhwcImage(io, "resized_u8", i).pixels, "image \(i): PIL bicubic resize")
            if let j = sel.firstIndex(of: i) { assertBitExact(x.data, row(pixels, j).data, "image \(i) pixel values") }
        }
    }

    func testPositionEmbeddingInterpolation() throws {
        assertClose(model.positionEmbedding, try io.floatTensor("pos_embed_added"), tol: 1e-5, "pos_embed_added (37 -> 16 bicubic)")
    }

    func testIntermediatesAndFeatures() throws {
        let imgs = try fixtureImages(io)
        let sel = try io.intTensor("sel_index").values.map { Int($0) }
        let (patch, tokens, block0) = (
            try io.floatTensor("patch_embed_sel"), try io.floatTensor("tokens_sel"), try io.floatTensor("block0_sel")
        )
        for (j, i) in sel.enumerated() {
            let x = row(try io.floatTensor("pixel_values_sel"), j)
            assertClose(model.patchEmbedding(x), row(patch, j), tol: 1e-5, "patch_embed image \(i)")
            let t = model.tokens(x)
            assertClose(t, row(tokens, j), tol: 1e-5, "tokens image \(i)")
            assertClose(model.blocks[0](t), row(block0, j), tol: 1e-5, "block 0 image \(i)")
            // The CLS-only last block equals the full block's row 0 (the feature needs nothing else).
            let full = model.blocks[0](t)
            assertClose(
                model.blocks[0].firstTokenOutput(t), Tensor(shape: [1, 1, full.shape[2]], data: Array(full.data[0..<full.shape[2]])),
                tol: 1e-6, "CLS-only block image \(i)")
        }
        let features = try io.floatTensor("features")
        XCTAssertEqual(features.shape[0], imgs.count)
        let ours = try DINOv2Features(model).features(imgs)["cls"]!
        let err = ours.maxAbsDiff(features)
        XCTAssertLessThanOrEqual(err, 1e-5, "FD-DINOv2 features: max abs diff \(err)")
    }
}

final class CLIPParityTests: XCTestCase {
    static var cached: CLIPVision?
    var model: CLIPVision!
    var io: SafetensorsFile!

    override func setUpWithError() throws {
        if Self.cached == nil { Self.cached = try CLIPVision(location: Fixtures.path("eval/clip_tiny_hf")) }
        model = Self.cached
        io = try Fixtures.safetensors("eval/clip_io.safetensors")
    }

    func testConfigFromConfigJSON() throws {
        let v = try XCTUnwrap(try Fixtures.json("eval/clip_tiny_hf/config.json")["vision_config"] as? [String: Any])
        let c = model.config
        XCTAssertEqual(c.width, v["hidden_size"] as? Int)
        XCTAssertEqual(c.heads, v["num_attention_heads"] as? Int)
        XCTAssertEqual(c.depth, v["num_hidden_layers"] as? Int)
        XCTAssertEqual(c.imageSize, v["image_size"] as? Int)
        XCTAssertEqual(c.activation, .quickGELU)
        // The weights file alone, next to its config.json, reads the same config.
        XCTAssertEqual(try CLIPVision(location: Fixtures.path("eval/clip_tiny_hf/model.safetensors")).config, c)
    }

    func testConfigOfTheReleasedViTL14_336() throws {
        let j = try Fixtures.json("eval/clip_vit_l14_336_keys.json")
        let keys = try XCTUnwrap(j["keys"] as? [String: [Int]])
        let c = try CLIPVisionConfig.inferred(from: ShapeArchive(keys, path: "model.safetensors"))
        let v = try XCTUnwrap((j["config"] as? [String: Any])?["vision_config"] as? [String: Any])
        XCTAssertEqual(c.width, v["hidden_size"] as? Int)
        XCTAssertEqual(c.heads, v["num_attention_heads"] as? Int)
        XCTAssertEqual(c.imageSize, v["image_size"] as? Int)
        XCTAssertEqual([c.depth, c.patchSize, c.projectionDim], [24, 14, 768])
        XCTAssertEqual(c.name, "ViT-L/14-336")
    }

    func testPreprocessingBitExact() throws {
        let imgs = try fixtureImages(io)
        let sel = try io.intTensor("sel_index").values.map { Int($0) }
        let pixels = try io.floatTensor("pixel_values_sel")  // NHWC
        for (i, img) in imgs.enumerated() {
            let (resized, x) = try model.preprocess(img)
            XCTAssertEqual(resized.pixels, try nhwcImage(io, "resized_u8", i).pixels, "image \(i): centre crop + PIL bicubic resize")
            if let j = sel.firstIndex(of: i) {
                assertBitExact(x.data, row(pixels, j).permuted([0, 3, 1, 2]).data, "image \(i) pixel values")
            }
        }
    }

    func testIntermediatesAndEmbeddings() throws {
        let imgs = try fixtureImages(io)
        let sel = try io.intTensor("sel_index").values.map { Int($0) }
        let pixels = try io.floatTensor("pixel_values_sel")
        let (patch, tokens, block0) = (
            try io.floatTensor("patch_embed_sel"), try io.floatTensor("tokens_sel"), try io.floatTensor("block0_sel")
        )
        for (j, i) in sel.enumerated() {
            let x = row(pixels, j).permuted([0, 3, 1, 2])
            assertClose(model.patchEmbedding(x), row(patch, j), tol: 1e-5, "patch_embed image \(i)")
            assertClose(model.tokens(x), row(tokens, j), tol: 1e-5, "tokens image \(i)")
            assertClose(model.hidden(x, blocks: 1), row(block0, j), tol: 1e-5, "block 0 image \(i)")
        }
        let (pooled, proj, features) = (try io.floatTensor("pooled"), try io.floatTensor("image_proj"), try io.floatTensor("features"))
        XCTAssertEqual(features.shape[0], imgs.count)
        for (i, img) in imgs.enumerated() {
            let x = try model.preprocess(img).pixels
            assertClose(model.pooled(pixels: x), row(pooled, i), tol: 1e-5, "pooled image \(i)")
            assertClose(model.projected(pixels: x), row(proj, i), tol: 1e-5, "image_proj image \(i)")
        }
        let ours = try CLIPFeatures(model).features(imgs)["embedding"]!
        let err = ours.maxAbsDiff(features)
        XCTAssertLessThanOrEqual(err, 1e-6, "CMMD embeddings: max abs diff \(err)")
    }
}

/// Key names and shapes without data: enough for config inference.
final class ShapeArchive: TensorArchive {
    let infos: [String: TensorInfo]
    let path: String
    init(_ shapes: [String: [Int]], path: String) {
        infos = shapes.mapValues { TensorInfo(dtype: .f32, shape: $0) }
        self.path = path
    }
    var keys: [String] { infos.keys.sorted() }
    func info(_ key: String) -> TensorInfo? { infos[key] }
    func floatTensor(_ key: String) throws -> Tensor { throw CheckpointError.missingKey(path: path, key: key, available: 0) }
    func intTensor(_ key: String) throws -> (shape: [Int], values: [Int64]) {
        throw CheckpointError.missingKey(path: path, key: key, available: 0)
    }
}

/// The shape tables the benchmarks build random models from are the released checkpoints' own.
final class ReleasedShapeTests: XCTestCase {
    func testDINOv2ViTL14Shapes() throws {
        let keys = try XCTUnwrap(try Fixtures.json("eval/dinov2_vitl14_keys.json")["keys"] as? [String: [Int]])
        let ours = try XCTUnwrap(DINOv2Config.hub("l")).stateDictShapes
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: ours), keys)
        XCTAssertEqual(try DINOv2Config.inferred(from: ShapeArchive(keys, path: "l")), DINOv2Config.hub("l"))
    }

    func testCLIPViTL14_336Shapes() throws {
        let keys = try XCTUnwrap(try Fixtures.json("eval/clip_vit_l14_336_keys.json")["keys"] as? [String: [Int]])
        let vision = keys.filter {
            $0.key.hasPrefix("vision_model.") && !$0.key.hasSuffix("position_ids") || $0.key == "visual_projection.weight"
        }
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: CLIPVisionConfig.vitL14_336.stateDictShapes), vision)
        XCTAssertEqual(try CLIPVisionConfig.inferred(from: ShapeArchive(keys, path: "m")), CLIPVisionConfig.vitL14_336)
    }
}
