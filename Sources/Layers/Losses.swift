import Foundation
import Tensor

/// Losses with their gradients. Sums in Double.
public enum Losses {
    /// Softmax cross-entropy of logits [N, C] against integer labels. With `weights` nil the loss is the mean over
    /// rows (nn.CrossEntropyLoss); otherwise Σ wᵢ CEᵢ (e.g. VAR's 1/L per token). Returns (loss, dlogits, correct).
    public static func softmaxCrossEntropy(
        logits: Tensor, labels: [Int], weights: [Float]? = nil
    )
        -> (loss: Double, grad: Tensor, correct: Int)
    {
        let c = logits.dim(-1), n = logits.count / c
        precondition(labels.count == n, "cross-entropy: \(labels.count) labels for \(n) rows")
        var grad = Tensor.unfilled(logits.count)  // every row written below
        // Rows in parallel, in fixed pieces; per-piece loss / correct counts are added in piece order.
        let grain = Parallel.grain(rowWidth: c), pieces = (n + grain - 1) / grain
        var pieceLoss = [Double](repeating: 0, count: pieces), pieceCorrect = [Int](repeating: 0, count: pieces)
        logits.data.withUnsafeBufferPointer { p in
            grad.withUnsafeMutableBufferPointer { q in
                pieceLoss.withUnsafeMutableBufferPointer { ql in
                    pieceCorrect.withUnsafeMutableBufferPointer { qc in
                        let sp = UnsafeSendable(p.baseAddress!), sq = UnsafeMutableSendable(q.baseAddress!)
                        let sl = UnsafeMutableSendable(ql.baseAddress!), sc = UnsafeMutableSendable(qc.baseAddress!)
                        Parallel.forPieces(n, grain: grain) { piece, range in
                            var e = [Double](repeating: 0, count: c)
                            var loss = 0.0, correct = 0
                            for r in range {
                                let row = sp.p + r * c, label = labels[r]
                                var mx = row[0], arg = 0
                                for j in 1..<c where row[j] > mx { mx = row[j]; arg = j }
                                if arg == label { correct += 1 }
                                var s = 0.0
                                for j in 0..<c { e[j] = exp(Double(row[j] - mx)); s += e[j] }
                                let wr = weights.map { Double($0[r]) } ?? 1 / Double(n)
                                loss += wr * (Double(mx) + log(s) - Double(row[label]))
                                let g = sq.p + r * c, ws = wr / s
                                for j in 0..<c { g[j] = Float(ws * e[j]) }
                                g[label] = Float(wr * (e[label] / s - 1))
                            }
                            sl.p[piece] = loss
                            sc.p[piece] = correct
                        }
                    }
                }
            }
        }
        return (pieceLoss.reduce(0, +), Tensor(shape: logits.shape, data: grad), pieceCorrect.reduce(0, +))
    }

    /// Mean squared error mean((a - b)²) and its gradient with respect to a (= -gradient w.r.t. b).
    public static func mse(_ a: Tensor, _ b: Tensor) -> (loss: Double, grad: Tensor) {
        precondition(a.count == b.count, "mse: \(a.shape) vs \(b.shape)")
        var s = 0.0
        var g = [Float](repeating: 0, count: a.count)
        let k = 2 / Double(a.count)
        for i in 0..<a.count {
            let d = Double(a.data[i]) - Double(b.data[i])
            s += d * d
            g[i] = Float(k * d)
        }
        return (s / Double(a.count), Tensor(shape: a.shape, data: g))
    }

    /// Σ_i w_i Σ_j (a_ij - b_ij)^2 / (N M): the mean squared error with a weight per sample (leading axis, N
    /// samples of M elements); all weights 1 = `mse`.
    public static func weightedMSE(_ a: Tensor, _ b: Tensor, sampleWeights w: [Float]) -> (loss: Double, grad: Tensor) {
        precondition(
            a.count == b.count && a.shape[0] == w.count && a.count % w.count == 0,
            "weightedMSE: \(a.shape) vs \(b.shape), \(w.count) weights")
        let m = a.count / w.count
        var s = 0.0
        var g = [Float](repeating: 0, count: a.count)
        let k = 2 / Double(a.count)
        for i in 0..<w.count {
            let wi = Double(w[i])
            for j in i * m..<(i + 1) * m {
                let d = Double(a.data[j]) - Double(b.data[j])
                s += wi * d * d
                g[j] = Float(k * wi * d)
            }
        }
        return (s / Double(a.count), Tensor(shape: a.shape, data: g))
    }
}
