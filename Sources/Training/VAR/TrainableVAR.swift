import Foundation
import Layers
import Tensor

/// The trainable VAR transformer (official `models.var.VAR.forward`, teacher forcing) and its ablation variants
/// (see `VARTrainConfig`). For `var`, parameter names, shapes and math equal the official state dict with
/// attn_l2_norm = False and per-block ada_lin, so the checkpoint loads unchanged in the inference `VARModel`.
///
///   cond = class_emb(label)                                  (label = numClasses: the null class, for CFG)
///   x    = cat(cond + pos_start, word_embed(var_input)) + lvl_embed(lvl) + pos_1LC
///   x    = blocks(x, SiLU(cond), block-causal mask)
///   logits = head(ln(x)(1 + scale) + shift),  (scale, shift) = head_nm.ada_lin(SiLU(cond))
/// `ar`: one level, the input after the start token is tok_embed(previous token), causal mask.
/// `plain-ln`: affine-LayerNorm blocks and head norm (`head_nm.ln`), no ada_lin anywhere.
public final class TrainableVAR {
    public let config: VARTrainConfig
    public let classEmb: Parameter          // [numClasses + 1, C]
    public let posStart: Parameter          // [1, firstL, C]
    public let pos1LC: Parameter            // [1, L, C]
    public let lvlEmbed: Parameter?         // [scales, C] (var, plain-ln)
    public let wordEmbed: LinearLayer?      // Cvae -> C (var, plain-ln)
    public let tokEmbed: Parameter?         // [V, C] (ar)
    public let adaBlocks: [AdaLNBlockLayer]
    public let plainBlocks: [PlainBlockLayer]
    public let headAdaLin: LinearLayer?     // head_nm.ada_lin.1 (AdaLN variants)
    let headNorm: LayerNormLayer            // no affine (AdaLN) or head_nm.ln (plain-ln)
    public let head: LinearLayer
    let fullMask: [Float]

    public static let modelName = "var-transformer"

    // Saved by forward for backward.
    private var labels: [Int] = [], tokenInput: [Int] = []
    private var cond = Tensor(zeros: [0]), siluCond = Tensor(zeros: [0]), headAda = Tensor(zeros: [0])
    private var headNormed = Tensor(zeros: [0])
    private var length = 0

    /// Official init: init_std = √(1/(3C)) for every Linear / Embedding / position table, biases 0, head weight ×0.02,
    /// head_nm.ada_lin weight ×0.5, per block ada_lin ×0.5 (scale/shift rows) and ×1e-5 (gamma rows), attn.proj and
    /// ffn.fc2 weights ÷√(2·depth).
    public init(config c: VARTrainConfig, seed: UInt64) throws {
        try c.validate()
        config = c
        let w = c.width, L = c.totalTokens
        let std = (1 / Float(w) / 3).squareRoot()
        classEmb = Parameter("class_emb.weight", VARInit.truncNormal([c.numClasses + 1, w], std: std, seed: seed, stream: 1), decay: true)
        posStart = Parameter("pos_start", VARInit.truncNormal([1, c.firstL, w], std: std, seed: seed, stream: 2), decay: false)
        pos1LC = Parameter("pos_1LC", VARInit.truncNormal([1, L, w], std: std, seed: seed, stream: 3), decay: false)
        if c.variant == .ar {
            lvlEmbed = nil; wordEmbed = nil
            tokEmbed = Parameter("tok_embed.weight", VARInit.truncNormal([c.vocabSize, w], std: std, seed: seed, stream: 4), decay: true)
        } else {
            lvlEmbed = Parameter("lvl_embed.weight", VARInit.truncNormal([c.patchNums.count, w], std: std, seed: seed, stream: 4), decay: false)
            let we = LinearLayer("word_embed", inFeatures: c.cvae, outFeatures: w, seed: seed, stream: 5)
            VARInit.linear(we, std: std, seed: seed, stream: 5)
            wordEmbed = we; tokEmbed = nil
        }
        if c.adaLN {
            adaBlocks = (0..<c.depth).map { AdaLNBlockLayer("blocks.\($0)", config: c, std: std, seed: seed, stream: 100 + 100 * UInt64($0)) }
            plainBlocks = []
            let hal = LinearLayer("head_nm.ada_lin.1", inFeatures: w, outFeatures: 2 * w, seed: seed, stream: 10)
            VARInit.linear(hal, std: std, seed: seed, stream: 10)
            hal.weight.value = hal.weight.value * 0.5
            headAdaLin = hal
            headNorm = LayerNormLayer("head_nm.ln_wo_grad", dim: w, eps: c.normEps, affine: false)
        } else {
            adaBlocks = []
            plainBlocks = (0..<c.depth).map { PlainBlockLayer("blocks.\($0)", config: c, std: std, seed: seed, stream: 100 + 100 * UInt64($0)) }
            headAdaLin = nil
            headNorm = LayerNormLayer("head_nm.ln", dim: w, eps: c.normEps, affine: true)
        }
        head = LinearLayer("head", inFeatures: w, outFeatures: c.vocabSize, seed: seed, stream: 12)
        VARInit.linear(head, std: std, seed: seed, stream: 12)
        head.weight.value = head.weight.value * 0.02
        fullMask = c.attentionMask()
    }

