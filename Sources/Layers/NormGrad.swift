import Foundation
import Tensor

/// GroupNorm and LayerNorm gradients. With x̂ = (x - mean) / sqrt(var + eps) over a normalisation group of size M
/// and y = x̂ w + b: dx = inv * (dx̂ - mean(dx̂) - x̂ mean(dx̂ x̂)), dx̂ = dy w, dw = Σ dy x̂, db = Σ dy.
/// Statistics are recomputed from x in Double (as the forward does), so no cache is needed.
public enum NormGrad {
    /// GroupNorm over [N, C, ...]. `weight` nil = no affine (dW, db are then empty).
    public static func groupNormBackward(
        x: Tensor, groups: Int, eps: Float, weight: Tensor?, dy: Tensor
    )
        -> (dx: Tensor, dW: Tensor, db: Tensor)
    {
        let n = x.shape[0], c = x.shape[1]
        let spatial = x.count / max(n * c, 1), per = c / groups, size = per * spatial
        var dx = [Float](repeating: 0, count: x.count)
        // Per (n, channel) partial sums for dW / db, reduced over n afterwards in a fixed order.
        var pw = [Double](repeating: 0, count: n * c), pb = [Double](repeating: 0, count: n * c)
        x.data.withUnsafeBufferPointer { px in
            dy.data.withUnsafeBufferPointer { pg in
                dx.withUnsafeMutableBufferPointer { qx in
                    pw.withUnsafeMutableBufferPointer { qpw in
                        pb.withUnsafeMutableBufferPointer { qpb in
                            let sx = UnsafeSendable(px.baseAddress!), sg = UnsafeSendable(pg.baseAddress!)
                            let sdx = UnsafeSendable(UnsafePointer(qx.baseAddress!))
                            let spw = UnsafeSendable(UnsafePointer(qpw.baseAddress!)), spb = UnsafeSendable(UnsafePointer(qpb.baseAddress!))
                            let w = weight?.data
                            Parallel.forEach(n * groups) { ng in
                                let base = ng * size
                                let xs = sx.p + base, gs = sg.p + base
                                var s = 0.0, s2 = 0.0
                                for i in 0..<size { let v = Double(xs[i]); s += v; s2 += v * v }
                                let mean = s / Double(size)
                                let inv = 1 / (max(0, s2 / Double(size) - mean * mean) + Double(eps)).squareRoot()
                                let g = ng % groups, bi = ng / groups
                                var m1 = 0.0, m2 = 0.0
                                for cc in 0..<per {
                                    let ch = g * per + cc
                                    let wc = Double(w?[ch] ?? 1)
                                    var sw = 0.0, sb = 0.0
                                    for i in 0..<spatial {
                                        let j = cc * spatial + i
                                        let xh = (Double(xs[j]) - mean) * inv, gy = Double(gs[j])
                                        sw += gy * xh; sb += gy
                                        m1 += gy * wc; m2 += gy * wc * xh
                                    }
                                    UnsafeMutablePointer(mutating: spw.p)[bi * c + ch] = sw
                                    UnsafeMutablePointer(mutating: spb.p)[bi * c + ch] = sb
                                }
                                m1 /= Double(size); m2 /= Double(size)
                                let d = UnsafeMutablePointer(mutating: sdx.p) + base
                                for cc in 0..<per {
                                    let wc = Double(w?[g * per + cc] ?? 1)
                                    for i in 0..<spatial {
                                        let j = cc * spatial + i
                                        let xh = (Double(xs[j]) - mean) * inv
                                        d[j] = Float(inv * (Double(gs[j]) * wc - m1 - xh * m2))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        var dW = [Float](), db = [Float]()
        if weight != nil {
            dW = (0..<c).map { ch in Float((0..<n).reduce(0.0) { $0 + pw[$1 * c + ch] }) }
            db = (0..<c).map { ch in Float((0..<n).reduce(0.0) { $0 + pb[$1 * c + ch] }) }
        }
        return (Tensor(shape: x.shape, data: dx), Tensor(shape: [dW.count], data: dW), Tensor(shape: [db.count], data: db))
    }

    /// LayerNorm over the last axis. `weight` nil = elementwise_affine=False. Rows run in parallel in fixed pieces;
    /// dW / db are summed per piece and the pieces added in order (thread-count independent).
    public static func layerNormBackward(
        x: Tensor, eps: Float, weight: Tensor?, dy: Tensor
    )
        -> (dx: Tensor, dW: Tensor, db: Tensor)
    {
        let d = x.dim(-1), rows = x.count / max(d, 1)
        var dx = [Float](repeating: 0, count: x.count)
        let hasW = weight != nil
        let grain = Parallel.grain(rowWidth: d), pieces = (rows + grain - 1) / grain
        var partW = [Double](repeating: 0, count: hasW ? pieces * d : 0), partB = partW
        let w = weight?.data ?? [Float](repeating: 1, count: d)
        if rows > 0 && d > 0 {
            x.data.withUnsafeBufferPointer { px in
                dy.data.withUnsafeBufferPointer { pg in
                    dx.withUnsafeMutableBufferPointer { qx in
                        partW.withUnsafeMutableBufferPointer { qw in
                            partB.withUnsafeMutableBufferPointer { qb in
                                let sx = UnsafeSendable(px.baseAddress!), sg = UnsafeSendable(pg.baseAddress!)
                                let sdx = UnsafeMutableSendable(qx.baseAddress!)
                                // (An empty array may still have a base address: only the affine case has partial sums to write.)
                                let sw = hasW ? qw.baseAddress.map(UnsafeMutableSendable.init) : nil
                                let sb = hasW ? qb.baseAddress.map(UnsafeMutableSendable.init) : nil
                                Parallel.forPieces(rows, grain: grain) { piece, range in
                                    var xh = [Double](repeating: 0, count: d)
                                    for r in range {
                                        let xs = sx.p + r * d, gs = sg.p + r * d
                                        var s = 0.0
                                        for i in 0..<d { s += Double(xs[i]) }
                                        let mean = s / Double(d)
                                        var v = 0.0
                                        for i in 0..<d { let t = Double(xs[i]) - mean; v += t * t }
                                        let inv = 1 / (v / Double(d) + Double(eps)).squareRoot()
                                        var m1 = 0.0, m2 = 0.0
                                        for i in 0..<d {
                                            xh[i] = (Double(xs[i]) - mean) * inv
                                            let gh = Double(gs[i]) * Double(w[i])
                                            m1 += gh; m2 += gh * xh[i]
                                        }
                                        if let sw, let sb {
                                            let pw = sw.p + piece * d, pb = sb.p + piece * d
                                            for i in 0..<d { let g = Double(gs[i]); pw[i] += g * xh[i]; pb[i] += g }
                                        }
                                        m1 /= Double(d); m2 /= Double(d)
                                        for i in 0..<d {
                                            let gh = Double(gs[i]) * Double(w[i])
                                            sdx.p[r * d + i] = Float(inv * (gh - m1 - xh[i] * m2))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        guard hasW else { return (Tensor(shape: x.shape, data: dx), Tensor(shape: [0], data: []), Tensor(shape: [0], data: [])) }
        var dW = [Float](repeating: 0, count: d), db = [Float](repeating: 0, count: d)
        for i in 0..<d {
            var a = 0.0, c = 0.0
            for p in 0..<pieces { a += partW[p * d + i]; c += partB[p * d + i] }
            dW[i] = Float(a); db[i] = Float(c)
        }
        return (Tensor(shape: x.shape, data: dx), Tensor(shape: [d], data: dW), Tensor(shape: [d], data: db))
    }
}
