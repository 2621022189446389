import Autoencoders
import Foundation
import ModelIO
import Tensor
import Training
import XCTest

/// The shipped models in assets/models are what `sample`, `edit` and `eval` use without flags: these tests check
/// that the files load as the architectures their metadata names and still do their job on held-out toy data.
enum Assets {
    /// <repo>/assets/models (this file is <repo>/Tests/BuiltinModelTests/...).
    static let models = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("assets/models")
    static func path(_ name: String) -> String { models.appendingPathComponent(name).path }

    static func vqvae() throws -> VQVAE { try VQLatentCodec.loadVQVAE(path: path("toy-vqvae.safetensors")) }

    static func heldOut(_ range: Range<Int>, size: Int = 64) -> (images: Tensor, labels: [Int]) {
        ToyDataset(seed: 0, split: .heldout, size: size).batch(Array(range))
    }

    static func accuracy(_ classifier: ToyClassifier, _ images: Tensor, _ labels: [Int]) -> Double {
        let pred = classifier.evaluate(images).logits.argmaxLastAxis()
        return Double(zip(pred, labels).filter { $0 == $1 }.count) / Double(labels.count)
    }
}

final class BuiltinTokenizerTests: XCTestCase {
    func testShippedFilesFitTheBudget() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Assets.models.path).filter { $0.hasSuffix(".safetensors") }
        XCTAssertTrue(files.contains("toy-vqvae.safetensors") && files.contains("toy-classifier.safetensors"), "\(files)")
        let total = try files.reduce(0) { $0 + ((try FileManager.default.attributesOfItem(atPath: Assets.path($1))[.size] as? Int) ?? 0) }
        XCTAssertLessThanOrEqual(total, 25_000_000, "the built-in models must stay within 25 MB together")
        for f in files {
            let meta = try SafetensorsFile(path: Assets.path(f)).metadata
            XCTAssertNotNil(meta["varlab.train"], "\(f) records its training options")
            XCTAssertNil(meta["varlab.optimizer.step"], "\(f) is exported without optimizer state")
        }
    }

    /// The toy classifier recognises real held-out toy images (the premise of toy accuracy).
    func testToyClassifierRecognisesHeldOutImages() throws {
        let classifier = try ToyClassifier.load(path: Assets.path("toy-classifier.safetensors"))
        let (x, y) = Assets.heldOut(0..<200, size: classifier.config.imageSize)
        XCTAssertGreaterThanOrEqual(Assets.accuracy(classifier, x, y), 0.99)
    }

    /// The tokenizer keeps the class: its reconstructions are still recognised (the ceiling for VAR and DiT, which
    /// both decode through it; `varlab bench toy-quality` measured 0.984 on 1,000 images).
    func testVQVAEReconstructionsKeepTheClass() throws {
        let vae = try Assets.vqvae()
        let classifier = try ToyClassifier.load(path: Assets.path("toy-classifier.safetensors"))
        let (x, y) = Assets.heldOut(1000..<1100, size: vae.imageSize)
        let recon = vae.decode(tokens: try vae.tokens(images: x))
        XCTAssertEqual(recon.shape, x.shape)
        XCTAssertGreaterThanOrEqual(Assets.accuracy(classifier, recon, y), 0.93)
        XCTAssertLessThan(
            Float((recon - x).data.map { $0 * $0 }.reduce(0, +)) / Float(x.count), 0.05,
            "reconstruction mse (0.025 measured on 64 held-out images)")
    }
}