    /// Parameters in the official module order (word_embed, class_emb, pos_start, pos_1LC, lvl_embed, blocks, head_nm, head).
    public var parameters: [Parameter] {
        var p: [Parameter] = []
        p += wordEmbed?.parameters ?? []
        p += [classEmb, posStart, pos1LC]
        if let lvlEmbed { p.append(lvlEmbed) }
        if let tokEmbed { p.append(tokEmbed) }
        for b in adaBlocks { p += b.parameters }
        for b in plainBlocks { p += b.parameters }
        p += headAdaLin?.parameters ?? []
        p += headNorm.parameters
        p += head.parameters
        return p
    }

    /// What follows the start tokens: VQ features [B, l - firstL, Cvae] (next-scale variants, `idxBl_to_var_input`)
    /// or previous token ids, B x (l - 1) (ar).
    public enum Input {
        case features(Tensor)
        case tokens([Int])
    }

    /// Teacher-forced logits [B, length, V] for the first `length` positions (default all L; a prefix is exact
    /// because the masks are (block-)causal - the samplers of the variants use it). Labels may include the null class.
    public func forward(labels: [Int], input: Input, length: Int? = nil) throws -> Tensor {
        let c = config, w = c.width, fl = c.firstL, b = labels.count
        let len = length ?? c.totalTokens
        guard len >= fl, len <= c.totalTokens else { throw TrainingError.config("sequence length \(len) outside \(fl)...\(c.totalTokens)") }
        for l in labels where l < 0 || l > c.numClasses {
            throw TrainingError.data("class id \(l) outside 0...\(c.numClasses) (\(c.numClasses) = null class)")
        }
        self.labels = labels; self.length = len
        cond = Embedding(weight: classEmb.value)(labels)               // [B, C]
        // sos = cond + pos_start (per start token)
        var x = Tensor(zeros: [b, len, w])
        x.data.withUnsafeMutableBufferPointer { px in
            for bi in 0..<b { for t in 0..<fl { for j in 0..<w {
                px[(bi * len + t) * w + j] = cond.data[bi * w + j] + posStart.value.data[t * w + j]
            } } }
        }
        let rest = len - fl
        if rest > 0 {
            let e: Tensor
            switch input {
            case .features(let f):
                guard let wordEmbed, f.rank == 3, f.shape[0] == b, f.shape[1] >= rest, f.shape[2] == c.cvae else {
                    throw TrainingError.data("teacher-forcing input \(f.shape) does not fit [\(b), >= \(rest), \(c.cvae)] for a '\(c.variant.rawValue)' model")
                }
                let used = f.shape[1] == rest ? f : Tensor.cat([f.split([rest, f.shape[1] - rest], dim: 1)[0]], dim: 1)
                e = wordEmbed.forward(used)
            case .tokens(let ids):
                guard let tokEmbed, ids.count >= b * rest, ids.count % b == 0 else {
                    throw TrainingError.data("token input of \(ids.count) ids does not fit \(b) x \(rest) for a '\(c.variant.rawValue)' model")
                }
                let per = ids.count / b
                tokenInput = (0..<b).flatMap { bi in ids[(bi * per)..<(bi * per + rest)] }
                guard tokenInput.allSatisfy({ $0 >= 0 && $0 < c.vocabSize }) else { throw TrainingError.data("token id outside the vocabulary") }
                e = Embedding(weight: tokEmbed.value)(tokenInput).reshaped([b, rest, w])
            }
            x.data.withUnsafeMutableBufferPointer { px in e.data.withUnsafeBufferPointer { pe in
                for bi in 0..<b { for t in 0..<rest { for j in 0..<w {
                    px[(bi * len + fl + t) * w + j] = pe[(bi * rest + t) * w + j]
                } } }
            } }
        }
        // + lvl_embed(lvl) + pos_1LC, summed as the official `x += lvl + pos` (lvl + pos first).
        let lvl = c.levels
        x.data.withUnsafeMutableBufferPointer { px in
            for t in 0..<len {
                for j in 0..<w {
                    let add = (lvlEmbed?.value.data[lvl[t] * w + j] ?? 0) + pos1LC.value.data[t * w + j]
                    for bi in 0..<b { px[(bi * len + t) * w + j] += add }
                }
            }
        }
        let mask = maskTensor(len)
        if c.adaLN {
            siluCond = cond.silu()
            for blk in adaBlocks { blk.attn.mask = mask; x = blk.forward(x, siluCond: siluCond) }
            headAda = headAdaLin!.forward(siluCond)
            headNormed = headNorm.forward(x)
            x = AdaLNGrad.modulate(headNormed, shift: adaChunk(headAda, 1, width: w), scale: adaChunk(headAda, 0, width: w))
        } else {
            for blk in plainBlocks { blk.attn.mask = mask; x = blk.forward(x) }
            x = headNorm.forward(x)
        }
        return head.forward(x)
    }

