import Foundation

extension DiTConfig {
    /// Multiply-adds x2 of one forward on one image: the linears of every block and the attention products.
    public var forwardFLOPs: Double {
        let c = self
        let t = Double(c.numPatches), d = Double(c.hiddenSize), m = Double(c.mlpHiddenSize)
        let perBlock = 2 * t * (3 * d * d + d * d + 2 * d * m) + 2 * 2 * t * t * d
        let final = 2 * t * d * Double(c.patchSize * c.patchSize * c.outChannels)
        return Double(c.depth) * perBlock + final
    }
}
