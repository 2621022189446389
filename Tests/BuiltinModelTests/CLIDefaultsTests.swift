import Foundation
import ImageIO
import TestSupport
import XCTest

/// The newcomer's path, end to end through the built `varlab` binary: no checkpoint flags, the built-in models.
final class CLIDefaultsTests: XCTestCase {
    /// `varlab args...` with the built-in models of this checkout and no Inception network in the environment.
    func run(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let r = try VarlabCLI.run(
            args,
            environment: [
                "VARLAB_ASSETS": Assets.models.deletingLastPathComponent().path,
                "VARLAB_INCEPTION": nil,
            ])
        return (r.status, r.out, r.err)
    }

    override func setUpWithError() throws { _ = try VarlabCLI.binary() }  // a skip, not a failure, when not built

    func tmp() -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("varlab-cli-\(getpid())-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    /// Help of any (sub)command goes to stdout with exit 0; a wrong flag is a usage error on stderr (exit 64).
    func testHelpIsNotAnError() throws {
        for args in [["--help"], ["sample", "--help"], ["bench", "var", "--help"], ["train", "vqvae", "-h"], ["help", "edit"]] {
            let r = try VarlabCLI.run(args)
            XCTAssertEqual(r.status, 0, "\(args): \(r.err)")
            XCTAssertTrue(r.out.hasPrefix("OVERVIEW:"), "\(args): \(r.out.prefix(80))")
            XCTAssertEqual(r.err, "", "\(args)")
        }
        let bad = try VarlabCLI.run(["sample", "--class", "1", "--bogus", "-o", "x.png"])
        XCTAssertEqual(bad.status, 64)
        XCTAssertTrue(bad.err.hasPrefix("Error: Unknown option '--bogus'"), bad.err)
    }

    func testSampleWithoutFlagsUsesTheBuiltinModels() throws {
        let dir = tmp()
        for family in ["var", "dit"] {
            let out = dir.appendingPathComponent("\(family).png").path
            let r = try run(["sample", "--model", family, "--class", "3", "-o", out])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stderr.contains("built-in toy \(family) model"), "says which model it used: \(r.stderr)")
            XCTAssertTrue(FileManager.default.fileExists(atPath: out))
        }
        // Only one of the two files given: a clear error, not a mismatched pair.
        let r = try run([
            "sample", "--model", "var", "--vae", Assets.path("toy-vqvae.safetensors"), "--class", "3", "-o",
            dir.appendingPathComponent("x.png").path,
        ])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--vae was given without --checkpoint"), r.stderr)
    }

