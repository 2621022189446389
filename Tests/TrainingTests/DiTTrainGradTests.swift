import DiT
import Foundation
import Layers
import Tensor
import Training
import XCTest

/// Gradients of the trainable DiT: one adaLN-Zero block against float64 central differences of a Double
/// re-implementation (GradCheck), and the whole model (embeddings, blocks, final layer, unpatchify) against central
/// differences of its own float32 forward. adaLN and final-layer weights are made non-zero first: with the
/// official zero init most gradients would be exactly zero and hide mistakes.
final class DiTTrainGradTests: XCTestCase {
    /// Double forward of models.py DiTBlock on x [B, T, D] and c = SiLU(conditioning) [B, D].
    static func refBlock(x: [Double], c: [Double], p: [String: [Double]], b: Int, t: Int, d: Int, heads: Int, mlp: Int) -> [Double] {
        func linear(_ v: [Double], rows: Int, _ name: String, out: Int, inF: Int) -> [Double] {
            let y = Ref.matmul(v, [rows, inF], p[name + ".weight"]!, [out, inF], ta: false, tb: true)
            let bias = p[name + ".bias"]!
            return y.enumerated().map { $0.element + bias[$0.offset % out] }
        }
        let mod = linear(c, rows: b, "adaLN_modulation.1", out: 6 * d, inF: d)
        func chunk(_ k: Int, _ bi: Int, _ j: Int) -> Double { mod[bi * 6 * d + k * d + j] }
        func modulate(_ v: [Double], shift: Int, scale: Int) -> [Double] {
            var o = v
            for bi in 0..<b {
                for ti in 0..<t {
                    for j in 0..<d {
                        let i = (bi * t + ti) * d + j
                        o[i] = v[i] * (1 + chunk(scale, bi, j)) + chunk(shift, bi, j)
                    }
                }
            }
            return o
        }
        func gatedAdd(_ base: [Double], _ v: [Double], gate: Int) -> [Double] {
            var o = base
            for bi in 0..<b { for ti in 0..<t { for j in 0..<d { let i = (bi * t + ti) * d + j; o[i] += chunk(gate, bi, j) * v[i] } } }
            return o
        }
        // Attention (timm): qkv -> [B, T, 3, H, hd]; per (b, h) softmax(q k^T / sqrt(hd)) v; merge; proj.
        let hd = d / heads
        let m1 = modulate(Ref.layerNorm(x, d: d, eps: 1e-6, w: nil, b: nil), shift: 0, scale: 1)
        let qkv = linear(m1, rows: b * t, "attn.qkv", out: 3 * d, inF: d)
        var q = [Double](repeating: 0, count: b * t * d), k = q, v = q
        for bi in 0..<b {
            for h in 0..<heads {
                for ti in 0..<t {
                    for e in 0..<hd {
                        let dst = ((bi * heads + h) * t + ti) * hd + e, src = (bi * t + ti) * 3 * d + h * hd + e
                        q[dst] = qkv[src]; k[dst] = qkv[src + d]; v[dst] = qkv[src + 2 * d]
                    }
                }
            }
        }
        let o = Ref.attention(q: q, k: k, v: v, bh: b * heads, lq: t, lk: t, d: hd, dv: hd, scale: 1 / Double(hd).squareRoot(), mask: nil)
        var merged = o
        for bi in 0..<b {
            for h in 0..<heads {
                for ti in 0..<t {
                    for e in 0..<hd {
                        merged[(bi * t + ti) * d + h * hd + e] = o[((bi * heads + h) * t + ti) * hd + e]
                    }
                }
            }
        }
        let x1 = gatedAdd(x, linear(merged, rows: b * t, "attn.proj", out: d, inF: d), gate: 2)
        let m2 = modulate(Ref.layerNorm(x1, d: d, eps: 1e-6, w: nil, b: nil), shift: 3, scale: 4)
        let k0 = (2 / Double.pi).squareRoot()
        let hid = linear(m2, rows: b * t, "mlp.fc1", out: mlp, inF: d).map { u in 0.5 * u * (1 + tanh(k0 * (u + 0.044715 * u * u * u))) }
        return gatedAdd(x1, linear(hid, rows: b * t, "mlp.fc2", out: d, inF: mlp), gate: 5)
    }

