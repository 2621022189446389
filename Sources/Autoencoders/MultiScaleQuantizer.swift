import Foundation
import Layers
import ModelIO
import Tensor

/// VAR's multi-scale residual quantiser (official `VectorQuantizer2`): one codebook shared by all scales; scale s
/// quantises the area-downsampled residual, its embedding is bicubic-upsampled to the full latent size and refined by
/// a Phi convolution, then added to f_hat and removed from the residual. The inference paths come first; the
/// training forward / backward (with the β-commitment loss) follow, on the same parameters.
///
/// Token maps are `[[Int]]`: entry s holds B x pn_s^2 indices, batch-major, row-major over the pn x pn grid.
public final class MultiScaleQuantizer: @unchecked Sendable {
    /// `quantize.embedding.weight` [V, C].
    public let codebook: Parameter
    public let patchNums: [Int]
    /// The Phi convolutions (3x3, padding 1).
    public let phis: [ConvLayer]
    /// Phi index used at each scale (the official tick rule).
    public let phiIndexPerScale: [Int]
    public let resiRatio: Float
    /// Commitment weight of the VQ loss (official beta, 0.25).
    public let beta: Float

    /// Codebook [V, C].
    public var embedding: Tensor { codebook.value }
    public var vocabSize: Int { codebook.value.shape[0] }
    public var channels: Int { codebook.value.shape[1] }
    public var fullSize: Int { patchNums.last! }
    /// Tokens per image over all scales.
    public var totalTokens: Int { patchNums.reduce(0) { $0 + $1 * $1 } }

    /// Under `quantize.`; new weights: codebook uniform(±1/V) (the classic VQ-VAE init) from stream `stream`, Phi k
    /// as PyTorch's default conv init from streams `stream + 1 + 2k` (weight) and `stream + 2 + 2k` (bias).
    public init(config c: VQVAEConfig, patchNums: [Int], source src: ParameterSource, seed: UInt64, stream: UInt64) throws {
        guard patchNums.count >= 2, patchNums.allSatisfy({ $0 >= 1 }), zip(patchNums, patchNums.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw QuantizerError.badPatchNums(patchNums)
        }
        let (v, z) = (c.vocabSize, c.zChannels)
        codebook = try src.parameter("quantize.embedding.weight", shape: [v, z], decay: false) {
            Init.uniform([v, z], bound: 1 / Float(v), seed: seed, stream: stream)
        }
        self.patchNums = patchNums
        let names: [String]
        switch c.phiLayout {
        case .shared: names = ["quantize.quant_resi.qresi"]
        case .partiallyShared(let k): names = (0..<k).map { "quantize.quant_resi.qresi_ls.\($0)" }
        case .nonShared(let k): names = (0..<k).map { "quantize.quant_resi.\($0)" }
        }
        phis = try names.enumerated().map { k, name in
            try ConvLayer(name, cin: z, cout: z, kernel: 3, stride: 1, pads: (1, 1, 1, 1), source: src) {
                let bound = 1 / Float(z * 9).squareRoot()
                return (
                    Init.uniform([z, z, 3, 3], bound: bound, seed: seed, stream: stream + 1 + 2 * UInt64(k)),
                    Init.uniform([z], bound: bound, seed: seed, stream: stream + 2 + 2 * UInt64(k))
                )
            }
        }
        phiIndexPerScale =
            c.phiLayout == .shared
            ? Array(repeating: 0, count: patchNums.count) : MultiScaleQuantizer.tickRule(k: names.count, scales: patchNums.count)
        resiRatio = abs(c.quantResi)
        beta = c.beta
    }

    /// A new quantiser alone (partially shared Phi convolutions), e.g. for gradient checks.
    public convenience init(
        vocabSize: Int, channels: Int, patchNums: [Int], phiCount: Int, beta: Float = 0.25, seed: UInt64,
        stream: UInt64 = 1000
    ) throws {
        var c = VQVAEConfig(
            ch: channels, chMult: [1], numResBlocks: 1, zChannels: channels, vocabSize: vocabSize, attnAtLowest: false,
            midAttn: false, phiLayout: .partiallyShared(phiCount))
        c.beta = beta
        try self.init(config: c, patchNums: patchNums, source: FreshParameters(), seed: seed, stream: stream)
    }

