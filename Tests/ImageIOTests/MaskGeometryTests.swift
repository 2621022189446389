import Foundation
import ImageIO
import XCTest

final class MaskGeometryTests: XCTestCase {
    func testBoxPixelsAndFractions() throws {
        let px = try BoxSpec(parsing: "16, 8, 48, 40")
        XCTAssertFalse(px.isFraction)
        let p = try px.pixels(width: 64, height: 64)
        XCTAssertEqual([p.x0, p.y0, p.x1, p.y1], [16, 8, 48, 40])
        let fr = try BoxSpec(parsing: "0.25,0.5,0.75,1")
        XCTAssertTrue(fr.isFraction)
        let q = try fr.pixels(width: 64, height: 32)
        XCTAssertEqual([q.x0, q.y0, q.x1, q.y1], [16, 16, 48, 32])
    }

    func testBadBoxesAreErrors() {
        XCTAssertThrowsError(try BoxSpec(parsing: "1,2,3"))
        XCTAssertThrowsError(try BoxSpec(parsing: "1,2,x,4"))
        XCTAssertThrowsError(try BoxSpec(parsing: "10,10,80,20").pixels(width: 64, height: 64)) { e in
            XCTAssertTrue("\(e)".contains("outside"), "\(e)")
        }
        XCTAssertThrowsError(try BoxSpec(parsing: "30,10,20,20").pixels(width: 64, height: 64))
    }

    /// Official box order is (y0, x0, y1, x1); ours is x first. With a square image the fractions pass through unchanged.
    func testModelFractionsIdentityAndCrop() throws {
        let g = try CenterCropGeometry(sourceWidth: 64, sourceHeight: 64, size: 64)
        XCTAssertTrue(g.isIdentity)
        let f = try BoxSpec(0.125, 0.5, 0.625, 1.0).modelFractions(g)
        XCTAssertEqual([f.y0, f.x0, f.y1, f.x1], [0.5, 0.125, 1.0, 0.625])

        // 128 x 64 landscape: the shorter side already is 64, so only the centre crop x in [32, 96) is taken
        let w = try CenterCropGeometry(sourceWidth: 128, sourceHeight: 64, size: 64)
        XCTAssertEqual([w.scaledWidth, w.scaledHeight, w.cropX, w.cropY], [128, 64, 32, 0])
        let b = try BoxSpec(48, 16, 80, 48).modelFractions(w)
        XCTAssertEqual([b.y0, b.x0, b.y1, b.x1], [0.25, 0.25, 0.75, 0.75])
        XCTAssertThrowsError(try BoxSpec(0, 0, 20, 20).modelFractions(w))  // entirely left of the crop
    }

    func testGeometryShorterSideAndCenterCrop() throws {
        let g = try CenterCropGeometry(sourceWidth: 300, sourceHeight: 200, size: 64)
        XCTAssertEqual(g.scaledHeight, 64)
        XCTAssertEqual(g.scaledWidth, 96)
        XCTAssertEqual(g.cropX, 16)
        XCTAssertEqual(g.cropY, 0)
        let img = Image8(width: 300, height: 200, channels: 3, pixels: [UInt8](repeating: 77, count: 300 * 200 * 3))
        let m = try g.apply(img)
        XCTAssertEqual([m.width, m.height], [64, 64])
        XCTAssertTrue(m.pixels.allSatisfy { $0 == 77 })  // a constant image stays constant (normalised weights)
    }

    func testMaskThresholdAndResize() throws {
        let img = Image8(width: 4, height: 1, channels: 1, pixels: [0, 127, 128, 255])
        let (m, binary) = PixelMask.fromImage(img)
        XCTAssertFalse(binary)
        XCTAssertEqual(m.regenerate, [false, false, true, true])
        let r = try m.resized(width: 8, height: 2)
        XCTAssertEqual([r.width, r.height], [8, 2])
        XCTAssertEqual(Array(r.regenerate.prefix(8)), [false, false, false, false, true, true, true, true])
    }

