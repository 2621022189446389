import Autoencoders
import Foundation
import Layers
import ModelIO
import Tensor

/// The VAR-family transformer (official `models.var.VAR`) and its two ablation variants (`VARVariant`), defined
/// once: the same type loads an official checkpoint, a varlab-trained file or a fresh initialisation, runs
/// inference with a KV cache (`beginInference` / `step`, driven by the token sampler through `TokenModel`) and
/// trains (`forward(labels:input:)` / `backward`).
///
///   cond = class_emb(label)                                  (label = numClasses: the null class, for CFG)
///   x    = cat(cond + pos_start, embed(input)) + lvl_embed(lvl) + pos_1LC
///          embed = word_embed(VQ features) (next-scale) or tok_embed(previous token) (ar, no lvl_embed)
///   x    = blocks(x, SiLU(cond), block-causal or causal mask)
///   logits = head(ln(x)(1 + scale) + shift),  (scale, shift) = head_nm.ada_lin(SiLU(cond))   (plain-ln: head(ln(x)))
///
/// Inference reads the parameters and never writes; a model being trained must not be sampled concurrently.
public final class VARModel: @unchecked Sendable {
    public let config: VARConfig
    public let classEmb: Parameter  // [numClasses + 1, C]; the last row is the null class
    public let posStart: Parameter  // [1, firstL, C]
    public let pos1LC: Parameter  // [1, L, C]
    public let lvlEmbed: Parameter?  // [scales, C] (next-scale variants)
    public let wordEmbed: LinearLayer?  // Cvae -> C (next-scale variants)
    public let tokEmbed: Parameter?  // [V, C] (ar)
    /// Shared AdaLN (official d36): shared_ada_lin.1.
    let sharedAdaLin: LinearLayer?
    public let blocks: [VARBlock]
    let headAdaLin: LinearLayer?  // head_nm.ada_lin.1 (AdaLN variants)
    let headNorm: LayerNormLayer  // no affine (AdaLN) or head_nm.ln (plain-ln)
    public let head: LinearLayer
    /// Inference precision of every Linear product (opt-in bfloat16); embeddings, norms and attention stay float32.
    public func setMatmulPrecision(_ precision: MatmulPrecision) {
        for layer in [wordEmbed, sharedAdaLin, headAdaLin, head].compactMap({ $0 }) { layer.setPrecision(precision) }
        for block in blocks { block.setPrecision(precision) }
    }

    /// The whole sequence's (block-)causal mask [L x L], built when a training forward first needs it.
    private lazy var trainingMask: [Float] = config.attentionMask()

    /// `varlab.model` of the files varlab writes for this family.
    public static let checkpointName = "var-transformer"

    /// Every tensor from `source`; new ones follow the official init: init_std = √(1/(3C)) for every Linear /
    /// Embedding / position table, biases 0, head weight ×0.02, head_nm.ada_lin weight ×0.5 (see `VARBlock` for the
    /// blocks). Each tensor draws from its own Philox stream of `seed`.
    public init(config c: VARConfig, source src: ParameterSource, seed: UInt64 = 0) throws {
        try c.validate()
        config = c
        let w = c.width, L = c.totalTokens
        let std = (1 / Float(w) / 3).squareRoot()
        func normal(_ shape: [Int], _ stream: UInt64) -> Tensor { VARInit.truncNormal(shape, std: std, seed: seed, stream: stream) }
        classEmb = try src.parameter("class_emb.weight", shape: [c.numClasses + 1, w], decay: true) { normal([c.numClasses + 1, w], 1) }
        posStart = try src.parameter("pos_start", shape: [1, c.firstL, w], decay: false) { normal([1, c.firstL, w], 2) }
        pos1LC = try src.parameter("pos_1LC", shape: [1, L, w], decay: false) { normal([1, L, w], 3) }
        if c.variant == .ar {
            lvlEmbed = nil; wordEmbed = nil
            tokEmbed = try src.parameter("tok_embed.weight", shape: [c.vocabSize, w], decay: true) { normal([c.vocabSize, w], 4) }
        } else {
            lvlEmbed = try src.parameter("lvl_embed.weight", shape: [c.scales.count, w], decay: false) { normal([c.scales.count, w], 4) }
            wordEmbed = try LinearLayer("word_embed", inFeatures: c.cvae, outFeatures: w, source: src) {
                (normal([w, c.cvae], 5), Tensor(zeros: [w]))
            }
            tokEmbed = nil
        }
        sharedAdaLin =
            c.sharedAdaLN
            ? try LinearLayer("shared_ada_lin.1", inFeatures: w, outFeatures: 6 * w, source: src) {
                (normal([6 * w, w], 6), Tensor(zeros: [6 * w]))
            }
            : nil
        blocks = try (0..<c.depth).map {
            try VARBlock("blocks.\($0)", config: c, std: std, source: src, seed: seed, stream: 100 + 100 * UInt64($0))
        }
        if c.adaLN {
            headAdaLin = try LinearLayer("head_nm.ada_lin.1", inFeatures: w, outFeatures: 2 * w, source: src) {
                (normal([2 * w, w], 10) * 0.5, Tensor(zeros: [2 * w]))
            }
            headNorm = try LayerNormLayer("head_nm.ln_wo_grad", dim: w, eps: c.normEps, affine: false, source: src)
        } else {
            headAdaLin = nil
            headNorm = try LayerNormLayer("head_nm.ln", dim: w, eps: c.normEps, affine: true, source: src)
        }
        head = try LinearLayer("head", inFeatures: w, outFeatures: c.vocabSize, source: src) {
            (normal([c.vocabSize, w], 12) * 0.02, Tensor(zeros: [c.vocabSize]))
        }
    }

