import ImageIO
import Metrics
import ModelIO
import Tensor
import TestSupport
import XCTest

final class ResNetParityTests: XCTestCase {
    func testLogitsAndNormalisation() throws {
        let net = try ResNet(path: Fixtures.path("eval/resnet_bottleneck1111_fp16.safetensors"))
        let config = try Fixtures.json("eval/resnet_config.json")
        let blocks = try XCTUnwrap((config["args"] as? [Any])?.last as? [Int])
        XCTAssertEqual(net.blockCounts, blocks, "block counts read from the checkpoint")
        XCTAssertEqual(net.classes, (config["kwargs"] as? [String: Any])?["num_classes"] as? Int)
        let norm = try XCTUnwrap(config["input_normalisation"] as? [String: [Double]])
        XCTAssertEqual(ResNetPreprocessing.mean, norm["mean"]!.map(Float.init))
        XCTAssertEqual(ResNetPreprocessing.std, norm["std"]!.map(Float.init))
        XCTAssertEqual(Double(ResNet.bnEps), try XCTUnwrap(config["bn_eps"] as? Double), accuracy: 1e-12)

        let io = try Fixtures.safetensors("eval/resnet_io.safetensors")
        let x = try ResNetPreprocessing.normalize(images(io, "images_u8"))
        let ref = try io.floatTensor("input")
        XCTAssertLessThanOrEqual(x.maxAbsDiff(ref), 1e-6)
        assertDeepNetClose(net(ref), try io.floatTensor("logits"), "ResNet logits")
    }

    func testResizeAndCrop() throws {
        // 256 x 320 -> shorter side already 256: unchanged; crop takes rows 16..<240 and columns 48..<272.
        var px = [UInt8](repeating: 0, count: 256 * 320 * 3)
        for y in 0..<256 { for x in 0..<320 { px[(y * 320 + x) * 3] = UInt8((x + y) % 256) } }
        let img = Image8(width: 320, height: 256, channels: 3, pixels: px)
        XCTAssertEqual(try ResNetPreprocessing.resizeShorter(img, to: 256), img)
        let c = try ResNetPreprocessing.centerCrop(img, 224)
        XCTAssertEqual(c.pixels[0], UInt8((48 + 16) % 256))
        // A constant image stays constant through the antialiased resize.
        let flat = Image8(width: 50, height: 40, channels: 3, pixels: [UInt8](repeating: 77, count: 50 * 40 * 3))
        let r = try ResNetPreprocessing.resizeShorter(flat, to: 256)
        XCTAssertEqual(r.height, 256)
        XCTAssertEqual(r.width, 320)
        XCTAssertTrue(r.pixels.allSatisfy { $0 == 77 })
        XCTAssertEqual(try ResNetPreprocessing.input([flat]).shape, [1, 3, 224, 224])
    }
}
