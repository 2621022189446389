import Foundation
import Samplers
import Tensor
import Training
import VAR
import XCTest

/// FastVAR cached token pruning (`--fast`): with nothing dropped it is the exact sampler bit for bit (the pruned path
/// computes the same sub-layers in the same order); with tokens dropped it changes the image but stays a pure
/// function of (seed, index); the pivotal choice is the farthest-from-mean tokens; bad settings are refused.
final class FastVARTests: XCTestCase {
    func sampler(_ variant: VARVariant = .next, pruning: TokenPruning?) throws -> NextScaleSampler<VARModel> {
        var opts = TrainOptions()
        opts.steps = 1; opts.batchSize = 2
        let trainer = try VARTrainFixture.trainer(variant, images: 4, options: opts)
        let (model, path) = try VARTrainFixture.perturbedExport(trainer, seed: 41, name: "fast-\(variant.rawValue)")
        try? FileManager.default.removeItem(atPath: path)
        return try NextScaleSampler(model: model, vae: trainer.vae, cfg: 2, pruning: pruning)
    }

    func testNothingDroppedIsTheExactSampler() throws {
        let exact = try sampler(pruning: nil)
        var fast = exact
        fast.pruning = TokenPruning(dropRatios: [0, 0], firstPrunedBlock: 0)
        let a = try exact.sample(labels: [0, 2], seed: 3), b = try fast.sample(labels: [0, 2], seed: 3)
        XCTAssertEqual(a.tokens, b.tokens)
        XCTAssertEqual(a.images!.data, b.images!.data)
    }

    func testDroppingTokensChangesTheImageButNotItsDeterminism() throws {
        var s = try sampler(pruning: nil)
        let exact = try s.sample(labels: [1, 2, 0], seed: 5)
        s.pruning = TokenPruning(dropRatios: [0.5], firstPrunedBlock: 0)  // the 4x4 scale, restored from the 2x2 one
        let fast = try s.sample(labels: [1, 2, 0], seed: 5)
        XCTAssertNotEqual(exact.images!.data, fast.images!.data)
        XCTAssertEqual(exact.tokens[0], fast.tokens[0], "scales before the pruned one are exact")
        let alone = try s.sample(labels: [2], sampleIndices: [1], seed: 5)
        XCTAssertEqual(fast.images!.slice0(1, 2).data, alone.images!.data, "a sample does not depend on its batch")
    }

    func testPivotalTokensAreTheFarthestFromTheMean() {
        // Sample 0: tokens 2 and 1 are farthest from the mean (2.75, 2.75). Sample 1: token 3, then a three-way tie
        // broken by the lower index.
        let x = Tensor(shape: [2, 4, 2], data: [1, 1, 0, 0, 9, 9, 1, 1, 0, 0, 0, 0, 0, 0, 5, 0])
        XCTAssertEqual(PivotalTokens.select(x, keep: 2), [[1, 2], [0, 3]])
        XCTAssertEqual(PivotalTokens.select(x, keep: 4), [[0, 1, 2, 3], [0, 1, 2, 3]])
    }

    func testBadSettingsAreRefused() throws {
        XCTAssertThrowsError(try sampler(pruning: TokenPruning(dropRatios: [0.4, 0.5, 0.5]))) { e in
            XCTAssertTrue("\(e)".contains("drop ratios"), "\(e)")  // 3 scales: at most 2 can be pruned
        }
        XCTAssertThrowsError(try sampler(pruning: TokenPruning(dropRatios: [1.0])))
        XCTAssertThrowsError(try sampler(.ar, pruning: TokenPruning(dropRatios: [0.5])).sample(labels: [0], seed: 0)) { e in
            XCTAssertTrue("\(e)".contains("next-scale"), "\(e)")
        }
    }
}
