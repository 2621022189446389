import Foundation
import ModelIO
import Tensor

/// VAR's multi-scale residual quantiser (official `VectorQuantizer2`, inference paths): one codebook shared by
/// all scales; scale s quantises the area-downsampled residual, its embedding is bicubic-upsampled to the full
/// latent size and refined by a Phi convolution, then added to f_hat and removed from the residual.
///
/// Token maps are `[[Int]]`: entry s holds B x pn_s^2 indices, batch-major, row-major over the pn x pn grid.
public struct MultiScaleQuantizer: Sendable {
    /// Codebook [V, C].
    public let embedding: Tensor
    public let patchNums: [Int]
    let phis: [Conv2d]
    /// Phi index used at each scale (the official tick rule).
    public let phiIndexPerScale: [Int]
    let resiRatio: Float

    public var vocabSize: Int { embedding.shape[0] }
    public var channels: Int { embedding.shape[1] }
    public var fullSize: Int { patchNums.last! }
    /// Tokens per image over all scales.
    public var totalTokens: Int { patchNums.reduce(0) { $0 + $1 * $1 } }

    init(_ r: WeightReader, config c: VQVAEConfig, patchNums: [Int]) throws {
        embedding = try r.tensor("embedding.weight", shape: [c.vocabSize, c.zChannels])
        guard patchNums.count >= 2, patchNums.allSatisfy({ $0 >= 1 }), zip(patchNums, patchNums.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw QuantizerError.badPatchNums(patchNums)
        }
        self.patchNums = patchNums
        switch c.phiLayout {
        case .shared:
            phis = [try r["quant_resi"].conv("qresi", inChannels: c.zChannels, outChannels: c.zChannels)]
            phiIndexPerScale = Array(repeating: 0, count: patchNums.count)
        case .partiallyShared(let k):
            phis = try (0..<k).map { try r["quant_resi"]["qresi_ls"].conv(String($0), inChannels: c.zChannels, outChannels: c.zChannels) }
            phiIndexPerScale = MultiScaleQuantizer.tickRule(k: k, scales: patchNums.count)
        case .nonShared(let k):
            phis = try (0..<k).map { try r["quant_resi"].conv(String($0), inChannels: c.zChannels, outChannels: c.zChannels) }
            phiIndexPerScale = MultiScaleQuantizer.tickRule(k: k, scales: patchNums.count)
        }
        resiRatio = abs(c.quantResi)
    }

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
