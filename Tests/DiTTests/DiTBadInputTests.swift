import Autoencoders
import DiT
import Foundation
import ModelIO
import Tensor
import TestSupport
import XCTest

/// Checkpoints whose shapes contradict each other or the config beside them: clear errors naming file and key.
final class DiTBadInputTests: XCTestCase {
    func fixtureCopy() throws -> MemoryArchive {
        let f = try Fixtures.safetensors("dit/dit.safetensors")
        return MemoryArchive(path: "edited.safetensors", tensors: try f.keys.map { ($0, try f.floatTensor($0)) })
    }

    func testShapeContradictingTheConfigNamesTheKey() throws {
        let a = try fixtureCopy()
        let config = try DiTConfig.infer(from: a, numHeads: try DiTConfig.headsFromJSON(path: Fixtures.path("dit/dit_config.json")))
        let key = "blocks.\(config.depth - 1).mlp.fc2.weight"
        let w = try a.floatTensor(key)
        a.set(key, Tensor(zeros: [w.shape[0], w.shape[1] + 1]))
        XCTAssertThrowsError(try DiTModel(archive: a, config: config)) { e in
            XCTAssertTrue("\(e)".contains(key) && "\(e)".contains("edited.safetensors"), "\(e)")
        }
    }

    func testMissingBlockIsAnError() throws {
        let a = try fixtureCopy()
        var config = try DiTConfig.infer(from: a, numHeads: try DiTConfig.headsFromJSON(path: Fixtures.path("dit/dit_config.json")))
        config.depth += 1
        XCTAssertThrowsError(try DiTModel(archive: a, config: config)) { e in
            XCTAssertTrue("\(e)".contains("blocks.\(config.depth - 1)."), "\(e)")
        }
        config.depth -= 2
        XCTAssertThrowsError(try DiTModel(archive: a, config: config)) { e in XCTAssertTrue("\(e)".contains("more than"), "\(e)") }
    }

    func testConfigFileContradictingTheShapes() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("varlab-dit-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let ckpt = dir.appendingPathComponent("dit.safetensors").path
        try FileManager.default.copyItem(atPath: Fixtures.path("dit/dit.safetensors"), toPath: ckpt)
        var cfg = try Fixtures.json("dit/dit_config.json")
        var kw = try XCTUnwrap(cfg["kwargs"] as? [String: Any])
        let depth = try XCTUnwrap((kw["depth"] as? NSNumber)?.intValue)
        kw["depth"] = depth + 3
        cfg["kwargs"] = kw
        try JSONSerialization.data(withJSONObject: cfg).write(to: dir.appendingPathComponent("dit_config.json"))
        XCTAssertThrowsError(try DiTModel.load(path: ckpt)) { e in
            XCTAssertTrue("\(e)".contains("depth") && "\(e)".contains("dit_config.json"), "\(e)")
        }
    }
}