    /// A grid of several classes has one row per class with the class's name on the left (the toy names of the
    /// built-in models), instead of a near-square grid; an edit's compare strip is enlarged (64 -> 256 pixels).
    func testGridsHaveARowPerClassAndStripsAreEnlarged() throws {
        let dir = tmp()
        let out = dir.appendingPathComponent("grid.png").path
        let r = try run(["sample", "--model", "var", "--class", "0,7,2", "--n", "6", "-o", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let grid = try PNG.read(path: out)
        XCTAssertEqual(grid.height, 3 * 66 + 2, "three rows of two")
        let label = BitmapFont.width("7 checkerboard") + 4
        XCTAssertEqual(grid.width, label + 2 * 66 + 2, "the longest name sets the label column")
        let input = dir.appendingPathComponent("in.png").path
        XCTAssertEqual(try run(["data", "toy", "--n", "1", "-o", dir.appendingPathComponent("toy").path]).status, 0)
        let first = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("toy").path).first {
            $0.hasSuffix(".png")
        }!
        try FileManager.default.copyItem(atPath: dir.appendingPathComponent("toy").appendingPathComponent(first).path, toPath: input)
        let e = try run([
            "edit", "--model", "var", "--image", input, "--box", "0,0,0.5,1", "--compare", "-o", dir.appendingPathComponent("e.png").path,
        ])
        XCTAssertEqual(e.status, 0, e.stderr)
        let strip = try PNG.read(path: dir.appendingPathComponent("e-compare.png").path)
        XCTAssertEqual(strip.width, 3 * 256 + 2 * 2, "input | regenerated | output, each 64 px enlarged 4x")
        XCTAssertGreaterThan(strip.height, 256)
    }

    /// Sample plans are lazy and validated: a huge set is refused for in-memory outputs, its shards cost only
    /// their own images, an overflowing --per-class is an error, and every error is one line with exit 1.
    func testHugeSampleCountsAreSafe() throws {
        let dir = tmp()
        let big = try run([
            "sample", "--model", "var", "--class", "1", "--n", "1000000000000", "-o", dir.appendingPathComponent("big.npz").path,
        ])
        XCTAssertEqual(big.status, 1, big.stderr)
        XCTAssertTrue(big.stderr.contains("1000000000000 images") && big.stderr.contains("--shard"), big.stderr)
        let two = dir.appendingPathComponent("two.npz").path
        let shard = try run(["sample", "--model", "var", "--class", "1,2", "--n", "200000000", "--shard", "0/100000000", "-o", two])
        XCTAssertEqual(shard.status, 0, shard.stderr)
        XCTAssertTrue(shard.stderr.contains("samples 0..<2 of 200000000"), shard.stderr)
        let over = try run([
            "sample", "--model", "var", "--classes", "all", "--per-class", "4611686018427387904", "-o",
            dir.appendingPathComponent("o.npz").path,
        ])
        XCTAssertEqual(over.status, 1)
        XCTAssertTrue(over.stderr.contains("--per-class") && over.stderr.contains("overflows"), over.stderr)
        let badClass = try run(["sample", "--model", "var", "--class", "12", "-o", dir.appendingPathComponent("c.png").path])
        XCTAssertEqual(badClass.status, 1)
        XCTAssertTrue(badClass.stderr.contains("--class 12") && !badClass.stderr.contains("Usage:"), badClass.stderr)
        // A negative class is read as the value it is (not as a missing value) and refused by range.
        let negative = try run(["sample", "--model", "var", "--class", "-1", "-o", dir.appendingPathComponent("n.png").path])
        XCTAssertEqual(negative.status, 1)
        XCTAssertTrue(negative.stderr.contains("--class -1 is outside"), negative.stderr)
    }

    /// A built-in `edit` of the example scene (box 0.2..0.6, class 2): status, stderr and the output's bytes.
    func builtinEdit(_ model: String, _ extra: [String], to out: String) throws -> (Int32, String, Data?) {
        let image = Assets.models.deletingLastPathComponent().appendingPathComponent("examples/scene.png").path
        let r = try run(["edit", "--model", model, "--image", image, "--box", "0.2,0.2,0.6,0.6", "--class", "2", "-o", out] + extra)
        return (r.status, r.stderr, FileManager.default.contents(atPath: out))
    }

    /// `edit` takes the DiT sampling flags `sample` has: --eta (DDIM), --cfg-channels, --vae-groups.
    /// A write that fails (here: a file-size limit, as a full disk) is one line naming the output and the system's
    /// reason, exit 1, with no output file and no temporary file left behind.
    func testFailedWritesNameTheFileAndLeaveNothing() throws {
        let dir = tmp()
        let binary = try VarlabCLI.binary().path
        for (name, reason) in [("grid.png", "File too large"), ("samples.npz", "cannot write"), ("pngs/", "File too large")] {
            let out = dir.path + "/" + name
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            // ulimit -f: writes past 4 KB fail with EFBIG (SIGXFSZ ignored), as they would on a full disk.
            p.arguments = ["-c", "ulimit -f 4; trap '' XFSZ; exec \"$0\" sample --model var --class 1,2 --n 8 -o \"$1\"", binary, out]
            var env = ProcessInfo.processInfo.environment
            env["VARLAB_ASSETS"] = Assets.models.deletingLastPathComponent().path
            p.environment = env
            let e = Pipe()
            p.standardError = e
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            let err = String(decoding: e.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 1, "\(name): \(err)")
            let last = err.split(separator: "\n").last.map(String.init) ?? ""
            XCTAssertTrue(last.contains(dir.path) && last.contains("cannot write") && last.contains(reason), "\(name): \(last)")
            XCTAssertFalse(last.contains("NSCocoaErrorDomain") || last.contains(".tmp-"), last)
            if !name.hasSuffix("/") { XCTAssertFalse(FileManager.default.fileExists(atPath: out), name) }
            let left = try FileManager.default.subpathsOfDirectory(atPath: dir.path).filter { $0.contains(".tmp-") }
            XCTAssertEqual(left, [], "temporary files left behind")
        }
    }

    /// An installed binary (PREFIX/bin/varlab, models in PREFIX/share/varlab/assets/models, as `make install` lays
    /// them out) finds its models by its own location, says where in `--version`, and samples from any folder.
    func testInstalledBinaryFindsItsModels() throws {
        let prefix = tmp()
        let bin = prefix.appendingPathComponent("bin"), models = prefix.appendingPathComponent("share/varlab/assets/models")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: try VarlabCLI.binary(), to: bin.appendingPathComponent("varlab"))
        for f in try FileManager.default.contentsOfDirectory(atPath: Assets.models.path) where f.hasSuffix(".safetensors") {
            try FileManager.default.copyItem(at: Assets.models.appendingPathComponent(f), to: models.appendingPathComponent(f))
        }
        func run(_ args: [String]) throws -> (Int32, String) {
            let p = Process()
            p.executableURL = bin.appendingPathComponent("varlab")
            p.arguments = args
            p.currentDirectoryURL = prefix
            var env = ProcessInfo.processInfo.environment
            env["VARLAB_ASSETS"] = nil
            p.environment = env
            let o = Pipe()
            p.standardOutput = o; p.standardError = o
            try p.run()
            let text = String(decoding: o.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            return (p.terminationStatus, text)
        }
        let version = try run(["--version"])
        XCTAssertEqual(version.0, 0, version.1)
        XCTAssertTrue(version.1.contains("built-in models: " + models.resolvingSymlinksInPath().path), version.1)
        let sample = try run(["sample", "--model", "dit", "--class", "4", "--steps", "5", "-o", "x.png"])
        XCTAssertEqual(sample.0, 0, sample.1)
        XCTAssertTrue(sample.1.contains(models.resolvingSymlinksInPath().path), sample.1)
        XCTAssertTrue(FileManager.default.fileExists(atPath: prefix.appendingPathComponent("x.png").path))
    }

    func testEditTakesTheDiTSamplingFlags() throws {
        let dir = tmp()
        func edit(_ extra: [String], _ name: String) throws -> (Int32, String, Data?) {
            try builtinEdit("dit", ["--sampler", "ddim", "--steps", "10"] + extra, to: dir.appendingPathComponent(name).path)
        }
        let plain = try edit([], "a.png"), zero = try edit(["--eta", "0"], "b.png"), noisy = try edit(["--eta", "0.7"], "c.png")
        XCTAssertEqual(plain.0, 0, plain.1)
        XCTAssertEqual(plain.2, zero.2, "--eta 0 is the default")
        XCTAssertNotEqual(plain.2, noisy.2, "--eta 0.7 adds noise")
        for (flags, expect) in [
            (["--eta", "5"], "--eta"), (["--cfg-channels", "foo"], "--cfg-channels"), (["--vae-groups", "0"], "--vae-groups"),
        ] {
            let r = try edit(flags, "bad.png")
            XCTAssertEqual(r.0, 1, r.1)
            XCTAssertTrue(r.1.contains(expect), r.1)
        }
    }

    /// ... and the VAR ones: --more-smooth (opt-in in edit) and --key for nested state dicts.
    func testEditTakesTheVARSamplingFlags() throws {
        let dir = tmp()
        func edit(_ extra: [String], _ name: String) throws -> (Int32, String, Data?) {
            try builtinEdit("var", extra, to: dir.appendingPathComponent(name).path)
        }
        let plain = try edit([], "a.png"), smooth = try edit(["--more-smooth"], "b.png")
        XCTAssertEqual(plain.0, 0, plain.1)
        XCTAssertEqual(smooth.0, 0, smooth.1)
        XCTAssertNotEqual(plain.2, smooth.2, "--more-smooth changes the sampling")
        let key = try edit(["--key", "model"], "c.png")
        XCTAssertEqual(key.0, 1)
        XCTAssertTrue(key.1.contains("key path 'model'"), key.1)
    }

    /// `train var|dit --resume` with another config is refused before the data set is encoded; the same config
    /// still resumes.
    func testTrainResumeWithAnotherConfigFailsBeforeEncoding() throws {
        let dir = tmp()
        for (family, widthFlag) in [("var", "--width"), ("dit", "--hidden")] {
            let ck = dir.appendingPathComponent("\(family).safetensors").path
            func args(depth: Int, steps: Int = 1) -> [String] {
                [
                    "train", family, "--vae", Assets.path("toy-vqvae.safetensors"), "--train-size", "8", "--steps", "\(steps)",
                    "--batch-size", "4", "--depth", "\(depth)", widthFlag, "32", "--heads", "2", "-o", ck,
                ]
            }
            let first = try run(args(depth: 2))
            XCTAssertEqual(first.status, 0, first.stderr)
            // DiT caches its latents beside the checkpoint: remove them so the old order would have encoded first.
            try? FileManager.default.removeItem(atPath: ck + ".latents.safetensors")
            let other = try run(args(depth: 3) + ["--resume"])
            XCTAssertEqual(other.status, 1, "\(family): \(other.stderr)")
            XCTAssertTrue(other.stderr.contains("cannot resume"), other.stderr)
            XCTAssertFalse(other.stderr.contains("encoding"), "\(family) refused before encoding: \(other.stderr)")
            let same = try run(args(depth: 2, steps: 2) + ["--resume"])
            XCTAssertEqual(same.status, 0, same.stderr)
            XCTAssertTrue(same.stderr.contains("resuming from"), same.stderr)
        }
    }

    /// `eval` without --inception scores toy samples with the toy classifier and calls the result toy-FID.
    func testEvalWithoutInceptionReportsToyMetrics() throws {
        let dir = tmp()
        let a = dir.appendingPathComponent("a").path, b = dir.appendingPathComponent("b").path
        XCTAssertEqual(try run(["data", "toy", "--n", "60", "--split", "heldout", "-o", a]).status, 0)
        XCTAssertEqual(try run(["data", "toy", "--n", "60", "--split", "heldout", "--start", "60", "-o", b]).status, 0)
        let r = try run(["eval", a, b, "--metrics", "fid,acc"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("toy-FID"), r.stdout)
        XCTAssertFalse(r.stdout.contains("\nFID"), "never presented as Inception FID: \(r.stdout)")
        XCTAssertTrue(r.stderr.contains("toy classifier"), r.stderr)
        let acc = r.stdout.split(separator: "\n").first { $0.hasPrefix("toy classifier accuracy") }
        XCTAssertEqual(
            acc.flatMap { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first }.flatMap { Double($0) }, 1.0,
            "real held-out images are all recognised: \(r.stdout)")
    }

    /// The shipped models keep their measured quality (README "Built-in models": VAR 0.941, DiT 0.922 on 1,000
    /// samples of seed 0; this 100-sample run measured VAR 0.97, DiT 0.91, tokenizer 0.97 with a mean-colour error of
    /// 1.8 / 2.0 / 2.1 levels; the floors leave a few samples of room for another BLAS kernel's rounding, and the
    /// colour floor is the issue's 3 levels). Sampling is deterministic, so a drop below them means the models, the
    /// samplers or their default settings changed. The 1,000-sample numbers come from `varlab bench toy-quality
    /// --n 1000` (about 3 minutes, too long for the suite).
    func testBuiltinGeneratorsKeepTheirMeasuredQuality() throws {
        let json = tmp().appendingPathComponent("q.json").path
        let r = try run(["bench", "toy-quality", "--n", "100", "--scale-prefixes", "--json", json])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any] ?? [:]
        func accuracy(_ key: String) -> Double { ((obj[key] as? [String: Any])?["accuracy"] as? Double) ?? -1 }
        XCTAssertEqual(accuracy("real held-out (disjoint set)"), 1.0)
        XCTAssertGreaterThanOrEqual(accuracy("VQ-VAE reconstructions of that set"), 0.95)
        XCTAssertGreaterThanOrEqual(accuracy("var (built-in, default settings)"), 0.94)
        XCTAssertGreaterThanOrEqual(accuracy("dit (built-in, default settings)"), 0.88)
        // The scale prefixes: one row per scale; decoding all of them is the reconstruction, and the first scales
        // alone draw far less of the class.
        let prefixes = obj["scale_prefixes"] as? [[String: Any]] ?? []
        XCTAssertEqual(prefixes.count, 7, "one row per scale of 1,2,3,4,5,6,8")
        XCTAssertEqual(prefixes.last?["accuracy"] as? Double, accuracy("VQ-VAE reconstructions of that set"))
        XCTAssertLessThan(prefixes.first?["accuracy"] as? Double ?? 1, 0.5)
        XCTAssertEqual((prefixes.last?["per_class_accuracy"] as? [Double])?.count, 10)
        let colour = obj["vqvae_mean_colour_error_rgb"] as? [Double] ?? []
        XCTAssertEqual(colour.count, 3)
        for (channel, error) in zip(["R", "G", "B"], colour) {
            XCTAssertLessThan(error, 3, "the tokenizer keeps colour: mean-colour error of \(channel) in levels of 255")
        }
    }

    /// Unset VAR flags take the checkpoint's recorded settings: the built-in VAR records more_smooth off, so the default
    /// run equals an explicit --no-more-smooth and differs from --more-smooth; `train export --meta` is how it got there,
    /// and a malformed --meta is refused.
    func testVARSamplingDefaultsComeFromTheCheckpointMetadata() throws {
        let dir = tmp()
        func sample(_ extra: [String], _ name: String) throws -> Data {
            let out = dir.appendingPathComponent(name).path
            let r = try run(["sample", "--model", "var", "--class", "7,8", "--n", "2"] + extra + ["-o", out])
            XCTAssertEqual(r.status, 0, r.stderr)
            return try Data(contentsOf: URL(fileURLWithPath: out))
        }
        let byDefault = try sample([], "default.png")
        XCTAssertEqual(byDefault, try sample(["--no-more-smooth"], "plain.png"))
        XCTAssertNotEqual(byDefault, try sample(["--more-smooth"], "smooth.png"))
        // Re-export the built-in VAR with more_smooth on: its defaults then equal --more-smooth.
        let smoothCk = dir.appendingPathComponent("var-smooth.safetensors").path
        let e = try run(["train", "export", Assets.path("toy-var.safetensors"), "-o", smoothCk, "--meta", "varlab.sample_more_smooth=1"])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertEqual(
            try sample(["--checkpoint", smoothCk, "--vae", Assets.path("toy-vqvae.safetensors")], "smooth-ck.png"),
            try sample(["--more-smooth"], "smooth2.png"))
        let bad = try run([
            "train", "export", Assets.path("toy-var.safetensors"), "-o", dir.appendingPathComponent("x.safetensors").path,
            "--meta", "no-equals-sign",
        ])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--meta expects KEY=VALUE"), bad.stderr)
    }

    /// `edit` takes unset VAR sampling flags from the checkpoint too: a re-export recording top-k 3 edits exactly as
    /// the shipped file with an explicit --top-k 3, and differently from --top-k 900.
    func testEditSamplingDefaultsComeFromTheCheckpointMetadata() throws {
        let dir = tmp()
        let image = dir.appendingPathComponent("in").path
        XCTAssertEqual(try run(["data", "toy", "--n", "1", "--split", "heldout", "-o", image]).status, 0)
        let input = try XCTUnwrap(FileManager.default.contentsOfDirectory(atPath: image).first { $0.hasSuffix(".png") })
        let k3 = dir.appendingPathComponent("var-k3.safetensors").path
        let e = try run(["train", "export", Assets.path("toy-var.safetensors"), "-o", k3, "--meta", "varlab.sample_top_k=3"])
        XCTAssertEqual(e.status, 0, e.stderr)
        func edit(_ extra: [String], _ name: String) throws -> Data {
            let out = dir.appendingPathComponent(name).path
            let r = try run(
                [
                    "edit", "--model", "var", "--image", image + "/" + input, "--box", "0.25,0.25,0.75,0.75",
                    "--class", "1", "--seed", "3",
                ] + extra + ["-o", out])
            XCTAssertEqual(r.status, 0, r.stderr)
            return try Data(contentsOf: URL(fileURLWithPath: out))
        }
        let recorded = try edit(["--checkpoint", k3, "--vae", Assets.path("toy-vqvae.safetensors")], "recorded.png")
        XCTAssertEqual(recorded, try edit(["--top-k", "3"], "explicit.png"))
        XCTAssertNotEqual(recorded, try edit(["--top-k", "900"], "wide.png"))
    }

    /// DiT in-painting takes RePaint resampling from the checkpoint (`varlab.edit_resample`, recorded in the built-in
    /// DiT): unset equals --resample, --no-resample equals a re-export recording 0, and SDEdit ignores the
    /// recommendation (an explicit --resample with --strength is still refused).
    func testDiTEditResamplingComesFromTheCheckpoint() throws {
        let dir = tmp()
        let off = dir.appendingPathComponent("dit-off.safetensors").path
        let e = try run(["train", "export", Assets.path("toy-dit.safetensors"), "-o", off, "--meta", "varlab.edit_resample=0"])
        XCTAssertEqual(e.status, 0, e.stderr)
        func edit(_ extra: [String], _ name: String) throws -> (Int32, String, Data?) {
            // Jumps of 3 steps (the default 10 would not fit in 10 steps: no jump, the plain descent).
            try builtinEdit(
                "dit", ["--steps", "10", "--jump-length", "3", "--jump-n-sample", "2"] + extra, to: dir.appendingPathComponent(name).path)
        }
        let recorded = try edit([], "a.png"), explicit = try edit(["--resample"], "b.png")
        XCTAssertEqual(recorded.0, 0, recorded.1)
        XCTAssertTrue(recorded.1.contains("with resampling (jump 3 x 2)"), recorded.1)
        XCTAssertEqual(recorded.2, explicit.2)
        let plain = try edit(["--no-resample"], "c.png")
        let offFile = try edit(["--checkpoint", off, "--vae", Assets.path("toy-vqvae.safetensors")], "d.png")
        XCTAssertEqual(plain.0, 0, plain.1)
        XCTAssertFalse(plain.1.contains("resampling"), plain.1)
        XCTAssertEqual(plain.2, offFile.2)
        XCTAssertNotEqual(plain.2, recorded.2)
        // The default jump of 10 does not fit in 10 steps: said, not claimed.
        let unfit = try builtinEdit("dit", ["--steps", "10"], to: dir.appendingPathComponent("g.png").path)
        XCTAssertEqual(unfit.0, 0, unfit.1)
        XCTAssertTrue(unfit.1.contains("no resampling: a jump of 10 does not fit in 10 steps"), unfit.1)
        XCTAssertEqual(unfit.2, plain.2)
        let sdedit = try edit(["--strength", "0.5"], "e.png")
        XCTAssertEqual(sdedit.0, 0, sdedit.1)
        XCTAssertTrue(sdedit.1.contains("SDEdit"), sdedit.1)
        let refused = try edit(["--strength", "0.5", "--resample"], "f.png")
        XCTAssertEqual(refused.0, 1)
        XCTAssertTrue(refused.1.contains("--resample"), refused.1)
    }

    /// A bad --min-snr-gamma is refused before anything is encoded or written, naming the flag.
    func testTrainDiTRefusesANegativeMinSNRGamma() throws {
        let out = tmp().appendingPathComponent("dit.safetensors").path
        let r = try run(["train", "dit", "--vae", Assets.path("toy-vqvae.safetensors"), "--min-snr-gamma=-1", "-o", out])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--min-snr-gamma must be"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + ".latents.safetensors"), "nothing encoded")
    }
}