    /// A new model with the official initialisation (a pure function of `seed`).
    public convenience init(config: VARConfig, seed: UInt64) throws {
        try self.init(config: config, source: FreshParameters(), seed: seed)
    }

    /// An official or varlab state dict (official key names). `patchNums` overrides the schedule.
    public convenience init(archive a: TensorArchive, patchNums: [Int]? = nil) throws {
        try self.init(config: try VARConfig.infer(from: a, patchNums: patchNums), source: ArchiveParameters(a))
    }

    /// Parameters in the official module order (word_embed, class_emb, pos_start, pos_1LC, lvl_embed, blocks,
    /// head_nm, head); the optimizer state and checkpoints follow it.
    public var parameters: [Parameter] {
        var p: [Parameter] = []
        p += wordEmbed?.parameters ?? []
        p += [classEmb, posStart, pos1LC]
        if let lvlEmbed { p.append(lvlEmbed) }
        if let tokEmbed { p.append(tokEmbed) }
        p += sharedAdaLin?.parameters ?? []
        for b in blocks { p += b.parameters }
        p += headAdaLin?.parameters ?? []
        p += headNorm.parameters
        p += head.parameters
        return p
    }

    /// Checks that this transformer and a VQ-VAE agree on vocabulary and latent width; the error names both files.
    public func checkCompatible(vocabSize: Int, cvae: Int, varPath: String, vaePath: String) throws {
        if vocabSize != config.vocabSize || cvae != config.cvae {
            throw VARError.mismatch(
                "VAR \(varPath) (vocab \(config.vocabSize), Cvae \(config.cvae)) does not match VQ-VAE \(vaePath) (vocab \(vocabSize), Cvae \(cvae))"
            )
        }
    }

    /// The attention mask of the whole sequence [L, L] (block-causal, or causal for ar).
    public func attentionMask() -> Tensor {
        Tensor(shape: [config.totalTokens, config.totalTokens], data: config.attentionMask())
    }

    func checkLabels(_ labels: [Int]) throws {
        for l in labels where l < 0 || l > config.numClasses {
            throw VARError.badInput("class id \(l) outside 0..\(config.numClasses - 1) (\(config.numClasses) = null class)")
        }
    }

    /// lvl_embed(lvl) + pos_1LC per sequence position [L, C] (pos_1LC alone for ar), summed as the official
    /// `lvl + pos` before it is added to the input.
    func levelPositions() -> Tensor {
        let c = config, w = c.width, L = c.totalTokens, lvl = c.levels
        var lp = pos1LC.value.data
        if let lvlEmbed {
            for t in 0..<L { for j in 0..<w { lp[t * w + j] = lvlEmbed.value.data[lvl[t] * w + j] + pos1LC.value.data[t * w + j] } }
        }
        return Tensor(shape: [L, w], data: lp)
    }

    // MARK: inference

    /// Per-call conditioning: the class embedding and every block's modulation vectors (AdaLN variants).
    public struct Conditioning: Sendable {
        public let cond: Tensor  // [B, C]
        let ada: [Tensor?]  // per block [B, 6C]
        let headAda: Tensor?  // [B, 2C]
        public var batch: Int { cond.shape[0] }
    }

