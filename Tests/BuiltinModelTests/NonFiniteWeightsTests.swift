import Foundation
import ModelIO
import Tensor
import TestSupport
import XCTest

/// NaN or infinite weights never give an image: `sample` and `edit` stop with exit 1 and a line that names the stage
/// (VAR logits, the VQ-VAE decoder, the DiT output), instead of token 0 everywhere or black pixels.
final class NonFiniteWeightsTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        _ = try VarlabCLI.binary()
        dir = try temporaryFolder("varlab-nan")
    }

    /// A copy of a built-in model with every element of `key` set to `value` (metadata kept).
    func poisoned(_ model: String, key: String, value: Float) throws -> String {
        let src = try SafetensorsFile(path: Assets.path(model))
        var w = SafetensorsWriter()
        w.metadata = src.metadata
        for k in src.keys {
            let info = try XCTUnwrap(src.info(k))
            if info.dtype.isFloatingPoint {
                var t = try src.floatTensor(k)
                if k == key { t = t.map { _ in value } }
                w.add(k, t)
            } else {
                let (shape, values) = try src.intTensor(k)
                w.add(k, shape: shape, int64: values)
            }
        }
        XCTAssertTrue(src.keys.contains(key), "\(model) has no \(key)")
        let out = dir.appendingPathComponent("\(key)-\(value)-\(model)").path
        try w.write(to: out)
        return out
    }

    func assertFails(_ args: [String], naming stage: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let out = dir.appendingPathComponent("out.png").path
        let r = try VarlabCLI.run(args + ["-o", out], environment: ["VARLAB_ASSETS": Assets.models.deletingLastPathComponent().path])
        XCTAssertEqual(r.status, 1, "\(args): \(r.err)", file: file, line: line)
        let last = r.err.split(separator: "\n").last.map(String.init) ?? ""
        XCTAssertTrue(last.contains(stage) && last.contains("not finite"), "names \(stage): \(r.err)", file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no image written", file: file, line: line)
    }

    func testVARWithNonFiniteWeightsFailsNamingTheStage() throws {
        let vae = Assets.path("toy-vqvae.safetensors"), ckpt = Assets.path("toy-var.safetensors")
        for value in [Float.nan, .infinity] {
            let badHead = try poisoned("toy-var.safetensors", key: "head.weight", value: value)
            try assertFails(
                ["sample", "--model", "var", "--checkpoint", badHead, "--vae", vae, "--class", "1"],
                naming: "VAR transformer logits at scale 1/")
            let badDecoder = try poisoned("toy-vqvae.safetensors", key: "decoder.conv_out.weight", value: value)
            try assertFails(
                ["sample", "--model", "var", "--checkpoint", ckpt, "--vae", badDecoder, "--class", "1"],
                naming: "VQ-VAE decoder output")
        }
    }

    func testDiTWithNonFiniteWeightsFailsNamingTheStage() throws {
        let vae = Assets.path("toy-vqvae.safetensors"), ckpt = Assets.path("toy-dit.safetensors")
        let bad = try poisoned("toy-dit.safetensors", key: "final_layer.linear.weight", value: .nan)
        try assertFails(
            ["sample", "--model", "dit", "--checkpoint", bad, "--vae", vae, "--class", "1", "--steps", "5"],
            naming: "DiT output at timestep")
        let badDecoder = try poisoned("toy-vqvae.safetensors", key: "decoder.conv_out.weight", value: .nan)
        try assertFails(
            ["sample", "--model", "dit", "--checkpoint", ckpt, "--vae", badDecoder, "--class", "1", "--steps", "5"],
            naming: "VQ-VAE decoder output")
        // Editing runs the same loop.
        let image = dir.appendingPathComponent("in.png").path
        let png = try VarlabCLI.run(
            ["sample", "--model", "dit", "--class", "2", "--steps", "5", "-o", image],
            environment: ["VARLAB_ASSETS": Assets.models.deletingLastPathComponent().path])
        XCTAssertEqual(png.status, 0, png.err)
        try assertFails(
            [
                "edit", "--model", "dit", "--checkpoint", bad, "--vae", vae, "--image", image, "--box", "0,0,0.5,0.5",
                "--steps", "5",
            ], naming: "DiT output at timestep")
    }
}