    /// Codebook and Phi parameters (official order).
    public var parameters: [Parameter] { [codebook] + phis.flatMap(\.parameters) }

    /// Which of K Phi convolutions scale si of SN uses: argmin_i |ticks_i - si/(SN-1)| (first on ties), with
    /// ticks = linspace(1/3/K, 1-1/3/K, K) if K == 4 else linspace(1/2/K, 1-1/2/K, K), in float64 exactly as
    /// numpy computes them (start + i*step, last = stop). For K=4, SN=10 this gives [0,0,1,1,1,2,2,3,3,3].
    public static func tickRule(k: Int, scales sn: Int) -> [Int] {
        let start = k == 4 ? 1.0 / 3.0 / Double(k) : 1.0 / 2.0 / Double(k)
        let stop = k == 4 ? 1.0 - 1.0 / 3.0 / Double(k) : 1.0 - 1.0 / 2.0 / Double(k)
        var ticks: [Double]
        if k == 1 {
            ticks = [start]
        } else {
            let step = (stop - start) / Double(k - 1)
            ticks = (0..<k).map { Double($0) * step + start }
            ticks[k - 1] = stop
        }
        return (0..<sn).map { si in
            let at = Double(si) / Double(sn - 1)
            var best = 0
            for i in 1..<k where abs(ticks[i] - at) < abs(ticks[best] - at) { best = i }
            return best
        }
    }

    /// phi(h) = h * (1 - r) + conv3x3(h) * r for scale si.
    public func phi(_ h: Tensor, scale si: Int) -> Tensor {
        let conv = phis[phiIndexPerScale[si]](h)
        let a = 1 - resiRatio, r = resiRatio
        return h.zipWith(conv) { $0 * a + $1 * r }
    }

    /// Embedding of B x pn^2 token ids as [B, C, pn, pn].
    public func embed(_ ids: [Int], batch: Int, pn: Int) -> Tensor {
        let c = channels
        var out = [Float](repeating: 0, count: batch * c * pn * pn)
        let n = pn * pn
        embedding.data.withUnsafeBufferPointer { e in
            for b in 0..<batch {
                for p in 0..<n {
                    let id = ids[b * n + p]
                    for ch in 0..<c { out[(b * c + ch) * n + p] = e[id * c + ch] }
                }
            }
        }
        return Tensor(shape: [batch, c, pn, pn], data: out)
    }

    /// The contribution of scale si's tokens to f_hat: phi(bicubic_up(embed(ids))) (no upsampling at full size).
    public func contribution(_ ids: [Int], batch: Int, scale si: Int) -> Tensor {
        let pn = patchNums[si]
        var h = embed(ids, batch: batch, pn: pn)
        if pn != fullSize { h = h.interpolated(height: fullSize, width: fullSize, mode: .bicubic) }
        return phi(h, scale: si)
    }

    /// `F.interpolate(f, (pn, pn), mode='area')` flattened to [B, pn^2, C] (the transformer's next-scale input).
    public func downsampledTokens(_ fhat: Tensor, pn: Int) -> Tensor {
        let (b, c) = (fhat.shape[0], fhat.shape[1])
        let d = pn == fhat.shape[2] ? fhat : fhat.adaptiveAveragePooled(height: pn, width: pn)
        return d.reshaped([b, c, pn * pn]).permuted([0, 2, 1])
    }

    /// `f_to_idxBl_or_fhat(to_fhat=False)`: latent f [B, C, H, W] -> token maps per scale.
    public func tokens(latent f: Tensor) throws -> [[Int]] {
        guard f.rank == 4, f.shape[1] == channels, f.shape[2] == fullSize, f.shape[3] == fullSize else {
            throw QuantizerError.latentShape(f.shape, expected: [-1, channels, fullSize, fullSize])
        }
        let b = f.shape[0]
        var rest = f
        var result: [[Int]] = []
        for (si, pn) in patchNums.enumerated() {
            let z = downsampledTokens(rest, pn: pn)  // [B, n, C]
            let ids = MultiScaleQuantizer.nearestCodes(z, codebook: embedding)
            let h = contribution(ids, batch: b, scale: si)
            rest -= h
            result.append(ids)
        }
        return result
    }