    public func conditioning(labels: [Int]) throws -> Conditioning {
        try checkLabels(labels)
        let cond = Embedding(weight: classEmb.value)(labels)
        guard config.adaLN else { return Conditioning(cond: cond, ada: blocks.map { _ in nil }, headAda: nil) }
        let sc = cond.silu()
        let shared = sharedAdaLin.map { $0(sc) }
        return Conditioning(cond: cond, ada: blocks.map { $0.modulation(siluCond: sc, shared: shared) }, headAda: headAdaLin!(sc))
    }

    /// KV-cached incremental inference state (one cache per block).
    public struct State: Sendable {
        public let conditioning: Conditioning
        let levelPositions: Tensor
        var caches: [KVCache?]
        /// Sequence positions fed so far.
        public internal(set) var position = 0
        /// FastVAR pruning of the last scales (nil = exact).
        let pruning: TokenPruning?
        var pruned: [PrunedBlockCache]
    }

    /// `pruning` (next-scale variants only) turns on FastVAR's cached token pruning for the last scales.
    public func beginInference(labels: [Int], pruning: TokenPruning? = nil) throws -> State {
        if let pruning {
            guard config.variant != .ar else {
                throw VARError.badInput("--fast prunes the last scales of a next-scale model, not the raster 'ar' model")
            }
            try pruning.validate(scales: config.scales.count)
        }
        return State(
            conditioning: try conditioning(labels: labels), levelPositions: levelPositions(),
            caches: Array(repeating: KVCache(), count: blocks.count), pruning: pruning,
            pruned: Array(repeating: PrunedBlockCache(), count: pruning == nil ? 0 : blocks.count))
    }

    /// What the pruned blocks do at the step starting at sequence position `position` with `n` tokens (nil: run
    /// exactly).
    func pruningStep(_ p: TokenPruning, position: Int, n: Int) -> PruningStep? {
        guard let si = config.beginEnds.firstIndex(where: { $0.0 == position && $0.1 - $0.0 == n }) else { return nil }
        let first = config.scales.count - p.dropRatios.count
        if si == first - 1 { return .record }
        guard si >= first else { return nil }
        return .prune(keep: n - Int(Double(n) * p.dropRatios[si - first]), pn: config.scales[si])
    }

    /// Input of the first step: class embedding + pos_start + lvl_pos[:firstL], [B, firstL, C].
    public func firstInput(_ s: State) -> Tensor {
        let c = s.conditioning
        let (b, w, fl) = (c.batch, config.width, config.firstL)
        var out = [Float](repeating: 0, count: b * fl * w)
        for bi in 0..<b {
            for t in 0..<fl {
                for j in 0..<w {
                    out[(bi * fl + t) * w + j] =
                        (c.cond.data[bi * w + j] + posStart.value.data[t * w + j]) + s.levelPositions.data[t * w + j]
                }
            }
        }
        return Tensor(shape: [b, fl, w], data: out)
    }

    /// Input of scale si >= 1 (next-scale variants) from the VQ features of that scale [B, pn^2, Cvae]:
    /// word_embed(f) + lvl_pos.
    public func scaleInput(_ features: Tensor, scale si: Int, state s: State) -> Tensor {
        let (b, e) = config.beginEnds[si]
        return addPositions(wordEmbed!(features), s.levelPositions, from: b, to: e)
    }

    /// Input of sequence positions [from, from + n) (ar) from the tokens drawn before them, B x n ids:
    /// tok_embed(id) + pos.
    public func tokenInput(_ ids: [Int], from: Int, count n: Int, state s: State) -> Tensor {
        let e = Embedding(weight: tokEmbed!.value)(ids).reshaped([ids.count / n, n, config.width])
        return addPositions(e, s.levelPositions, from: from, to: from + n)
    }

    func addPositions(_ x: Tensor, _ lvlPos: Tensor, from b: Int, to e: Int) -> Tensor {
        let w = config.width, n = e - b
        var out = x
        out.data.withUnsafeMutableBufferPointer { po in
            for r in 0..<(x.count / (n * w)) {
                for t in 0..<n {
                    for j in 0..<w {
                        po[(r * n + t) * w + j] += lvlPos.data[(b + t) * w + j]
                    }
                }
            }
        }
        return out
    }

    /// Head norm (AdaLN before the head, or the plain LayerNorm), then the head: logits [B, l, V].
    func logits(_ x: Tensor, _ c: Conditioning) -> Tensor {
        guard let headAda = c.headAda else { return head(headNorm(x)) }
        return head(modulate(headNorm(x), headAda, scale: 0, shift: 1))
    }

