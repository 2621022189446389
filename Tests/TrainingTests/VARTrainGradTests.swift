import Foundation
import Layers
import Tensor
import Training
import VAR
import XCTest

/// Gradients of the VAR training code against central differences:
/// - AdaLN modulate / gate (shared with DiT) and one whole AdaLN block (ada_lin from SiLU(cond), non-affine
///   LayerNorms, VAR attention with q/v biases, 0.25/√hd scale and the block-causal mask, GELU-tanh FFN, gates)
///   against a Double re-implementation (GradCheck, float64 finite differences, relative L2 error < 1e-4);
/// - the whole model (embeddings, position tables, class conditioning, AdaLN head, CE loss) of each variant,
///   spot-checked with float32 central differences of the loss.
final class VARTrainGradTests: XCTestCase {
    func testAdaLNModulateAndGateMatchFloat64FiniteDifferences() {
        let (b, l, d) = (2, 3, 5)
        let x = GradCheck.random([b, l, d], seed: 1), shift = GradCheck.random([b, d], seed: 2), scale = GradCheck.random([b, d], seed: 3)
        let g = GradCheck.random([b, l, d], seed: 4)
        func modRef(_ xv: [Double], _ sh: [Double], _ sc: [Double]) -> [Double] {
            (0..<(b * l * d)).map { i in
                let bi = i / (l * d), j = i % d; return xv[i] * (1 + sc[bi * d + j]) + sh[bi * d + j]
            }
        }
        let xd = x.data.map(Double.init), shd = shift.data.map(Double.init), scd = scale.data.map(Double.init)
        let (dx, dShift, dScale) = AdaLNGrad.modulateBackward(x: x, scale: scale, dy: g)
        XCTAssertLessThan(GradCheck.relErr(AdaLNGrad.modulate(x, shift: shift, scale: scale).data, modRef(xd, shd, scd)), 1e-6)
        GradCheck.check("modulate dx", x, analytic: dx, g: g) { modRef($0, shd, scd) }
        GradCheck.check("modulate dshift", shift, analytic: dShift, g: g) { modRef(xd, $0, scd) }
        GradCheck.check("modulate dscale", scale, analytic: dScale, g: g) { modRef(xd, shd, $0) }

        let h = GradCheck.random([b, l, d], seed: 5), gate = GradCheck.random([b, d], seed: 6)
        func gateRef(_ hv: [Double], _ gv: [Double]) -> [Double] {
            (0..<(b * l * d)).map { i in hv[i] * gv[(i / (l * d)) * d + i % d] }
        }
        let hd = h.data.map(Double.init), gd = gate.data.map(Double.init)
        let (dh, dGate) = AdaLNGrad.gateBackward(h: h, gate: gate, dy: g)
        GradCheck.check("gate dh", h, analytic: dh, g: g) { gateRef($0, gd) }
        GradCheck.check("gate dgate", gate, analytic: dGate, g: g) { gateRef(hd, $0) }
    }

    func testAdaLNBlockMatchesFloat64FiniteDifferences() throws {
        var c = VARConfig()
        c.depth = 1; c.width = 8; c.heads = 2; c.mlpRatio = 2; c.patchNums = [1, 2]
        let (b, l, w) = (2, c.totalTokens, c.width)
        let blk = try VARBlock("blk", config: c, std: 0.3, source: FreshParameters(), seed: 11, stream: 0)
        // Move away from the near-identity init (gamma rows 1e-5) so every path carries gradient.
        for (i, p) in blk.parameters.enumerated() { p.value = GradCheck.random(p.value.shape, seed: 12, stream: UInt64(i), scale: 0.4) }
        let mask = c.attentionMask()
        let x = GradCheck.random([b, l, w], seed: 13), sc = GradCheck.random([b, w], seed: 14)
        let g = GradCheck.random([b, l, w], seed: 15)
        for p in blk.parameters { p.zeroGrad() }
        let y = blk.forward(x, siluCond: sc, mask: Tensor(shape: [l, l], data: mask))
        let (dx, dscOptional) = blk.backward(g)
        let dsc = try XCTUnwrap(dscOptional)

        var values: [String: [Double]] = [:]
        for p in blk.parameters { values[p.name] = p.value.data.map(Double.init) }
        let ref = RefAdaLNBlock(b: b, l: l, w: w, heads: c.heads, hidden: c.mlpHidden, eps: Double(c.normEps), mask: mask.map(Double.init))
        let xd = x.data.map(Double.init), scd = sc.data.map(Double.init)
        XCTAssertLessThan(GradCheck.relErr(y.data, ref.forward(xd, scd, values)), 1e-5, "forward")
        GradCheck.check("block dx", x, analytic: dx, g: g) { ref.forward($0, scd, values) }
        GradCheck.check("block dcond", sc, analytic: dsc, g: g) { ref.forward(xd, $0, values) }
        for p in blk.parameters {
            GradCheck.check("block \(p.name)", p.value, analytic: p.grad, g: g) { pv in
                var v = values; v[p.name] = pv
                return ref.forward(xd, scd, v)
            }
        }
    }

