import Foundation
import ModelIO
import Tensor

/// Locates ../shared/fixtures (or $VARLAB_FIXTURES) and reads its files. Parity tests take every size and
/// setting from these files, never from constants.
public enum Fixtures {
    public static var root: URL {
        if let env = ProcessInfo.processInfo.environment["VARLAB_FIXTURES"], !env.isEmpty {
            return URL(fileURLWithPath: env, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath)).standardizedFileURL
        }
        // Tests/TestSupport/Fixtures.swift -> package root -> ../shared/fixtures
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return packageRoot.appendingPathComponent("../shared/fixtures").standardizedFileURL
    }

    public static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    public static func exists(_ relative: String) -> Bool { FileManager.default.fileExists(atPath: path(relative)) }

    public static func safetensors(_ relative: String) throws -> SafetensorsFile { try SafetensorsFile(path: path(relative)) }

    /// A JSON file as a dictionary.
    public static func json(_ relative: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path(relative)))
        guard let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CheckpointError.malformed(path: path(relative), reason: "not a JSON object")
        }
        return obj
    }
}

/// max |a - b| / max(1, max |ref|), the fixture README's relative measure for single forward passes.
public func relativeError(_ a: Tensor, _ ref: Tensor, floor: Float = 1) -> Float {
    precondition(a.shape == ref.shape, "shape \(a.shape) vs reference \(ref.shape)")
    return a.maxAbsDiff(ref) / max(floor, ref.maxAbs())
}
