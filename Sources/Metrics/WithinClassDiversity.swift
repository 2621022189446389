import Foundation
import Tensor

/// How varied the images of one class are: the mean Euclidean distance between the features of two different
/// images of the same class, averaged over the classes (each class weighs the same). Compared with the same
/// number for real images, it says whether a generator draws each class in fewer ways than the data has (the
/// doubt that one pass per scale costs VAR diversity), which FID mixes with fidelity.
public enum WithinClassDiversity {
    /// nil when no class has two images.
    public static func meanPairwiseDistance(features: Tensor, labels: [Int]) throws -> Double? {
        guard features.rank == 2, features.shape[0] == labels.count else {
            throw MetricsError.input("diversity: \(features.shape) features for \(labels.count) labels")
        }
        let d = features.shape[1]
        let f = features.data
        var perClass: [Double] = []
        for c in Set(labels).sorted() {
            let idx = labels.indices.filter { labels[$0] == c }
            guard idx.count >= 2 else { continue }
            var sum = 0.0
            var pairs = 0
            for a in 0..<idx.count {
                for b in (a + 1)..<idx.count {
                    var s = 0.0
                    let pa = idx[a] * d, pb = idx[b] * d
                    for j in 0..<d {
                        let x = Double(f[pa + j] - f[pb + j])
                        s += x * x
                    }
                    sum += s.squareRoot()
                    pairs += 1
                }
            }
            perClass.append(sum / Double(pairs))
        }
        return perClass.isEmpty ? nil : perClass.reduce(0, +) / Double(perClass.count)
    }
}
