import Autoencoders
import Foundation
import Layers
import Tensor

/// VAR's multi-scale residual quantiser in training mode (official `VectorQuantizer2.forward`), with its backward.
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
public final class TrainableQuantizer {
    public let embedding: Parameter  // [V, C]
    public let phiWeights: [Parameter]  // [C, C, 3, 3]
    public let phiBiases: [Parameter]  // [C]
    public let patchNums: [Int]
    public let phiIndexPerScale: [Int]
    public let resiRatio: Float
    public let beta: Float

    public struct Saved {
        public let f: Tensor
        public let tokens: [[Int]]
        /// Per scale, the residual rows [B·pn², C] the tokens were chosen for (empty when tokens were given).
        public let residualRows: [Tensor]
        let upsampled: [Tensor]  // u_s (input of φ_s)
        let partialSums: [Tensor]  // F_s after each scale
    }

    /// Fresh parameters: codebook uniform(-1/V, 1/V) (the classic VQ-VAE init); φ convs as PyTorch's default conv
    /// init. Parameter names follow the official checkpoint (`quantize.embedding.weight`, `quantize.quant_resi.qresi_ls.K`).
    public init(
        vocabSize: Int, channels: Int, patchNums: [Int], phiCount: Int = 4, resiRatio: Float = 0.5,
        beta: Float = 0.25, seed: UInt64, stream: UInt64 = 1000
    ) throws {
        guard patchNums.count >= 2, patchNums.allSatisfy({ $0 >= 1 }),
            zip(patchNums, patchNums.dropFirst()).allSatisfy({ $0 < $1 })
        else {
            throw TrainingError.config("impossible patch numbers \(patchNums)")
        }
        guard vocabSize >= 2, channels >= 1, phiCount >= 1 else { throw TrainingError.config("quantiser sizes") }
        let bound = 1 / Float(vocabSize)
        embedding = Parameter(
            "quantize.embedding.weight",
            Init.uniform([vocabSize, channels], bound: bound, seed: seed, stream: stream), decay: false)
        let cb = 1 / Float(channels * 9).squareRoot()
        phiWeights = (0..<phiCount).map { k in
            Parameter(
                "quantize.quant_resi.qresi_ls.\(k).weight",
                Init.uniform([channels, channels, 3, 3], bound: cb, seed: seed, stream: stream + 1 + 2 * UInt64(k)), decay: true)
        }
        phiBiases = (0..<phiCount).map { k in
            Parameter(
                "quantize.quant_resi.qresi_ls.\(k).bias",
                Init.uniform([channels], bound: cb, seed: seed, stream: stream + 2 + 2 * UInt64(k)), decay: false)
        }
        self.patchNums = patchNums
        phiIndexPerScale = MultiScaleQuantizer.tickRule(k: phiCount, scales: patchNums.count)
        self.resiRatio = resiRatio; self.beta = beta
    }

    public var parameters: [Parameter] { [embedding] + zip(phiWeights, phiBiases).flatMap { [$0, $1] } }
    public var channels: Int { embedding.value.shape[1] }
    public var vocabSize: Int { embedding.value.shape[0] }

    func phiConv(_ si: Int) -> Conv2d {
        let k = phiIndexPerScale[si]
        return Conv2d(weight: phiWeights[k].value, bias: phiBiases[k].value, stride: 1, padding: 1)
    }

    /// Nearest codes of the rows of z [rows, C] (the inference quantiser's formula and tie rule).
    func nearest(_ z: Tensor) -> [Int] { MultiScaleQuantizer.nearestCodes(z, codebook: embedding.value) }

    /// Forward with given tokens (`tokens` nil = choose them by nearest code). Returns the decoder input (value F,
    /// straight-through to f), L_vq and what backward needs.
    public func forward(_ f: Tensor, tokens given: [[Int]]? = nil) -> (fHat: Tensor, vqLoss: Double, saved: Saved) {
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
        var u = Embedding(weight: embedding.value)(ids).reshaped([b, pn, pn, channels]).permuted([0, 3, 1, 2])
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
        var table = embedding.value
        var rest = f, filled = 0
        for (si, pn) in patchNums.enumerated() {
            let rows = residualRows(rest, pn: pn)
            let n = rows.shape[0]
            let quota = min(n, (v - filled) / (patchNums.count - si))
            for (k, row) in Self.distinctDraw(quota, from: n, rng: &rng).enumerated() {
                for ch in 0..<c { table.data[(filled + k) * c + ch] = rows.data[row * c + ch] }
            }
            filled += quota
            embedding.value = table
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
        var table = embedding.value
        for (code, row) in zip(dead, picks) {
            for ch in 0..<c { table.data[code * c + ch] = pool.data[row * c + ch] }
        }
        embedding.value = table
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
        var dEmb = Tensor(zeros: embedding.value.shape)
        for si in stride(from: sn - 1, through: 0, by: -1) {
            let diff = saved.partialSums[si] - f  // F_s - f
            gh.addInPlace(diff, scale: k)
            df.addInPlace(diff, scale: -beta * k)
            // h = (1-r) u + r conv(u)
            let phiK = phiIndexPerScale[si]
            let (dxConv, dW, db) = ConvGrad.backward(
                x: saved.upsampled[si], weight: phiWeights[phiK].value, stride: 1,
                pads: (1, 1, 1, 1), dy: gh)
            phiWeights[phiK].accumulate(dW * r); phiBiases[phiK].accumulate(db * r)
            var du = gh * (1 - r)
            du.addInPlace(dxConv, scale: r)
            let pn = patchNums[si]
            let de = pn == hh ? du : InterpolateGrad.backward(inputShape: [b, channels, pn, pn], mode: .bicubic, dy: du)
            // Embedding scatter: de [B, C, pn, pn] -> rows [B*pn*pn, C].
            let rows = de.permuted([0, 2, 3, 1]).reshaped([b * pn * pn, channels])
            dEmb += LinearGrad.embeddingBackward(ids: saved.tokens[si], tableShape: embedding.value.shape, dy: rows)
        }
        embedding.accumulate(dEmb)
        return df
    }
}