    func maskTensor(_ len: Int) -> Tensor {
        let L = config.totalTokens
        if len == L { return Tensor(shape: [L, L], data: fullMask) }
        var m = [Float](repeating: 0, count: len * len)
        for i in 0..<len { for j in 0..<len { m[i * len + j] = fullMask[i * L + j] } }
        return Tensor(shape: [len, len], data: m)
    }

    /// Accumulates every parameter's gradient from dL/dlogits [B, length, V] of the last forward.
    public func backward(dLogits: Tensor) {
        let c = config, w = c.width, fl = c.firstL, b = labels.count, len = length
        var dx = head.backward(dLogits)
        var dSilu: Tensor? = nil
        if c.adaLN {
            let (dn, dShift, dScale) = AdaLNGrad.modulateBackward(x: headNormed, scale: adaChunk(headAda, 0, width: w), dy: dx)
            var ds = headAdaLin!.backward(adaJoin([dScale, dShift]))
            dx = headNorm.backward(dn)
            for blk in adaBlocks.reversed() {
                let r = blk.backward(dx)
                dx = r.dx
                ds.addInPlace(r.dSiluCond)
            }
            dSilu = ds
        } else {
            dx = headNorm.backward(dx)
            for blk in plainBlocks.reversed() { dx = blk.backward(dx) }
        }
        // Position tables: pos_1LC and lvl_embed get the batch sum; pos_start and cond the start-token rows.
        var dPos = [Float](repeating: 0, count: pos1LC.value.count)
        var dLvl = [Float](repeating: 0, count: lvlEmbed?.value.count ?? 0)
        var dStart = [Float](repeating: 0, count: posStart.value.count)
        var dCond = [Float](repeating: 0, count: b * w)
        let lvl = c.levels
        dx.data.withUnsafeBufferPointer { pd in
            for bi in 0..<b {
                for t in 0..<len {
                    let row = pd.baseAddress! + (bi * len + t) * w
                    for j in 0..<w { dPos[t * w + j] += row[j] }
                    if !dLvl.isEmpty { for j in 0..<w { dLvl[lvl[t] * w + j] += row[j] } }
                    if t < fl { for j in 0..<w { dStart[t * w + j] += row[j]; dCond[bi * w + j] += row[j] } }
                }
            }
        }
        pos1LC.accumulate(Tensor(shape: [len * w], data: Array(dPos[0..<(len * w)])).padded(to: pos1LC.value.count))
        lvlEmbed?.accumulate(Tensor(shape: [dLvl.count], data: dLvl))
        posStart.accumulate(Tensor(shape: [dStart.count], data: dStart))
        if let dSilu {
            // d/dc SiLU(c) = σ(c)(1 + c(1 - σ(c)))
            let g = ActivationGrad.silu(x: cond, dy: dSilu)
            for i in 0..<dCond.count { dCond[i] += g.data[i] }
        }
        classEmb.accumulate(LinearGrad.embeddingBackward(ids: labels, tableShape: classEmb.value.shape, dy: Tensor(shape: [b, w], data: dCond)))
        let rest = len - fl
        guard rest > 0 else { return }
        var dRest = [Float](repeating: 0, count: b * rest * w)
        dx.data.withUnsafeBufferPointer { pd in
            for bi in 0..<b { for t in 0..<rest { for j in 0..<w { dRest[(bi * rest + t) * w + j] = pd[(bi * len + fl + t) * w + j] } } }
        }
        if let wordEmbed {
            _ = wordEmbed.backward(Tensor(shape: [b, rest, w], data: dRest))
        } else if let tokEmbed {
            tokEmbed.accumulate(LinearGrad.embeddingBackward(ids: tokenInput, tableShape: tokEmbed.value.shape,
                                                             dy: Tensor(shape: [b * rest, w], data: dRest)))
        }
    }
}

extension Tensor {
    /// Flat copy zero-padded to `count` elements (gradients of a prefix of a table).
    fileprivate func padded(to count: Int) -> Tensor {
        var d = data
        if d.count < count { d += [Float](repeating: 0, count: count - d.count) }
        return Tensor(shape: [count], data: d)
    }
}
