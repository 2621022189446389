import Foundation
import ImageIO
import Metrics
import ModelIO
import Tensor
import XCTest

/// The hub variants the shared fixtures do not cover, against the official DINOv2 code: the `_reg4` models
/// (4 register tokens; position grid resampled with antialiasing and no offset) and ViT-g's SwiGLU feed-forward.
/// The golden file is made by scripts/gen_dinov2_variants_fixture.py (tiny random-weight DinoVisionTransformer).
final class DINOv2VariantTests: XCTestCase {
    static let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/dinov2_variants.safetensors").path

    func check(_ variant: String, registers: Int, swiglu: Bool) throws {
        let f = try SafetensorsFile(path: Self.file)
        let heads = Int(try f.intTensor("\(variant).heads").values[0])
        let model = try DINOv2(archive: PrefixedArchive(f, prefix: "\(variant).model."), heads: heads)
        XCTAssertEqual(model.config.registers, registers)
        XCTAssertEqual(model.config.swiglu, swiglu)
        XCTAssertEqual(model.config.interpolateAntialias, registers > 0)
        let s = try f.requireInfo("image_u8").shape
        let img = Image8(width: s[1], height: s[0], channels: s[2], pixels: [UInt8](try f.rawBytes("image_u8")))
        let x = try model.preprocess(img).pixels
        assertClose(model.positionEmbedding, try f.floatTensor("\(variant).pos_embed_added"), tol: 1e-5, "\(variant) pos_embed_added")
        assertClose(model.tokens(x), try f.floatTensor("\(variant).tokens"), tol: 1e-5, "\(variant) tokens")
        assertClose(model.feature(pixels: x), try f.floatTensor("\(variant).features"), tol: 1e-5, "\(variant) features")
    }

    func testRegisterTokens() throws { try check("reg4", registers: 4, swiglu: false) }
    func testSwiGLUFeedForward() throws { try check("swiglu", registers: 0, swiglu: true) }
}