    /// Runs the next positions: `x` is their input [B, l, C]; returns their logits [B, l, V]. Each step attends to
    /// every earlier position (cached) and itself, which is exactly the (block-)causal mask when a step is a whole
    /// scale (next-scale) or a single token (ar).
    public func step(_ x: Tensor, state: inout State) -> Tensor {
        var h = x
        let pruning = state.pruning.flatMap { p in pruningStep(p, position: state.position, n: x.shape[1]).map { (p.firstPrunedBlock, $0) }
        }
        for (i, blk) in blocks.enumerated() {
            if let p = pruning, i >= p.0 {
                h = blk.pruned(h, ada: state.conditioning.ada[i], cache: &state.caches[i], step: p.1, record: &state.pruned[i])
            } else {
                h = blk(h, ada: state.conditioning.ada[i], mask: nil, cache: &state.caches[i])
            }
        }
        state.position += x.shape[1]
        return logits(h, state.conditioning)
    }

    /// Teacher-forced inference (official `VAR.forward` with cond_drop_rate 0; next-scale variants): logits
    /// [B, L, V] for all scales at once, with the block-causal mask. `varInput` is [B, L - firstL, Cvae]
    /// (`idxBl_to_var_input`).
    public func forward(labels: [Int], varInput: Tensor) throws -> Tensor {
        let (b, L, fl) = (labels.count, config.totalTokens, config.firstL)
        guard config.variant != .ar else { throw VARError.badInput("teacher forcing with VQ features needs a next-scale model, not 'ar'") }
        guard varInput.shape == [b, L - fl, config.cvae] else {
            throw VARError.badInput("teacher-forcing input has shape \(varInput.shape), expected \([b, L - fl, config.cvae])")
        }
        let s = try beginInference(labels: labels)
        var x = Tensor.cat([firstInput(s), addPositions(wordEmbed!(varInput), s.levelPositions, from: fl, to: L)], dim: 1)
        let mask = attentionMask()
        var noCache: KVCache? = nil
        for (i, blk) in blocks.enumerated() { x = blk(x, ada: s.conditioning.ada[i], mask: mask, cache: &noCache) }
        return logits(x, s.conditioning)
    }

    // MARK: training

    /// What follows the start tokens: VQ features [B, l - firstL, Cvae] (next-scale variants, `idxBl_to_var_input`)
    /// or previous token ids, B x (l - 1) (ar).
    public enum Input {
        case features(Tensor)
        case tokens([Int])
    }

    // Saved by the training forward for backward.
    private var labels: [Int] = [], tokenInput: [Int] = []
    private var cond = Tensor(zeros: [0]), siluCond = Tensor(zeros: [0]), headAda = Tensor(zeros: [0])
    private var headNormed = Tensor(zeros: [0])
    private var length = 0

