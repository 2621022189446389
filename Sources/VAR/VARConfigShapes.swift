import Foundation

/// The official state dict's names and shapes (random-weight models for benchmarks) and the sampling cost.
extension VARConfig {
    /// Official VAR state-dict names and shapes.
    public var stateDictShapes: [(String, [Int])] {
        let c = self
        let w = c.width, L = c.totalTokens
        var s: [(String, [Int])] = [
            ("pos_start", [1, c.firstL, w]), ("pos_1LC", [1, L, w]), ("lvl_1L", [1, L]),
            ("word_embed.weight", [w, c.cvae]), ("word_embed.bias", [w]),
            ("class_emb.weight", [c.numClasses + 1, w]), ("lvl_embed.weight", [c.patchNums.count, w]),
        ]
        if c.sharedAdaLN { s += [("shared_ada_lin.1.weight", [6 * w, w]), ("shared_ada_lin.1.bias", [6 * w])] }
        for i in 0..<c.depth {
            let p = "blocks.\(i)."
            if c.sharedAdaLN { s.append((p + "ada_gss", [1, 1, 6, w])) }
            s += [
                (p + "attn.scale_mul_1H11", [1, c.heads, 1, 1]), (p + "attn.q_bias", [w]), (p + "attn.v_bias", [w]),
                (p + "attn.mat_qkv.weight", [3 * w, w]), (p + "attn.proj.weight", [w, w]), (p + "attn.proj.bias", [w]),
                (p + "ffn.fc1.weight", [c.mlpHidden, w]), (p + "ffn.fc1.bias", [c.mlpHidden]),
                (p + "ffn.fc2.weight", [w, c.mlpHidden]), (p + "ffn.fc2.bias", [w]),
            ]
            if !c.sharedAdaLN { s += [(p + "ada_lin.1.weight", [6 * w, w]), (p + "ada_lin.1.bias", [6 * w])] }
        }
        s += [
            ("head_nm.ada_lin.1.weight", [2 * w, w]), ("head_nm.ada_lin.1.bias", [2 * w]),
            ("head.weight", [c.vocabSize, w]), ("head.bias", [c.vocabSize]),
        ]
        return s
    }

    /// Multiply-add FLOPs (x2) of one image's next-scale loop with CFG (2 rows per image).
    public var samplingFLOPs: Double {
        let c = self
        let w = Double(c.width), rows = 2.0
        var f = 0.0, seen = 0.0
        for pn in c.patchNums {
            let l = Double(pn * pn)
            seen += l
            let linear = 2 * rows * l * (3 * w * w + w * w + 2 * w * Double(c.mlpHidden))
            let attn = 2 * 2 * rows * l * seen * w
            f += Double(c.depth) * (linear + attn) + 2 * rows * l * w * Double(c.vocabSize) + 2 * rows * l * Double(c.cvae) * w
        }
        return f
    }
}
