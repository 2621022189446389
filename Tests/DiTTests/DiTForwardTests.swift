import DiT
import Foundation
import ModelIO
import Tensor
import TestSupport
import XCTest

/// Parity of the DiT forward pass and forward_with_cfg against dit/dit_forward_io.safetensors
/// (official models.DiT on a tiny random model). Tolerance: the README's single-forward bound,
/// max|a - b| <= 1e-4 * max(1, max|ref|); float32 re-ordering alone gave 4e-7 relative there.
final class DiTForwardTests: XCTestCase {
    static let tolerance: Float = 1e-4

    func loadModel() throws -> DiTModel {
        try DiTModel.load(path: Fixtures.path("dit/dit.safetensors"))
    }

    func ints(_ f: SafetensorsFile, _ key: String) throws -> [Int] { try f.intTensor(key).values.map { Int($0) } }

    func testConfigInferredFromShapesMatchesConstructorArguments() throws {
        let kw = try XCTUnwrap(Fixtures.json("dit/dit_config.json")["kwargs"] as? [String: Any])
        let c = try loadModel().config
        XCTAssertEqual(c.inputSize, (kw["input_size"] as? NSNumber)?.intValue)
        XCTAssertEqual(c.patchSize, (kw["patch_size"] as? NSNumber)?.intValue)
        XCTAssertEqual(c.inChannels, (kw["in_channels"] as? NSNumber)?.intValue)
        XCTAssertEqual(c.hiddenSize, (kw["hidden_size"] as? NSNumber)?.intValue)
        XCTAssertEqual(c.depth, (kw["depth"] as? NSNumber)?.intValue)
        XCTAssertEqual(c.numHeads, (kw["num_heads"] as? NSNumber)?.intValue)
        XCTAssertEqual(c.numClasses, (kw["num_classes"] as? NSNumber)?.intValue)
        XCTAssertEqual(c.learnSigma, (kw["learn_sigma"] as? NSNumber)?.boolValue)
        let ratio = (kw["mlp_ratio"] as? NSNumber)?.doubleValue ?? 4
        XCTAssertEqual(c.mlpHiddenSize, Int(Double(c.hiddenSize) * ratio))
    }

    func testStoredPositionTableIsTheOfficialSinCos() throws {
        let m = try loadModel()
        let ours = DiTEmbeddings.sinCos2D(dim: m.config.hiddenSize, gridSize: m.config.gridSize)
        // The fixture weights went through float16 (README conventions); stored pos_embed is either our
        // float32 table or its float16 rounding.
        let asHalf = ours.map { Float(Float16($0)) }
        let stored = m.posEmbed.value.reshaped(ours.shape)
        XCTAssertTrue(
            ours.maxAbsDiff(stored) <= 2e-7 || asHalf == stored,
            "pos_embed differs from the 2-D sin-cos table by \(ours.maxAbsDiff(stored))")
    }

    /// The timestep frequencies are PyTorch's float32 exp values: each within 1 ulp of the correctly rounded
    /// exp(-ln(10000) i / 128) of the same float32 argument, and only i = 12 and i = 106 one ulp above it (the
    /// values that moved the timestep features by up to 3e-5 at t = 999 when they were rounded correctly).
    func testTimestepFrequenciesAreTorchsFloat32Exp() {
        let f = DiTEmbeddings.timestepFrequencies(half: 128)
        let negLog = Float(-Foundation.log(10000.0))
        var above: [Int] = []
        for i in 0..<128 {
            let exact = Float(Foundation.exp(Double(negLog * Float(i) / 128)))
            let ulps = Int64(f[i].bitPattern) - Int64(exact.bitPattern)
            XCTAssertLessThanOrEqual(abs(ulps), 1, "f[\(i)]")
            if ulps != 0 { above.append(i) }
        }
        XCTAssertEqual(above, [12, 106])
        // Other sizes: the correctly rounded values.
        XCTAssertEqual(DiTEmbeddings.timestepFrequencies(half: 4), (0..<4).map { Float(Foundation.exp(Double(negLog * Float($0) / 4))) })
    }

    func testForward() throws {
        let m = try loadModel()
        let f = try Fixtures.safetensors("dit/dit_forward_io.safetensors")
        let x = try f.floatTensor("x")
        let t = try ints(f, "t").map(Float.init)
        let out = try m.forward(x, t: t, y: try ints(f, "y"))
        let ref = try f.floatTensor("out")
        XCTAssertEqual(out.shape, ref.shape)
        let err = relativeError(out, ref)
        print("dit forward relative error \(err)")
        XCTAssertLessThanOrEqual(err, Self.tolerance)
    }

    /// `--bf16` takes the bf16 path in every Linear (the output moves off float32's), prints its error against the
    /// official run (no bound asserted: bf16 rounding is not float32 noise), and a sample alone equals its row in the batch.
    func testBFloat16ForwardIsBatchInvariant() throws {
        try XCTSkipUnless(MatmulPrecision.bfloat16Available, "this CPU has no AVX512-BF16")
        let m = try loadModel()
        let f = try Fixtures.safetensors("dit/dit_forward_io.safetensors")
        let x = try f.floatTensor("x")
        let t = try ints(f, "t").map(Float.init), y = try ints(f, "y")
        let exact = try m.forward(x, t: t, y: y)
        m.setMatmulPrecision(.bfloat16)
        let out = try m.forward(x, t: t, y: y)
        XCTAssertNotEqual(out.data, exact.data, "--bf16 changes the arithmetic")
        print("dit forward --bf16 relative error \(relativeError(out, try f.floatTensor("out")))")
        let n = x.shape[0], per = x.count / n, perOut = out.count / n
        let last = try m.forward(
            Tensor(shape: [1] + Array(x.shape.dropFirst()), data: Array(x.data[((n - 1) * per)...])), t: [t[n - 1]], y: [y[n - 1]])
        XCTAssertEqual(last.data, Array(out.data[((n - 1) * perOut)...]), "the last sample alone vs in the batch")
        m.setMatmulPrecision(.float32)
        XCTAssertEqual(try m.forward(x, t: t, y: y).data, exact.data, "back to float32 exactly")
    }