    func testBlockGradientsMatchFloat64FiniteDifferences() throws {
        let (b, t, d, heads, mlp) = (2, 3, 8, 2, 16)
        // Random weights everywhere (adaLN included, so the modulation and gates are far from 0 / 1).
        var stream: UInt64 = 0
        let blk = try DiTBlock("blk", dim: d, heads: heads, mlpHidden: mlp, source: FreshParameters()) { _, out, inF in
            stream += 2
            return (
                GradCheck.random([out, inF], seed: 5, stream: stream, scale: 0.5),
                GradCheck.random([out], seed: 5, stream: stream + 1, scale: 0.5)
            )
        }
        let x = GradCheck.random([b, t, d], seed: 8), c = GradCheck.random([b, d], seed: 9)
        let g = GradCheck.random([b, t, d], seed: 10)
        for p in blk.parameters { p.zeroGrad() }
        _ = blk.forward(x, siluC: c)
        let (dx, dc) = blk.backward(g)
        func params() -> [String: [Double]] {
            Dictionary(uniqueKeysWithValues: blk.parameters.map { (String($0.name.dropFirst(4)), $0.value.data.map(Double.init)) })
        }
        let base = params()
        let xd = x.data.map(Double.init), cd = c.data.map(Double.init)
        func ref(_ xv: [Double], _ cv: [Double], _ pv: [String: [Double]]) -> [Double] {
            DiTTrainGradTests.refBlock(x: xv, c: cv, p: pv, b: b, t: t, d: d, heads: heads, mlp: mlp)
        }
        GradCheck.check("dx", x, analytic: dx, g: g, ref: { ref($0, cd, base) })
        GradCheck.check("dSiLU(c)", c, analytic: dc, g: g, ref: { ref(xd, $0, base) })
        for p in blk.parameters {
            let key = String(p.name.dropFirst(4))
            GradCheck.check(
                p.name, p.value, analytic: p.grad, g: g,
                ref: { v in
                    var pv = base; pv[key] = v
                    return ref(xd, cd, pv)
                })
        }
    }

    /// Whole model with every zero-initialised weight replaced by random values.
    static func randomised(_ c: DiTConfig, seed: UInt64) throws -> DiTModel {
        let m = try DiTModel(config: c, seed: seed)
        for (i, p) in m.parameters.enumerated()
        where p.name.contains("adaLN") || p.name.hasPrefix("final_layer") || p.name.hasSuffix("bias") {
            p.value = GradCheck.random(p.value.shape, seed: seed + 100, stream: UInt64(i), scale: 0.3)
        }
        return m
    }

    static var tinyConfig: DiTConfig {
        DiTConfig(inputSize: 4, patchSize: 2, inChannels: 3, hiddenSize: 16, depth: 2, numHeads: 2, numClasses: 3, learnSigma: false)
    }

    func testWholeModelGradientMatchesFiniteDifferences() throws {
        let m = try DiTTrainGradTests.randomised(DiTTrainGradTests.tinyConfig, seed: 3)
        let x = GradCheck.random([2, 3, 4, 4], seed: 11), ts: [Float] = [17, 640], y = [1, 3]  // 3 = the null class
        let g = GradCheck.random([2, 3, 4, 4], seed: 12)
        func loss() -> Double { zip(m.trainingForward(x, t: ts, y: y).data, g.data).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } }
        for p in m.parameters { p.zeroGrad() }
        _ = m.trainingForward(x, t: ts, y: y)
        m.backward(g)
        for p in m.parameters {
            // Label rows 0 and 2 get no gradient (labels 1 and 3 only): check rows that are used.
            let picks = p.name.hasPrefix("y_embedder") ? [16 + 3, 3 * 16 + 7] : Array(Set([0, p.value.count / 2, p.value.count - 1]))
            for i in picks {
                let v = p.value.data[i], h: Float = 1e-2
                p.value.data[i] = v + h; let lp = loss()
                p.value.data[i] = v - h; let lm = loss()
                p.value.data[i] = v
                let num = (lp - lm) / Double(2 * h)
                XCTAssertEqual(Double(p.grad.data[i]), num, accuracy: 3e-3 * max(1, abs(num)), "\(p.name)[\(i)]")
            }
        }
        XCTAssertEqual(m.parameters.filter { $0.name == "pos_embed" }.count, 0, "pos_embed is a fixed buffer, not trained")
    }
}
