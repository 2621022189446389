import Foundation
import Tensor

/// Losses with their gradients. Sums in Double.
public enum Losses {
    /// Softmax cross-entropy of logits [N, C] against integer labels. With `weights` nil the loss is the mean over
    /// rows (nn.CrossEntropyLoss); otherwise Σ wᵢ CEᵢ (e.g. VAR's 1/L per token). Returns (loss, dlogits, correct).
    public static func softmaxCrossEntropy(logits: Tensor, labels: [Int], weights: [Float]? = nil)
        -> (loss: Double, grad: Tensor, correct: Int) {
        let c = logits.dim(-1), n = logits.count / c
        precondition(labels.count == n, "cross-entropy: \(labels.count) labels for \(n) rows")
        var grad = [Float](repeating: 0, count: logits.count)
        var loss = 0.0, correct = 0
        logits.data.withUnsafeBufferPointer { p in
            for r in 0..<n {
                let row = p.baseAddress! + r * c
                var mx = row[0], arg = 0
                for j in 1..<c where row[j] > mx { mx = row[j]; arg = j }
                if arg == labels[r] { correct += 1 }
                var s = 0.0
                for j in 0..<c { s += exp(Double(row[j] - mx)) }
                let lse = Double(mx) + log(s)
                let wr = weights.map { Double($0[r]) } ?? 1 / Double(n)
                loss += wr * (lse - Double(row[labels[r]]))
                for j in 0..<c {
                    let pj = exp(Double(row[j]) - lse)
                    grad[r * c + j] = Float(wr * (pj - (j == labels[r] ? 1 : 0)))
                }
            }
        }
        return (loss, Tensor(shape: logits.shape, data: grad), correct)
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
        precondition(a.count == b.count && a.shape[0] == w.count && a.count % w.count == 0, "weightedMSE: \(a.shape) vs \(b.shape), \(w.count) weights")
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
