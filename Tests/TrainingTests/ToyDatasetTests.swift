import Foundation
import Tensor
import Training
import XCTest

final class ToyDatasetTests: XCTestCase {
    func testDeterministicAndSplitsDisjoint() {
        let a = ToyDataset(seed: 7, split: .train), b = ToyDataset(seed: 7, split: .train)
        XCTAssertEqual(a.image(13), b.image(13), "pure function of (seed, split, index)")
        XCTAssertNotEqual(a.image(13), a.image(23), "same class, different sample")
        XCTAssertNotEqual(a.image(13), ToyDataset(seed: 8, split: .train).image(13), "seed matters")
        let held = ToyDataset(seed: 7, split: .heldout)
        let train = Set((0..<200).map { a.image($0).pixels })
        for i in 0..<200 { XCTAssertFalse(train.contains(held.image(i).pixels), "held-out \(i) appears in train") }
        XCTAssertEqual(a.image(0).width, 64); XCTAssertEqual(a.image(0).channels, 3)
    }

    func testBatchMatchesImagesAndIsBalanced() {
        let ds = ToyDataset(seed: 1, size: 32)
        let (x, y) = ds.batch([0, 5, 11, 29])
        XCTAssertEqual(x.shape, [4, 3, 32, 32])
        XCTAssertEqual(y, [0, 5, 1, 9])
        XCTAssertEqual(Array(x.data[(3 * 3 * 32 * 32)...]), ds.image(29).signedCHW().data)
        XCTAssertEqual((0..<100).map(ds.label).filter { $0 == 4 }.count, 10)
    }

    /// Intra-class variation is real: images of one class differ in their mean colour and in where the
    /// foreground is (the pixels that differ from the corner colour).
    func testIntraClassVariation() {
        let ds = ToyDataset(seed: 3)
        for cls in 0..<ToyDataset.classCount {
            let means = (0..<8).map { i -> Double in
                let img = ds.image(cls + 10 * i)
                return img.pixels.reduce(0.0) { $0 + Double($1) } / Double(img.pixels.count)
            }
            XCTAssertGreaterThan(means.max()! - means.min()!, 10, "class \(cls) mean brightness barely varies")
        }
    }
}