    /// Training forward (teacher forcing, official `VAR.forward`): logits [B, length, V] for the first `length`
    /// positions (default all L). Labels may include the null class. Keeps what `backward` needs.
    public func forward(labels: [Int], input: Input, length: Int? = nil) throws -> Tensor {
        let c = config, w = c.width, fl = c.firstL, b = labels.count
        let len = length ?? c.totalTokens
        guard len >= fl, len <= c.totalTokens else { throw VARError.badInput("sequence length \(len) outside \(fl)...\(c.totalTokens)") }
        try checkLabels(labels)
        self.labels = labels; self.length = len
        cond = Embedding(weight: classEmb.value)(labels)  // [B, C]
        // sos = cond + pos_start (per start token)
        var x = Tensor(zeros: [b, len, w])
        x.data.withUnsafeMutableBufferPointer { px in
            for bi in 0..<b {
                for t in 0..<fl {
                    for j in 0..<w {
                        px[(bi * len + t) * w + j] = cond.data[bi * w + j] + posStart.value.data[t * w + j]
                    }
                }
            }
        }
        let rest = len - fl
        if rest > 0 {
            let e: Tensor
            switch input {
            case .features(let f):
                guard let wordEmbed, f.rank == 3, f.shape[0] == b, f.shape[1] >= rest, f.shape[2] == c.cvae else {
                    throw VARError.badInput(
                        "teacher-forcing input \(f.shape) does not fit [\(b), >= \(rest), \(c.cvae)] for a '\(c.variant.rawValue)' model")
                }
                let used = f.shape[1] == rest ? f : Tensor.cat([f.split([rest, f.shape[1] - rest], dim: 1)[0]], dim: 1)
                e = wordEmbed.forward(used)
            case .tokens(let ids):
                guard let tokEmbed, ids.count >= b * rest, ids.count % b == 0 else {
                    throw VARError.badInput(
                        "token input of \(ids.count) ids does not fit \(b) x \(rest) for a '\(c.variant.rawValue)' model")
                }
                let per = ids.count / b
                tokenInput = (0..<b).flatMap { bi in ids[(bi * per)..<(bi * per + rest)] }
                guard tokenInput.allSatisfy({ $0 >= 0 && $0 < c.vocabSize }) else {
                    throw VARError.badInput("token id outside the vocabulary")
                }
                e = Embedding(weight: tokEmbed.value)(tokenInput).reshaped([b, rest, w])
            }
            x.data.withUnsafeMutableBufferPointer { px in
                e.data.withUnsafeBufferPointer { pe in
                    for bi in 0..<b {
                        for t in 0..<rest {
                            for j in 0..<w {
                                px[(bi * len + fl + t) * w + j] = pe[(bi * rest + t) * w + j]
                            }
                        }
                    }
                }
            }
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
        let mask = maskPrefix(len)
        if c.adaLN {
            siluCond = cond.silu()
            for blk in blocks { x = blk.forward(x, siluCond: siluCond, mask: mask) }
            headAda = headAdaLin!.forward(siluCond)
            headNormed = headNorm.forward(x)
            x = AdaLNGrad.modulate(headNormed, shift: adaChunk(headAda, 1, width: w), scale: adaChunk(headAda, 0, width: w))
        } else {
            for blk in blocks { x = blk.forward(x, siluCond: nil, mask: mask) }
            x = headNorm.forward(x)
        }
        return head.forward(x)
    }

    func maskPrefix(_ len: Int) -> Tensor {
        let L = config.totalTokens
        if len == L { return Tensor(shape: [L, L], data: trainingMask) }
        var m = [Float](repeating: 0, count: len * len)
        for i in 0..<len { for j in 0..<len { m[i * len + j] = trainingMask[i * L + j] } }
        return Tensor(shape: [len, len], data: m)
    }

    /// Accumulates every parameter's gradient from dL/dlogits [B, length, V] of the last training forward.
    public func backward(dLogits: Tensor) {
        let c = config, w = c.width, fl = c.firstL, b = labels.count, len = length
        var dx = head.backward(dLogits)
        var dSilu: Tensor? = nil
        if c.adaLN {
            let (dn, dShift, dScale) = AdaLNGrad.modulateBackward(x: headNormed, scale: adaChunk(headAda, 0, width: w), dy: dx)
            var ds = headAdaLin!.backward(adaJoin([dScale, dShift]))
            dx = headNorm.backward(dn)
            for blk in blocks.reversed() {
                let r = blk.backward(dx)
                dx = r.dx
                ds.addInPlace(r.dSiluCond!)
            }
            dSilu = ds
        } else {
            dx = headNorm.backward(dx)
            for blk in blocks.reversed() { dx = blk.backward(dx).dx }
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
        pos1LC.accumulate(Tensor(shape: [dPos.count], data: dPos))
        lvlEmbed?.accumulate(Tensor(shape: [dLvl.count], data: dLvl))
        posStart.accumulate(Tensor(shape: [dStart.count], data: dStart))
        if let dSilu {
            // d/dc SiLU(c) = σ(c)(1 + c(1 - σ(c)))
            let g = ActivationGrad.silu(x: cond, dy: dSilu)
            for i in 0..<dCond.count { dCond[i] += g.data[i] }
        }
        classEmb.accumulate(
            LinearGrad.embeddingBackward(ids: labels, tableShape: classEmb.value.shape, dy: Tensor(shape: [b, w], data: dCond)))
        let rest = len - fl
        guard rest > 0 else { return }
        var dRest = [Float](repeating: 0, count: b * rest * w)
        dx.data.withUnsafeBufferPointer { pd in
            for bi in 0..<b { for t in 0..<rest { for j in 0..<w { dRest[(bi * rest + t) * w + j] = pd[(bi * len + fl + t) * w + j] } } }
        }
        if let wordEmbed {
            _ = wordEmbed.backward(Tensor(shape: [b, rest, w], data: dRest))
        } else if let tokEmbed {
            tokEmbed.accumulate(
                LinearGrad.embeddingBackward(
                    ids: tokenInput, tableShape: tokEmbed.value.shape,
                    dy: Tensor(shape: [b * rest, w], data: dRest)))
        }
    }
}
