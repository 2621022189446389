import Foundation
import XCTest

/// Runs the `varlab` executable built with the tests (end-to-end tests of what a user types).
public enum VarlabCLI {
    /// The binary next to the test bundle (Linux: the products folder; macOS: beside the .xctest), else the package's
    /// .build/release; a skip when it is not built.
    public static func binary() throws -> URL {
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for c in [
            here.appendingPathComponent("varlab"), here.deletingLastPathComponent().appendingPathComponent("varlab"),
            root.appendingPathComponent(".build/release/varlab"),
        ]
        where FileManager.default.isExecutableFile(atPath: c.path) { return c }
        throw XCTSkip("varlab executable not built next to the tests (run `swift build -c release` first)")
    }

    /// Exit status, stdout and stderr of `varlab args...`; `environment` entries are set (nil values removed).
    public static func run(_ args: [String], environment: [String: String?] = [:]) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = try binary()
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let o = Pipe(), e = Pipe()
        p.standardOutput = o; p.standardError = e
        try p.run()
        let od = o.fileHandleForReading.readDataToEndOfFile(), ed = e.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: od, as: UTF8.self), String(decoding: ed, as: UTF8.self))
    }
}

extension XCTestCase {
    /// A fresh folder under the system's temporary directory, removed when the test ends.
    public func temporaryFolder(_ prefix: String) throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }
}

/// Asserts that `body` throws an error whose description mentions every one of `needles` (file, key, limit, ...).
public func assertThrows(
    _ body: @autoclosure () throws -> Any, _ needles: [String], file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertThrowsError(try body(), file: file, line: line) { err in
        let s = "\(err)"
        for n in needles { XCTAssertTrue(s.contains(n), "error '\(s)' should mention '\(n)'", file: file, line: line) }
    }
}