    /// Index of the nearest codebook row for every row of z [rows, C], with the official float formula
    /// ‖z‖² + ‖e‖² - 2 z·e (|e|² summed in float32 as torch.sum(E², dim=1); the product in sgemm); ties go to the
    /// lower index, as torch.argmin. A rank-3 z [B, n, C] is a batch: each image's product is computed alone, so its
    /// codes do not depend on the other images.
    /// The raster baseline's tokens: the nearest code of every position of the full latent f [B, C, H, W] (one
    /// quantisation step, no residual pyramid; batch-major, row-major grid).
    public func finestOnlyTokens(latent f: Tensor) -> [Int] {
        let (b, c, h, w) = (f.shape[0], f.shape[1], f.shape[2], f.shape[3])
        return Self.nearestCodes(f.permuted([0, 2, 3, 1]).reshaped([b, h * w, c]), codebook: embedding)
    }

    public static func nearestCodes(_ z: Tensor, codebook e: Tensor) -> [Int] {
        let c = e.shape[1], v = e.shape[0], rows = z.count / c
        let ee: [Float] = (0..<v).map { i in (0..<c).reduce(Float(0)) { $0 + e.data[i * c + $1] * e.data[i * c + $1] } }
        let ze = (z.rank == 3 ? z : z.reshaped([rows, c])).matmul(e, transposeOther: true)  // [(B,) rows, V]
        return (0..<rows).map { r in
            var zz: Float = 0
            for ch in 0..<c { let t = z.data[r * c + ch]; zz += t * t }
            var best = 0, bestD = Float.infinity
            for j in 0..<v {
                let d = (zz + ee[j]) + (-2) * ze.data[r * v + j]
                if d < bestD { bestD = d; best = j }
            }
            return best
        }
    }

    /// `embed_to_fhat(all_to_max_scale=True)`: cumulative f_hat after each scale, each [B, C, H, W].
    public func fhat(tokens: [[Int]], batch b: Int) -> [Tensor] {
        var f = Tensor(zeros: [b, channels, fullSize, fullSize])
        var out: [Tensor] = []
        for si in 0..<min(tokens.count, patchNums.count) {
            f += contribution(tokens[si], batch: b, scale: si)
            out.append(f)
        }
        return out
    }

    /// `idxBl_to_var_input`: teacher-forcing input [B, L - pn_0^2, C]: for each scale but the last, f_hat after it,
    /// area-downsampled to the next scale's size.
    public func varInput(tokens: [[Int]], batch b: Int) -> Tensor {
        var f = Tensor(zeros: [b, channels, fullSize, fullSize])
        var parts: [Tensor] = []
        for si in 0..<(patchNums.count - 1) {
            f += contribution(tokens[si], batch: b, scale: si)
            parts.append(downsampledTokens(f, pn: patchNums[si + 1]))
        }
        return Tensor.cat(parts, dim: 1)
    }
}

// MARK: training

/// Training mode (official `VectorQuantizer2.forward`), with its backward.
///
/// Forward, for scales s = 0..SN-1 with sizes pn_s (the last = the latent size H):
///   rest ← sg(f); F ← 0
///   ids_s = argmin_v ‖area_down(rest, pn_s) - E_v‖²       (no gradient)
///   h_s = φ_s(bicubic_up(E[ids_s]))  (no upsampling at the last scale), φ(u) = (1-r) u + r conv3x3(u)
///   F ← F + h_s; rest ← rest - h_s
///   L_vq += β mse(sg(F), f) + mse(F, sg(f))
/// L_vq /= SN; the decoder input is f̂ = sg(F) - sg(f) + f (straight-through).
///
/// Backward: the decoder's gradient reaches f unchanged (straight-through); f also gets the commitment terms
/// β·2(f - F_s)/M / SN; the codebook path gets G_s = 2(F_s - f)/M / SN at every scale, so h_j receives Σ_{s≥j} G_s,
/// which flows through φ_j (conv gradients), the bicubic upsampling (its adjoint) and the embedding lookup (scatter).
extension MultiScaleQuantizer {
    public struct Saved {
        public let f: Tensor
        public let tokens: [[Int]]
        /// Per scale, the residual rows [B·pn², C] the tokens were chosen for (empty when tokens were given).
        public let residualRows: [Tensor]
        let upsampled: [Tensor]  // u_s (input of φ_s)
        let partialSums: [Tensor]  // F_s after each scale
    }