    func testCellsRegeneratedMajorityWithFallback() throws {
        let m = try PixelMask.rectangle(width: 8, height: 8, x0: 3, y0: 0, x1: 4, y1: 1, regenerateInside: true)
        XCTAssertEqual(m.regeneratedCount, 1)
        XCTAssertEqual(try m.cellsRegenerated(2), [true, false, false, false])
        XCTAssertThrowsError(try m.cellsRegenerated(3))
        // majority: a cell half covered is regenerated, a cell with a quarter is not (when others are)
        let h = try PixelMask.rectangle(width: 8, height: 8, x0: 0, y0: 0, x1: 6, y1: 4, regenerateInside: true)
        XCTAssertEqual(try h.cellsRegenerated(2), [true, true, false, false])
        let q = try PixelMask.rectangle(width: 8, height: 8, x0: 0, y0: 0, x1: 5, y1: 4, regenerateInside: true)
        XCTAssertEqual(try q.cellsRegenerated(2), [true, false, false, false])
    }

    func testOutpaintGrowAndKeep() throws {
        let img = Image8(width: 4, height: 2, channels: 3, pixels: [UInt8](repeating: 9, count: 24))
        let spec = try OutpaintSpec(parsing: "grow:2,0,2,1")
        let (canvas, mask) = try XCTUnwrap(try spec.grownCanvas(img))
        XCTAssertEqual([canvas.width, canvas.height], [8, 3])
        XCTAssertEqual(mask.regeneratedCount, 8 * 3 - 4 * 2)
        XCTAssertFalse(mask.regenerate[0 * 8 + 2])
        XCTAssertTrue(mask.regenerate[0 * 8 + 1])
        if case .keep = try OutpaintSpec(parsing: "0.25,0.25,0.75,0.75") {} else { XCTFail("expected keep box") }
        XCTAssertThrowsError(try OutpaintSpec(parsing: "grow:1,2"))
    }

    func testPasteBackOnlyRegeneratedPixels() throws {
        let g = try CenterCropGeometry(sourceWidth: 8, sourceHeight: 8, size: 8)
        let orig = Image8(width: 8, height: 8, channels: 3, pixels: [UInt8](repeating: 10, count: 192))
        let res = Image8(width: 8, height: 8, channels: 3, pixels: [UInt8](repeating: 200, count: 192))
        let m = try PixelMask.rectangle(width: 8, height: 8, x0: 0, y0: 0, x1: 4, y1: 8, regenerateInside: true)
        let out = try g.pasteBack(res, into: orig, regenerate: m)
        XCTAssertEqual(out.pixels[0], 200)
        XCTAssertEqual(out.pixels[(0 * 8 + 7) * 3], 10)
        XCTAssertThrowsError(try g.pasteBack(res, into: Image8(width: 4, height: 4, channels: 3, pixels: [UInt8](repeating: 0, count: 48))))
    }
}

final class MaskGrowSquareTests: XCTestCase {
    func testGrowToSquareKeepsImageCentred() throws {
        let img = Image8(width: 6, height: 4, channels: 3, pixels: [UInt8](repeating: 9, count: 72))
        let (canvas, mask) = try XCTUnwrap(try OutpaintSpec(parsing: "grow:2,0,2,0").grownCanvas(img, square: true))
        XCTAssertEqual([canvas.width, canvas.height], [10, 10])
        XCTAssertEqual(mask.regeneratedCount, 100 - 24)
        XCTAssertFalse(mask.regenerate[3 * 10 + 2])  // top-left pixel of the original sits at (2, 3)
        XCTAssertTrue(mask.regenerate[2 * 10 + 2])
    }
}

final class MaskPipelineTests: XCTestCase {
    /// The geometry's sizes and offsets are those of the official pipelines (Preprocess), so masks and boxes land
    /// where the image does.
    func testGeometryMatchesPreprocess() throws {
        for (w, h) in [(300, 200), (201, 333), (64, 65), (517, 130)] {
            var px = [UInt8](repeating: 0, count: w * h * 3)
            for i in 0..<(w * h) { px[i * 3] = UInt8(i % 251); px[i * 3 + 1] = UInt8((i / w) % 256) }
            let img = Image8(width: w, height: h, channels: 3, pixels: px)
            for p in [CenterCropGeometry.Pipeline.var, .adm] {
                let g = try CenterCropGeometry(sourceWidth: w, sourceHeight: h, size: 64, pipeline: p)
                let a = try g.apply(img)
                XCTAssertEqual([a.width, a.height], [64, 64])
                // VAR: the same image through resize + crop with the geometry's numbers.
                if p == .var {
                    let b = try img.resized(width: g.scaledWidth, height: g.scaledHeight, filter: .lanczos)
                        .cropped(x: g.cropX, y: g.cropY, width: 64, height: 64)
                    XCTAssertEqual(a, b, "\(w)x\(h)")
                }
            }
        }
    }
}
