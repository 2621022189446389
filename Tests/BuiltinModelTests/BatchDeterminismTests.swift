import Foundation
import Tensor
import TestSupport
import XCTest

/// Same seed, same bytes: a sample depends only on (seed, index, settings), never on the batch size or the shard cut,
/// under every OpenBLAS kernel this CPU can run (OPENBLAS_CORETYPE, which varlab honours). Through the binary, on
/// `.npz` outputs (fixed zip timestamps, so `cmp`-equal files): VAR with and without more-smooth, the raster-order
/// and plain-LN variants, DiT with DDPM and DDIM, the DiT fixture model on the SD-VAE when the fixtures are present,
/// and an edit run alone versus inside a jobs file.
final class BatchDeterminismTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        _ = try VarlabCLI.binary()
        dir = try temporaryFolder("varlab-det")
    }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func run(_ args: [String], kernel: String) throws {
        let r = try VarlabCLI.run(
            args,
            environment: [
                "VARLAB_ASSETS": Assets.models.deletingLastPathComponent().path,
                "OPENBLAS_CORETYPE": kernel,
            ])
        XCTAssertEqual(r.status, 0, "\(kernel): varlab \(args.joined(separator: " ")): \(r.err)")
    }

    func bytes(_ name: String) throws -> Data { try Data(contentsOf: dir.appendingPathComponent(name)) }

    /// Batch sizes 3, 4, 7, 8, and shards 0/3 + 1/3 + 2/3 merged (cuts that do not fall on batch boundaries), give the
    /// file of batch size 1.
    func assertBatchAndShardInvariant(_ label: String, _ base: [String], kernel: String, n: Int = 7) throws {
        let tag = label.replacingOccurrences(of: " ", with: "_")
        let args = base + ["--class", "0,1,2,3,4,5,6,7,8,9", "--n", "\(n)", "--seed", "11"]
        try run(args + ["--batch-size", "1", "-o", path("\(tag)_b1.npz")], kernel: kernel)
        let want = try bytes("\(tag)_b1.npz")
        for bs in [3, 4, 7, 8] {
            try run(args + ["--batch-size", "\(bs)", "-o", path("\(tag)_b\(bs).npz")], kernel: kernel)
            XCTAssertEqual(try bytes("\(tag)_b\(bs).npz"), want, "\(kernel) \(label): --batch-size \(bs) differs from 1")
        }
        for k in 0..<3 {
            try run(args + ["--batch-size", "2", "--shard", "\(k)/3", "-o", path("\(tag)_s\(k).npz")], kernel: kernel)
        }
        try run(["merge-shards"] + (0..<3).map { path("\(tag)_s\($0).npz") } + ["-o", path("\(tag)_merged.npz")], kernel: kernel)
        XCTAssertEqual(try bytes("\(tag)_merged.npz"), want, "\(kernel) \(label): merged shards differ from the whole set")
    }

    var kernels: [String] {
        let k = CPUInfo.current.runnableOpenBLASCores
        XCTAssertFalse(k.isEmpty, "no OpenBLAS kernel known for this CPU")
        return k
    }

    func testVARSamplesDoNotDependOnBatchOrShard() throws {
        for kernel in kernels {
            try assertBatchAndShardInvariant("var smooth", ["sample", "--model", "var", "--more-smooth"], kernel: kernel)
            try assertBatchAndShardInvariant(
                "var plain",
                [
                    "sample", "--model", "var", "--no-more-smooth", "--top-k", "0",
                    "--top-p", "0",
                ], kernel: kernel)
        }
    }

    func testDiTSamplesDoNotDependOnBatchOrShard() throws {
        for kernel in kernels {
            try assertBatchAndShardInvariant(
                "dit ddpm", ["sample", "--model", "dit", "--sampler", "ddpm", "--steps", "20"],
                kernel: kernel)
            try assertBatchAndShardInvariant(
                "dit ddim",
                [
                    "sample", "--model", "dit", "--sampler", "ddim", "--steps", "10",
                    "--eta", "0.5",
                ], kernel: kernel)
        }
    }

    /// The official-checkpoint path: the DiT fixture (patch 2, learn_sigma) on the diffusers KL-VAE.
    func testDiTFixtureSamplesDoNotDependOnBatch() throws {
        guard Fixtures.exists("dit/dit.safetensors") else { throw XCTSkip("fixtures not found at \(Fixtures.root.path)") }
        for kernel in kernels {
            try assertBatchAndShardInvariant(
                "dit fixture",
                [
                    "sample", "--model", "dit", "--checkpoint", Fixtures.path("dit/dit.safetensors"),
                    "--vae", Fixtures.path("dit/autoencoder_kl"), "--steps", "4",
                ],
                kernel: kernel, n: 5)
        }
    }

    /// The ablation variants sample through the same token sampler (one token per step for ar); a one-step model is
    /// enough to compare bytes.
    func testVARVariantsDoNotDependOnBatchOrShard() throws {
        for variant in ["ar", "plain-ln"] {
            let ck = path("\(variant).safetensors")
            try run(
                [
                    "train", "var", "--variant", variant, "--vae", Assets.path("toy-vqvae.safetensors"), "--train-size", "8",
                    "--steps", "1", "--batch-size", "4", "--depth", "2", "--width", "32", "--heads", "2", "-o", ck,
                ],
                kernel: CPUInfo.current.bestOpenBLASCore ?? "Prescott")
            for kernel in kernels {
                try assertBatchAndShardInvariant(
                    "variant \(variant)",
                    [
                        "sample", "--model", "var", "--checkpoint", ck, "--vae",
                        Assets.path("toy-vqvae.safetensors"),
                    ], kernel: kernel, n: 5)
            }
        }
    }

    /// An edit's output is the same alone and as one job among others (VAR and DiT back ends).
    func testEditsDoNotDependOnOtherJobs() throws {
        let image = path("in.png")
        try run(["data", "toy", "--n", "1", "--split", "heldout", "-o", dir.path + "/toy/"], kernel: kernels[0])
        let first = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: path("toy")).sorted().first)
        try FileManager.default.copyItem(atPath: path("toy/" + first), toPath: image)
        for kernel in kernels {
            try run(
                [
                    "edit", "--model", "var", "--image", image, "--box", "0.25,0.25,0.75,0.75", "--class", "2", "--seed", "4",
                    "-o", path("var_alone.png"),
                ], kernel: kernel)
            try run(
                [
                    "edit", "--model", "dit", "--image", image, "--outpaint", "0.2,0.2,0.8,0.8", "--class", "5", "--seed", "4",
                    "--steps", "10", "-o", path("dit_alone.png"),
                ], kernel: kernel)
            let jobs: [[String: Any]] = [
                ["model": "dit", "image": image, "box": [0, 0, 0.5, 1], "class": 1, "seed": 9, "steps": 10, "output": path("other1.png")],
                ["model": "var", "image": image, "box": [0.25, 0.25, 0.75, 0.75], "class": 2, "seed": 4, "output": path("var_job.png")],
                ["model": "var", "image": image, "box": [0, 0, 1, 0.5], "class": 7, "seed": 1, "output": path("other2.png")],
                [
                    "model": "dit", "image": image, "outpaint": [0.2, 0.2, 0.8, 0.8], "class": 5, "seed": 4, "steps": 10,
                    "output": path("dit_job.png"),
                ],
            ]
            let file = path("jobs.json")
            try JSONSerialization.data(withJSONObject: ["jobs": jobs]).write(to: URL(fileURLWithPath: file))
            try run(["edit", "--jobs", file], kernel: kernel)
            XCTAssertEqual(try bytes("var_job.png"), try bytes("var_alone.png"), "\(kernel): VAR edit inside a jobs file")
            XCTAssertEqual(try bytes("dit_job.png"), try bytes("dit_alone.png"), "\(kernel): DiT edit inside a jobs file")
        }
    }
}
