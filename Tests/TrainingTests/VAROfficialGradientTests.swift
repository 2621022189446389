import Foundation
import Layers
import ModelIO
import Tensor
import VAR
import XCTest

/// The whole VAR transformer's backward against the official PyTorch implementation: Fixtures/var_grad_official
/// holds a tiny official `models.var.VAR` (attn_l2_norm False, per-block ada_lin, random weights), its teacher-forced
/// logits on random VQ features, the mean cross-entropy against random targets and every parameter's gradient
/// (`scripts/make_var_grad_fixture.py --var-repo PATH`). The same file loads in `VARModel`, whose forward and
/// backward must give the same logits, loss and gradients up to float32 rounding (different summation orders).
final class VAROfficialGradientTests: XCTestCase {
    func testWholeModelGradientsMatchTheOfficialPyTorchVAR() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/var_grad_official.safetensors").path
        let f = try SafetensorsFile(path: path)
        let model = try VARModel(archive: f)
        XCTAssertEqual(model.config.depth, 2)
        let labels = try f.intTensor("input.labels").values.map { Int($0) }
        let targets = try f.intTensor("input.targets").values.map { Int($0) }
        let logits = try model.forward(labels: labels, input: .features(try f.floatTensor("input.features")))
        let ref = try f.floatTensor("output.logits")
        XCTAssertEqual(logits.shape, ref.shape)
        XCTAssertLessThan(VARTrainFixture.relErr(logits.data, ref.data), 1e-6, "logits")
        let (loss, dLogits, _) = Losses.softmaxCrossEntropy(logits: logits, labels: targets)
        XCTAssertEqual(loss, Double(try f.floatTensor("output.loss").data[0]), accuracy: 1e-5, "loss")
        for p in model.parameters { p.zeroGrad() }
        model.backward(dLogits: dLogits)
        var worst = (0.0, "")
        for p in model.parameters {
            let g = try f.floatTensor("grad." + p.name)
            XCTAssertEqual(g.shape, p.value.shape, p.name)
            let e = VARTrainFixture.relErr(p.grad.data, g.data)
            if e > worst.0 { worst = (e, p.name) }
            XCTAssertLessThan(e, 1e-5, "gradient of \(p.name), relative L2 error \(e)")
        }
        XCTAssertEqual(
            Set(model.parameters.map(\.name)), Set(f.keys.filter { $0.hasPrefix("grad.") }.map { String($0.dropFirst(5)) }),
            "every official parameter has a varlab twin")
        print("VAR whole-model gradients vs official PyTorch: worst relative error \(worst.0) (\(worst.1))")
    }
}