    func phiConv(_ si: Int) -> ConvLayer { phis[phiIndexPerScale[si]] }

    /// Nearest codes of the rows of z [rows, C] (the inference quantiser's formula and tie rule).
    func nearest(_ z: Tensor) -> [Int] { MultiScaleQuantizer.nearestCodes(z, codebook: embedding) }

    /// Forward with given tokens (`tokens` nil = choose them by nearest code). Returns the decoder input (value F,
    /// straight-through to f), L_vq and what backward needs.
    public func trainingForward(_ f: Tensor, tokens given: [[Int]]? = nil) -> (fHat: Tensor, vqLoss: Double, saved: Saved) {
        let (b, c, hh) = (f.shape[0], f.shape[1], f.shape[2])
        precondition(c == channels && hh == patchNums.last! && f.shape[3] == hh, "quantiser input \(f.shape)")
        var rest = f, acc = Tensor(zeros: f.shape)
        var tokens: [[Int]] = [], ups: [Tensor] = [], sums: [Tensor] = [], residuals: [Tensor] = []
        var loss = 0.0
        for (si, pn) in patchNums.enumerated() {
            let ids: [Int]
            if let given {
                ids = given[si]
            } else {
                let rows = residualRows(rest, pn: pn)
                ids = nearest(rows)
                residuals.append(rows)
            }
            let (u, h) = contribution(ids, batch: b, scale: si, size: hh)
            acc += h
            rest -= h
            loss += (1 + Double(beta)) * Losses.mse(acc, f).loss
            tokens.append(ids); ups.append(u); sums.append(acc)
        }
        loss /= Double(patchNums.count)
        return (acc, loss, Saved(f: f, tokens: tokens, residualRows: residuals, upsampled: ups, partialSums: sums))
    }

    /// Scale si's codes as a feature map: u = bicubic_up(E[ids]) (no upsampling at the last scale) and
    /// h = φ_si(u) = (1-r) u + r conv3x3(u).
    func contribution(_ ids: [Int], batch b: Int, scale si: Int, size hh: Int) -> (u: Tensor, h: Tensor) {
        let pn = patchNums[si], r = resiRatio
        var u = Embedding(weight: embedding)(ids).reshaped([b, pn, pn, channels]).permuted([0, 3, 1, 2])
        if pn != hh { u = u.interpolated(height: hh, width: hh, mode: .bicubic) }
        return (u, u.zipWith(phiConv(si)(u)) { $0 * (1 - r) + $1 * r })
    }

    /// area_down(rest, pn) as rows [B·pn², C].
    public func residualRows(_ rest: Tensor, pn: Int) -> Tensor {
        let (b, c, hh) = (rest.shape[0], rest.shape[1], rest.shape[2])
        let down = pn == hh ? rest : rest.adaptiveAveragePooled(height: pn, width: pn)
        return down.permuted([0, 2, 3, 1]).reshaped([b * pn * pn, c])
    }

    /// Data-dependent codebook initialisation (as in k-means / sample initialisation of VQ codebooks): the codes
    /// become residual vectors of a real batch, scale by scale, with what each scale's chosen codes leave as the
    /// next scale's residual. The classic uniform(±1/V) init puts every code near 0 while the latent has an rms
    /// of about 0.15, so for the first few hundred steps the decoder saw almost nothing of the image and learned
    /// the mean image (grey) first. Codes are spread over the scales (each gets an equal share of what is left,
    /// at most its row count); the draw is a pure function of `seed`.
    public func initialiseCodebook(from f: Tensor, seed: UInt64) {
        let (v, c, hh) = (vocabSize, channels, f.shape[2])
        var rng = PhiloxRandom(seed: seed, stream: 1 << 42)
        var table = embedding
        var rest = f, filled = 0
        for (si, pn) in patchNums.enumerated() {
            let rows = residualRows(rest, pn: pn)
            let n = rows.shape[0]
            let quota = min(n, (v - filled) / (patchNums.count - si))
            for (k, row) in Self.distinctDraw(quota, from: n, rng: &rng).enumerated() {
                for ch in 0..<c { table.data[(filled + k) * c + ch] = rows.data[row * c + ch] }
            }
            filled += quota
            codebook.value = table
            let ids = nearest(rows)
            rest -= contribution(ids, batch: f.shape[0], scale: si, size: hh).h
        }
    }

