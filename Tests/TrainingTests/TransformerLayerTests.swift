import Foundation
import Layers
import Tensor
import Training
import XCTest

/// A pre-norm transformer block built from the trainable layers (LN -> masked MHSA -> residual, LN -> MLP with
/// GELU-tanh -> residual, embeddings in front): whole-chain gradients against central differences of the
/// float32 forward in Double-accumulated loss, on a few entries of every parameter and of the input.
final class TransformerLayerTests: XCTestCase {
    func testBlockGradientsMatchFiniteDifferences() {
        let (b, l, d, heads) = (2, 5, 12, 3)
        let attn = SelfAttentionLayer("blk.attn", dim: d, heads: heads, seed: 1, stream: 0)
        var m = [Float](repeating: 0, count: l * l)
        for i in 0..<l { for j in 0..<l where j > i { m[i * l + j] = -.infinity } }  // causal
        attn.mask = Tensor(shape: [l, l], data: m)
        let block = Sequential([
            Residual(Sequential([LayerNormLayer("blk.ln1", dim: d), attn])),
            Residual(
                Sequential([
                    LayerNormLayer("blk.ln2", dim: d, affine: false),
                    LinearLayer("blk.fc1", inFeatures: d, outFeatures: 2 * d, seed: 1, stream: 10), GELUTanhLayer(),
                    LinearLayer("blk.fc2", inFeatures: 2 * d, outFeatures: d, seed: 1, stream: 12),
                ])),
        ])
        let emb = EmbeddingLayer("tok", count: 7, dim: d, std: 1, seed: 1, stream: 20)
        let ids = [3, 1, 4, 1, 5, 2, 6, 5, 3, 0]
        let g = GradCheck.random([b, l, d], seed: 30)
        func loss() -> Double {
            let y = block.forward(emb.forward(ids).reshaped([b, l, d]))
            return zip(y.data, g.data).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        for p in block.parameters + emb.parameters { p.zeroGrad() }
        _ = loss()
        emb.backward(block.backward(g).reshaped([b * l, d]))
        for p in block.parameters + emb.parameters {
            for i in Set([0, p.value.count / 2, p.value.count - 1]) {
                let v = p.value.data[i], h: Float = 1e-2
                p.value.data[i] = v + h; let lp = loss()
                p.value.data[i] = v - h; let lm = loss()
                p.value.data[i] = v
                let num = (lp - lm) / Double(2 * h)
                XCTAssertEqual(Double(p.grad.data[i]), num, accuracy: 2e-3 * max(1, abs(num)), "\(p.name)[\(i)]")
            }
        }
        // Causality: with the mask, the first position's output does not depend on the last token.
        let y0 = block.forward(emb.forward(ids).reshaped([b, l, d]))
        var ids2 = ids; ids2[l - 1] = (ids[l - 1] + 1) % 7
        let y1 = block.forward(emb.forward(ids2).reshaped([b, l, d]))
        XCTAssertEqual(Array(y0.data[0..<d]), Array(y1.data[0..<d]))
        XCTAssertNotEqual(Array(y0.data[((l - 1) * d)..<(l * d)]), Array(y1.data[((l - 1) * d)..<(l * d)]))
        XCTAssertEqual(block.parameters.map(\.name).filter { $0.hasPrefix("blk.ln2") }, [], "non-affine LayerNorm has no parameters")
    }
}
