import Metrics
import Tensor
import XCTest

/// The lab's diversity measure on hand-computed cases: the mean distance within each class, classes weighed alike.
final class WithinClassDiversityTests: XCTestCase {
    func testKnownDistances() throws {
        // Class 0: (0,0), (3,4), (0,8): distances 5, 8, 5 -> 6. Class 1: (1,1), (1,3): 2. A lone class 2 is skipped.
        let f = Tensor(shape: [6, 2], data: [0, 0, 3, 4, 0, 8, 1, 1, 1, 3, 9, 9])
        let d = try XCTUnwrap(try WithinClassDiversity.meanPairwiseDistance(features: f, labels: [0, 0, 0, 1, 1, 2]))
        XCTAssertEqual(d, (6 + 2) / 2, accuracy: 1e-12)
        XCTAssertNil(try WithinClassDiversity.meanPairwiseDistance(features: Tensor(shape: [2, 2], data: [0, 0, 1, 1]), labels: [0, 1]))
        XCTAssertThrowsError(try WithinClassDiversity.meanPairwiseDistance(features: f, labels: [0, 1]))
    }
}