    /// Dead-code restart (Jukebox, SoundStream): every code in `dead` becomes a residual row of this batch, drawn
    /// at random from all scales. Returns how many codes were restarted.
    @discardableResult
    public func restart(_ dead: [Int], residualRows: [Tensor], rng: inout PhiloxRandom) -> Int {
        guard !dead.isEmpty, !residualRows.isEmpty else { return 0 }
        let c = channels
        let pool = Tensor.cat(residualRows, dim: 0)
        let picks = Self.distinctDraw(min(dead.count, pool.shape[0]), from: pool.shape[0], rng: &rng)
        var table = embedding
        for (code, row) in zip(dead, picks) {
            for ch in 0..<c { table.data[code * c + ch] = pool.data[row * c + ch] }
        }
        codebook.value = table
        return picks.count
    }

    /// `k` distinct indices of 0..<n (partial Fisher-Yates).
    static func distinctDraw(_ k: Int, from n: Int, rng: inout PhiloxRandom) -> [Int] {
        var idx = Array(0..<n)
        for i in 0..<min(k, n) { idx.swapAt(i, i + Int(rng.nextUInt32()) % (n - i)) }
        return Array(idx.prefix(k))
    }

    /// Accumulates codebook and φ gradients (L_vq scaled by `vqWeight`) and returns df = dFHat (straight-through)
    /// + the commitment gradient.
    public func backward(dFHat: Tensor, saved: Saved, vqWeight: Float = 1) -> Tensor {
        let f = saved.f
        let (b, hh) = (f.shape[0], f.shape[2])
        let sn = patchNums.count, m = Float(f.count), r = resiRatio
        let k = 2 * vqWeight / (m * Float(sn))
        var df = dFHat
        var gh = Tensor(zeros: f.shape)  // Σ_{s ≥ j} G_s, built from the last scale down
        var dEmb = Tensor(zeros: embedding.shape)
        for si in stride(from: sn - 1, through: 0, by: -1) {
            let diff = saved.partialSums[si] - f  // F_s - f
            gh.addInPlace(diff, scale: k)
            df.addInPlace(diff, scale: -beta * k)
            // h = (1-r) u + r conv(u)
            let phiK = phiIndexPerScale[si]
            let (dxConv, dW, db) = ConvGrad.backward(
                x: saved.upsampled[si], weight: phis[phiK].weight.value, stride: 1,
                pads: (1, 1, 1, 1), dy: gh)
            phis[phiK].weight.accumulate(dW * r); phis[phiK].bias.accumulate(db * r)
            var du = gh * (1 - r)
            du.addInPlace(dxConv, scale: r)
            let pn = patchNums[si]
            let de = pn == hh ? du : InterpolateGrad.backward(inputShape: [b, channels, pn, pn], mode: .bicubic, dy: du)
            // Embedding scatter: de [B, C, pn, pn] -> rows [B*pn*pn, C].
            let rows = de.permuted([0, 2, 3, 1]).reshaped([b * pn * pn, channels])
            dEmb += LinearGrad.embeddingBackward(ids: saved.tokens[si], tableShape: embedding.shape, dy: rows)
        }
        codebook.accumulate(dEmb)
        return df
    }
}

public enum QuantizerError: Error, CustomStringConvertible {
    case badPatchNums([Int])
    case latentShape([Int], expected: [Int])
    public var description: String {
        switch self {
        case .badPatchNums(let p): return "impossible patch numbers \(p): need at least two strictly increasing positive sizes"
        case let .latentShape(s, e): return "latent has shape \(s), the scale schedule needs \(e)"
        }
    }
}
