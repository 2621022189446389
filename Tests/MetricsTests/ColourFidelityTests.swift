import ImageIO
import Metrics
import XCTest

final class ColourFidelityTests: XCTestCase {
    func testMeanColourErrorPerChannel() throws {
        let a = Image8(width: 2, height: 1, channels: 3, pixels: [100, 0, 50, 200, 0, 50])  // mean 150, 0, 50
        let grey = Image8(width: 2, height: 1, channels: 3, pixels: [60, 60, 60, 80, 80, 80])  // mean 70, 70, 70
        XCTAssertEqual(try ColourFidelity.meanColourError(originals: [a], reconstructions: [grey]), [80, 70, 20])
        XCTAssertEqual(try ColourFidelity.meanColourError(originals: [a, a], reconstructions: [a, grey]), [40, 35, 10])
        XCTAssertThrowsError(try ColourFidelity.meanColourError(originals: [a], reconstructions: []))
    }
}
