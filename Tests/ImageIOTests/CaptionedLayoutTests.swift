import ImageIO
import XCTest

final class CaptionedLayoutTests: XCTestCase {
    func solid(_ w: Int, _ h: Int, _ rgb: [UInt8]) -> Image8 {
        Image8(width: w, height: h, channels: 3, pixels: (0..<(w * h)).flatMap { _ in rgb })
    }

    func pixel(_ im: Image8, _ x: Int, _ y: Int) -> [UInt8] { Array(im.pixels[((y * im.width + x) * 3)..<((y * im.width + x) * 3 + 3)]) }

    func testNearestScalingRepeatsEveryPixel() {
        let im = Image8(width: 2, height: 1, channels: 3, pixels: [1, 2, 3, 4, 5, 6])
        let big = im.scaledNearest(3)
        XCTAssertEqual(big.width, 6); XCTAssertEqual(big.height, 3)
        for y in 0..<3 {
            for x in 0..<3 { XCTAssertEqual(pixel(big, x, y), [1, 2, 3]) }
            for x in 3..<6 { XCTAssertEqual(pixel(big, x, y), [4, 5, 6]) }
        }
    }

    /// One row per label; the label is drawn (white pixels) left of the images, and every image sits in its row.
    func testRowsPutEachGroupOnItsRowWithItsLabel() throws {
        let red = solid(8, 8, [255, 0, 0]), blue = solid(8, 8, [0, 0, 255])
        let grid = try CaptionedLayout.rows([("1 a", [red, red, red]), ("22", [blue])])
        let labelW = BitmapFont.width("1 a") + 4
        XCTAssertEqual(grid.width, labelW + 3 * 10 + 2)
        XCTAssertEqual(grid.height, 2 * 10 + 2)
        for c in 0..<3 { XCTAssertEqual(pixel(grid, labelW + 2 + c * 10 + 4, 2 + 4), [255, 0, 0]) }
        XCTAssertEqual(pixel(grid, labelW + 2 + 4, 12 + 4), [0, 0, 255])
        XCTAssertEqual(pixel(grid, labelW + 2 + 14, 12 + 4), [0, 0, 0], "the second row has one image")
        let labelPixels = (0..<grid.height).flatMap { y in (0..<labelW).map { pixel(grid, $0, y) } }
        XCTAssertGreaterThan(labelPixels.filter { $0 == [255, 255, 255] }.count, 10, "labels are drawn")
        XCTAssertThrowsError(try CaptionedLayout.rows([("x", [red, solid(4, 4, [0, 0, 0])])]))
    }

    /// The compare strip enlarges each panel by the factor (nearest neighbour) under a caption band.
    func testStripEnlargesPanels() {
        let a = solid(4, 4, [10, 20, 30]), b = solid(4, 4, [40, 50, 60])
        let s = CaptionedLayout.strip([a, b], captions: ["in", "out"], factor: 4)
        XCTAssertEqual(s.width, 16 + 2 + 16)
        let band = s.height - 16
        XCTAssertGreaterThan(band, BitmapFont.glyphHeight)
        XCTAssertEqual(pixel(s, 0, band), [10, 20, 30]); XCTAssertEqual(pixel(s, 15, s.height - 1), [10, 20, 30])
        XCTAssertEqual(pixel(s, 18, band), [40, 50, 60])
    }
}
