import ImageIO
import Metrics
import ModelIO
import Tensor
import TestSupport
import XCTest

/// Images of a uint8 NHWC fixture tensor.
func images(_ f: SafetensorsFile, _ key: String) throws -> [Image8] {
    let info = try f.requireInfo(key)
    XCTAssertEqual(info.dtype, .u8)
    let (n, h, w, c) = (info.shape[0], info.shape[1], info.shape[2], info.shape[3])
    let raw = try f.rawBytes(key)
    let per = h * w * c
    return (0..<n).map { i in Image8(width: w, height: h, channels: c, pixels: Array(raw[(i * per)..<((i + 1) * per)])) }
}

/// The README's check for deep nets: max |a - b| <= 1e-3 * max |ref|.
func assertDeepNetClose(_ a: Tensor, _ ref: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.shape, ref.shape, what, file: file, line: line)
    guard a.shape == ref.shape else { return }
    let err = a.maxAbsDiff(ref) / ref.maxAbs()
    XCTAssertLessThanOrEqual(err, 1e-3, "\(what): relative error \(err)", file: file, line: line)
}

final class InceptionParityTests: XCTestCase {
    static var cached: InceptionV3?
    var net: InceptionV3!
    var io: SafetensorsFile!

    override func setUpWithError() throws {
        if InceptionParityTests.cached == nil {
            InceptionParityTests.cached = try InceptionV3(path: Fixtures.path("eval/fid_inception_v3_fp16.safetensors"))
        }
        net = InceptionParityTests.cached
        io = try Fixtures.safetensors("eval/inception_io.safetensors")
    }

    func testPool3LogitsSpatialPytorchFidPreprocessing() throws {
        let imgs = try images(io, "images_u8")
        let out = net(try InceptionPreprocessing.pytorchFid.input(imgs))
        assertDeepNetClose(out.pool3, try io.floatTensor("pool3"), "pool3")
        assertDeepNetClose(net.logits(out.pool3, bias: true), try io.floatTensor("logits_1008"), "logits with bias")
        assertDeepNetClose(net.logits(out.pool3), try io.floatTensor("logits_1008_nobias"), "logits without bias")
        assertDeepNetClose(out.spatial, try io.floatTensor("spatial_mixed6d_branch1x1_first7"), "sFID spatial features")
        XCTAssertEqual(net.featureWidth, out.pool3.shape[1])
    }

    func testPool3At299() throws {
        let imgs = try images(io, "images299_u8")
        XCTAssertEqual(imgs[0].width, InceptionV3.inputSize)
        let out = net(try InceptionPreprocessing.pytorchFid.input(imgs))
        assertDeepNetClose(out.pool3, try io.floatTensor("pool3_299"), "pool3 of 299x299 inputs")
    }

    /// The TF mode differs only in the resize (no half-pixel offset) and the affine map: at 299 x 299 the
    /// resize is the identity and the input is exactly (x - 128) / 128.
    func testTFPreprocessingAt299() throws {
        let imgs = try images(io, "images299_u8")
        let x = try InceptionPreprocessing.tf.input([imgs[0]])
        let s = InceptionV3.inputSize
        for (i, c) in [(0, 0), (12345, 1), (s * s - 1, 2)] {
            XCTAssertEqual(x.data[c * s * s + i], (Float(imgs[0].pixels[i * 3 + c]) - 128) / 128)
        }
        let y = try InceptionPreprocessing.tf.input([
            Image8(width: 2, height: 2, channels: 3, pixels: [0, 0, 0, 255, 255, 255, 0, 0, 0, 255, 255, 255])
        ])
        // TF1 resize without half-pixel offset: output column o samples input column o * 2 / 299, so column 0 is
        // exactly input column 0 (0 -> -1) and the last is clamped to the last input column (255).
        XCTAssertEqual(y.data[0], -1)
        XCTAssertEqual(y.data[s - 1], (255 - 128) / 128)
    }

    func testRejectsNonRGB() {
        XCTAssertThrowsError(try InceptionPreprocessing.tf.input([Image8(width: 1, height: 1, channels: 1, pixels: [3])]))
    }
}
