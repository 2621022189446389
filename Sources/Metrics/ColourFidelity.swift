import Foundation
import ImageIO

/// How well a reconstruction keeps colour: per channel, the mean over image pairs of |mean(original) -
/// mean(reconstruction)|, in 8-bit levels. A tokenizer that drops colour (R = G = B everywhere) scores tens of
/// levels here while its reconstructions still look sharp; the built-in tokenizer's bar is 3 (issue 14).
public enum ColourFidelity {
    public static func meanColourError(originals: [Image8], reconstructions: [Image8]) throws -> [Double] {
        guard originals.count == reconstructions.count, !originals.isEmpty else {
            throw MetricsError.input(
                "mean-colour error needs pairs: \(originals.count) originals, \(reconstructions.count) reconstructions")
        }
        var err = [0.0, 0.0, 0.0]
        for (a, b) in zip(originals, reconstructions) {
            guard a.channels == 3, b.channels == 3, a.width == b.width, a.height == b.height else {
                throw MetricsError.input(
                    "mean-colour error needs RGB pairs of one size: \(a.width)x\(a.height)x\(a.channels) vs \(b.width)x\(b.height)x\(b.channels)"
                )
            }
            let ma = meanColour(a), mb = meanColour(b)
            for c in 0..<3 { err[c] += abs(ma[c] - mb[c]) }
        }
        return err.map { $0 / Double(originals.count) }
    }

    /// Mean R, G, B of an RGB image, in 8-bit levels.
    public static func meanColour(_ image: Image8) -> [Double] {
        var sum = [0.0, 0.0, 0.0]
        for i in stride(from: 0, to: image.pixels.count, by: 3) {
            sum[0] += Double(image.pixels[i]); sum[1] += Double(image.pixels[i + 1]); sum[2] += Double(image.pixels[i + 2])
        }
        let n = Double(image.width * image.height)
        return sum.map { $0 / n }
    }
}