    func testForwardWithCFGOfficialFirstThreeChannels() throws {
        let m = try loadModel()
        let f = try Fixtures.safetensors("dit/dit_forward_io.safetensors")
        let x = try f.floatTensor("cfg_x")
        let t = try ints(f, "cfg_t").map(Float.init)
        let y = try ints(f, "cfg_y")
        let s = try f.floatTensor("cfg_scale").data[0]
        let out = try m.forwardWithCFG(x, t: t, y: y, scale: s)
        let ref = try f.floatTensor("cfg_out")
        let err = relativeError(out, ref)
        print("dit forward_with_cfg relative error \(err)")
        XCTAssertLessThanOrEqual(err, Self.tolerance)

        // The second half of x is ignored (the fixture makes it deliberately different).
        var x2 = x
        let n = x.shape[0]
        for i in (x.count / 2)..<x.count { x2.data[i] = 0 }
        XCTAssertEqual(try m.forwardWithCFG(x2, t: t, y: y, scale: s), out)
        XCTAssertEqual(n % 2, 0)
    }

    func testAllChannelsModeGuidesTheFourthChannelToo() throws {
        let m = try loadModel()
        let f = try Fixtures.safetensors("dit/dit_forward_io.safetensors")
        let x = try f.floatTensor("cfg_x")
        let t = try ints(f, "cfg_t").map(Float.init)
        let y = try ints(f, "cfg_y")
        let s = try f.floatTensor("cfg_scale").data[0]
        let official = try m.forwardWithCFG(x, t: t, y: y, scale: s)
        let all = try m.forwardWithCFG(x, t: t, y: y, scale: s, channels: .all)
        let n = x.shape[0], c = m.config.inChannels, co = m.config.outChannels, plane = x.shape[2] * x.shape[3]
        // Guided channels agree; channel 3 (the last epsilon channel) now differs; the variance channels agree.
        for r in 0..<n {
            for ch in 0..<co {
                let a = Array(official.data[((r * co + ch) * plane)..<((r * co + ch + 1) * plane)])
                let b = Array(all.data[((r * co + ch) * plane)..<((r * co + ch + 1) * plane)])
                if ch < 3 || ch >= c {
                    XCTAssertEqual(a, b, "row \(r) channel \(ch)")
                } else {
                    XCTAssertNotEqual(a, b, "row \(r) channel \(ch) should be guided")
                }
            }
        }
        // Rows of the second half repeat the guided first half in every guided channel.
        for r in 0..<(n / 2) {
            for ch in 0..<c {
                let a = Array(all.data[((r * co + ch) * plane)..<((r * co + ch + 1) * plane)])
                let b = Array(all.data[(((r + n / 2) * co + ch) * plane)..<(((r + n / 2) * co + ch + 1) * plane)])
                XCTAssertEqual(a, b)
            }
        }
    }

    func testBadInputsGiveErrorsNotCrashes() throws {
        let m = try loadModel()
        let c = m.config
        XCTAssertThrowsError(try m.forward(Tensor(zeros: [1, c.inChannels + 1, c.inputSize, c.inputSize]), t: [1], y: [0]))
        XCTAssertThrowsError(try m.forward(Tensor(zeros: [1, c.inChannels, c.inputSize, c.inputSize]), t: [1], y: [c.numClasses + 1]))
        XCTAssertThrowsError(
            try m.forwardWithCFG(
                Tensor(zeros: [3, c.inChannels, c.inputSize, c.inputSize]), t: [1, 1, 1],
                y: [0, 0, 0], scale: 1.5))
        // A non-DiT file (the VAE weights) is refused with the file named.
        let vae = Fixtures.path("dit/autoencoder_kl/diffusion_pytorch_model.safetensors")
        XCTAssertThrowsError(try DiTModel.load(path: vae)) { e in
            XCTAssertTrue("\(e)".contains(vae) && "\(e)".contains("not a DiT"), "\(e)")
        }
        // Heads contradicting the shapes.
        XCTAssertThrowsError(try DiTModel.load(path: Fixtures.path("dit/dit.safetensors"), numHeads: c.hiddenSize + 1))
    }

    func testNamedConfigs() throws {
        let xl = try DiTConfig.named("XL/2")
        XCTAssertEqual([xl.hiddenSize, xl.depth, xl.numHeads, xl.numPatches, xl.inputSize], [1152, 28, 16, 256, 32])
        let s8 = try DiTConfig.named("DiT-S/8", imageSize: 512)
        XCTAssertEqual([s8.hiddenSize, s8.numPatches, s8.inputSize], [384, 64, 64])
        XCTAssertThrowsError(try DiTConfig.named("M/2"))
        XCTAssertThrowsError(try DiTConfig.named("XL/3"))
    }
}
