import Foundation
import TestSupport
import XCTest

/// `varlab edit --jobs`: one bad job among good ones. Runs the built CLI (it sits next to the test bundle).
final class EditJobsTests: XCTestCase {
    var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) { try VarlabCLI.run(args) }

    /// A fresh folder (removed after the test) and the job fields every VAR fixture job shares.
    func varJobSetup() throws -> (dir: URL, common: String) {
        guard Fixtures.exists("var/var.safetensors") else { throw XCTSkip("no fixtures") }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("varlab-jobs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let image = packageRoot.appendingPathComponent("assets/examples/scene.png").path
        let cfg = try Fixtures.json("var/var_config.json")
        let pns = try XCTUnwrap((cfg["kwargs"] as? [String: Any])?["patch_nums"] as? [Int])
        let common =
            "\"patch_nums\": \(pns), \"model\": \"var\", \"checkpoint\": \"\(Fixtures.path("var/var.safetensors"))\", \"vae\": \"\(Fixtures.path("var/vqvae.safetensors"))\", \"image\": \"\(image)\", \"top_k\": 1"
        return (dir, common)
    }

    func testOneBadJobAmongGoodOnes() throws {
        let (dir, common) = try varJobSetup()
        let jobs = """
            {"name": "inpaint", \(common), "box": [0.25, 0.25, 0.75, 0.75], "output": "a.png"}
            {"name": "unknown-field", \(common), "box": "0.1,0.1,0.5,0.5", "colour": "red", "output": "b.png"}
            {"name": "outpaint", \(common), "outpaint": [0.3, 0.3, 0.7, 0.7], "seed": 3, "output": "c.png"}
            {"name": "box-outside", \(common), "box": "0,0,500,20", "output": "d.png"}
            """
        let path = dir.appendingPathComponent("jobs.jsonl")
        try jobs.write(to: path, atomically: true, encoding: .utf8)
        let r = try run(["edit", "--jobs", path.path])
        XCTAssertNotEqual(r.status, 0, "a failed job must make the exit code non-zero\n\(r.err)")
        XCTAssertTrue(r.err.contains("job 2") && r.err.contains("colour"), r.err)
        XCTAssertTrue(r.err.contains("job 4") && r.err.contains("box") && r.err.contains("outside"), r.err)
        XCTAssertTrue(r.out.contains("4 jobs: 2 ok, 0 skipped, 2 failed"), r.out + r.err)
        let fm = FileManager.default
        XCTAssertTrue(fm.fileExists(atPath: dir.appendingPathComponent("a.png").path), r.err)
        XCTAssertTrue(fm.fileExists(atPath: dir.appendingPathComponent("c.png").path), r.err)
        XCTAssertFalse(fm.fileExists(atPath: dir.appendingPathComponent("b.png").path))
        // no temporary files left behind (atomic writes)
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") }, [])

        // --resume skips the finished jobs; the bad ones still fail.
        let again = try run(["edit", "--jobs", path.path, "--resume"])
        XCTAssertTrue(again.out.contains("4 jobs: 0 ok, 2 skipped, 2 failed"), again.out + again.err)
        XCTAssertNotEqual(again.status, 0)
    }

    /// Two jobs writing one file: the later fails before anything runs (neither reports a file the other wrote);
    /// CRLF .jsonl files are read line by line; --resume reruns a job whose -compare.png is missing.
    func testDuplicateOutputsCRLFAndResumeWithCompare() throws {
        let (dir, shared) = try varJobSetup()
        let common = shared + ", \"box\": [0.25, 0.25, 0.75, 0.75]"
        let jobs =
            [
                "{\"name\": \"first\", \(common), \"compare\": true, \"output\": \"a.png\"}",
                "{\"name\": \"same-file\", \(common), \"seed\": 5, \"output\": \"a.png\"}",
            ].joined(separator: "\r\n") + "\r\n"
        let path = dir.appendingPathComponent("jobs.jsonl")
        try jobs.write(to: path, atomically: true, encoding: .utf8)
        let r = try run(["edit", "--jobs", path.path])
        XCTAssertTrue(r.out.contains("2 jobs: 1 ok, 0 skipped, 1 failed"), r.out + r.err)
        XCTAssertTrue(r.err.contains("job 2") && r.err.contains("which job 1 also writes"), r.err)
        let compare = dir.appendingPathComponent("a-compare.png").path
        XCTAssertTrue(FileManager.default.fileExists(atPath: compare))
        try FileManager.default.removeItem(atPath: compare)
        let again = try run(["edit", "--jobs", path.path, "--resume"])
        XCTAssertTrue(
            again.out.contains("2 jobs: 1 ok, 0 skipped, 1 failed"),
            "job 1 runs again for its missing compare strip: " + again.out + again.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: compare))
    }

    /// Single `edit` calls: bad input is a clear error naming the flag, never a crash; a DiT edit runs.
    func testSingleEditErrorsNameTheFlag() throws {
        guard Fixtures.exists("dit/dit.safetensors") else { throw XCTSkip("no fixtures") }
        let image = packageRoot.appendingPathComponent("assets/examples/scene.png").path
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("varlab-edit-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let dit = [
            "edit", "--model", "dit", "--checkpoint", Fixtures.path("dit/dit.safetensors"),
            "--vae", Fixtures.path("dit/autoencoder_kl"), "--image", image, "--steps", "5",
        ]
        for (extra, flag) in [
            (["--box", "0,0,500,20"], "--box"), (["--mask", "/nonexistent.png"], "--mask"),
            (["--box", "1,2,3"], "--box"), (["--strength", "1.5"], "--strength"),
            (["--box", "0.1,0.1,0.5,0.5", "--sampler", "euler"], "--sampler"), ([], "--mask"),
        ] {
            let r = try run(dit + extra + ["-o", dir.appendingPathComponent("x.png").path])
            XCTAssertNotEqual(r.status, 0, "\(extra)")
            XCTAssertTrue(r.err.contains(flag), "\(extra): \(r.err)")
            XCTAssertFalse(r.err.contains("Fatal error"), r.err)
        }
        // an unreadable image, and a mask of another size (resized, with a note)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let junk = dir.appendingPathComponent("junk.png")
        try Data("not an image".utf8).write(to: junk)
        let bad = try run([
            "edit", "--model", "dit", "--checkpoint", Fixtures.path("dit/dit.safetensors"), "--vae",
            Fixtures.path("dit/autoencoder_kl"), "--image", junk.path, "--box", "0.1,0.1,0.5,0.5",
            "-o", dir.appendingPathComponent("y.png").path,
        ])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("--image"), bad.err)

        let out = dir.appendingPathComponent("ok.png").path
        let ok = try run(dit + ["--box", "0.25,0.25,0.75,0.75", "--class", "3", "--compare", "-o", out])
        XCTAssertEqual(ok.status, 0, ok.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("ok-compare.png").path))
        // the compare strip (another size than the image, not binary) as a mask: resized and thresholded, with notes
        let strip = dir.appendingPathComponent("ok-compare.png").path
        let m = try run(dit + ["--mask", strip, "-o", dir.appendingPathComponent("z.png").path])
        XCTAssertEqual(m.status, 0, m.err)
        XCTAssertTrue(m.err.contains("resized to the image size"), m.err)
        XCTAssertTrue(m.err.contains("not binary"), m.err)
    }
}