    func testWholeModelGradientsEveryVariant() throws {
        for variant in VARVariant.allCases {
            var opts = TrainOptions(); opts.steps = 1; opts.batchSize = 3
            let trainer = try VARTrainFixture.trainer(variant, images: 6, options: opts)
            let model = trainer.model
            for (i, p) in model.parameters.enumerated() {
                p.value = p.value + GradCheck.random(p.value.shape, seed: 21, stream: UInt64(i), scale: 0.15)
            }
            let (targets, input) = trainer.batch([0, 3, 4])
            let labels = [1, 3, 0]  // includes the null class
            func loss() throws -> Double {
                Losses.softmaxCrossEntropy(logits: try model.forward(labels: labels, input: input), labels: targets).loss
            }
            for p in model.parameters { p.zeroGrad() }
            let logits = try model.forward(labels: labels, input: input)
            model.backward(dLogits: Losses.softmaxCrossEntropy(logits: logits, labels: targets).grad)
            var checked = 0
            for p in model.parameters {
                // The largest-gradient entry plus two fixed ones (rows of unused classes / tokens have zero grad).
                let big = p.grad.data.indices.max { abs(p.grad.data[$0]) < abs(p.grad.data[$1]) } ?? 0
                for i in Set([big, 0, p.value.count / 2]) {
                    let v = p.value.data[i], h: Float = 1e-2
                    p.value.data[i] = v + h; let lp = try loss()
                    p.value.data[i] = v - h; let lm = try loss()
                    p.value.data[i] = v
                    let num = (lp - lm) / Double(2 * h)
                    XCTAssertEqual(
                        Double(p.grad.data[i]), num, accuracy: 2e-3 * max(0.05, abs(num)) + 2e-5,
                        "\(variant.rawValue) \(p.name)[\(i)]")
                    checked += 1
                }
            }
            XCTAssertGreaterThan(checked, 20)
        }
    }
}

/// Double re-implementation of an AdaLN `VARBlock` (official AdaLNSelfAttn, attn_l2_norm = False).
struct RefAdaLNBlock {
    let b, l, w, heads, hidden: Int
    let eps: Double
    let mask: [Double]

    func linear(_ x: [Double], rows: Int, _ wt: [Double], _ bias: [Double]?, inF: Int, outF: Int) -> [Double] {
        var y = [Double](repeating: 0, count: rows * outF)
        for r in 0..<rows {
            for o in 0..<outF {
                var s = bias?[o] ?? 0
                for i in 0..<inF { s += x[r * inF + i] * wt[o * inF + i] }
                y[r * outF + o] = s
            }
        }
        return y
    }

    func layerNorm(_ x: [Double]) -> [Double] {
        var y = x
        for r in 0..<(x.count / w) {
            let row = Array(x[(r * w)..<((r + 1) * w)])
            let mean = row.reduce(0, +) / Double(w)
            let v = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(w)
            for j in 0..<w { y[r * w + j] = (row[j] - mean) / (v + eps).squareRoot() }
        }
        return y
    }

    func forward(_ x: [Double], _ cond: [Double], _ p: [String: [Double]]) -> [Double] {
        let ada = linear(cond, rows: b, p["blk.ada_lin.1.weight"]!, p["blk.ada_lin.1.bias"]!, inF: w, outF: 6 * w)
        func chunk(_ bi: Int, _ k: Int, _ j: Int) -> Double { ada[bi * 6 * w + k * w + j] }
        func modulate(_ n: [Double], scale: Int, shift: Int) -> [Double] {
            (0..<n.count).map { i in
                let bi = i / (l * w), j = i % w; return n[i] * (1 + chunk(bi, scale, j)) + chunk(bi, shift, j)
            }
        }
        let m1 = modulate(layerNorm(x), scale: 2, shift: 4)
        let qkvBias = p["blk.attn.q_bias"]! + [Double](repeating: 0, count: w) + p["blk.attn.v_bias"]!
        let qkv = linear(m1, rows: b * l, p["blk.attn.mat_qkv.weight"]!, qkvBias, inF: w, outF: 3 * w)
        let hd = w / heads, scale = 0.25 / Double(hd).squareRoot()
        var o = [Double](repeating: 0, count: b * l * w)
        for bi in 0..<b {
            for h in 0..<heads {
                func at(_ t: Int, _ part: Int, _ e: Int) -> Double { qkv[(bi * l + t) * 3 * w + part * w + h * hd + e] }
                for i in 0..<l {
                    var s = [Double](repeating: 0, count: l)
                    for j in 0..<l { var d = 0.0; for e in 0..<hd { d += at(i, 0, e) * at(j, 1, e) }; s[j] = scale * d + mask[i * l + j] }
                    let mx = s.max()!
                    let ex = s.map { $0 == -.infinity ? 0 : exp($0 - mx) }
                    let z = ex.reduce(0, +)
                    for e in 0..<hd {
                        var acc = 0.0; for j in 0..<l { acc += ex[j] / z * at(j, 2, e) }; o[(bi * l + i) * w + h * hd + e] = acc
                    }
                }
            }
        }
        let a = linear(o, rows: b * l, p["blk.attn.proj.weight"]!, p["blk.attn.proj.bias"]!, inF: w, outF: w)
        var x2 = x
        for i in 0..<x.count { x2[i] += a[i] * chunk(i / (l * w), 0, i % w) }
        let m2 = modulate(layerNorm(x2), scale: 3, shift: 5)
        let c = 0.7978845608028654
        let hdn = linear(m2, rows: b * l, p["blk.ffn.fc1.weight"]!, p["blk.ffn.fc1.bias"]!, inF: w, outF: hidden)
            .map { 0.5 * $0 * (1 + tanh(c * ($0 + 0.044715 * $0 * $0 * $0))) }
        let f = linear(hdn, rows: b * l, p["blk.ffn.fc2.weight"]!, p["blk.ffn.fc2.bias"]!, inF: hidden, outF: w)
        var out = x2
        for i in 0..<x.count { out[i] += f[i] * chunk(i / (l * w), 1, i % w) }
        return out
    }
}
