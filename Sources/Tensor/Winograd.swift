import CBLAS
import CKernels
import Foundation

/// A 3x3 stride-1 convolution by Winograd's minimal filtering F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for
/// Convolutional Neural Networks", 2015): each 4x4 output tile is A^T [(G g G^T) ⊙ (B^T d B)] A, so a tile costs 36
/// multiplies per (input, output) channel pair instead of 144, and the multiplies are 36 independent sgemm calls
/// (one per position xi of the 6x6 transformed tile: U[xi] (cout x cin) times V[xi] (cin x tiles)). The transforms
/// are in CKernels (winograd.c); no im2col buffer (9 x the input) is written.
///
/// Determinism: tiles are processed in chunks of whole tile rows whose size depends only on the shape, each product
/// is one single-threaded sgemm call, and every transform is a fixed sequence of operations, so the output does not
/// depend on the thread count or on the other images of a batch. It differs from the im2col route by float rounding.
enum WinogradF43 {
    /// The shapes this route takes: 3x3, stride 1, an output of at least one full tile, and enough input channels
    /// for the 36 products to be worth their calls (few output channels are fine: a decoder's last conv to RGB
    /// spent 0.5 s writing its 9 x 160-channel im2col matrix at 256 x 256).
    static func applies(_ g: ConvGeometry, outChannels cout: Int) -> Bool {
        g.kh == 3 && g.kw == 3 && g.stride == 1 && g.ho >= 4 && g.wo >= 4 && g.cin >= 8
    }

    /// U = G g G^T for every (output, input) channel pair: [36, cout, cin].
    static func transformWeights(_ weight: UnsafePointer<Float>, cout: Int, cin: Int) -> [Float] {
        let pairs = cout * cin
        var u = Tensor.unfilled(36 * pairs)  // every entry is written
        u.withUnsafeMutableBufferPointer { pu in
            let dst = UnsafeSendable(UnsafePointer(pu.baseAddress!)), src = UnsafeSendable(weight)
            Parallel.forPieces(pairs, grain: 4096) { _, range in
                varlab_winograd_f43_weights(
                    Int32(cout), Int32(cin), Int32(range.lowerBound), Int32(range.upperBound), src.p,
                    UnsafeMutablePointer(mutating: dst.p))
            }
        }
        return u
    }

    /// Tile rows per chunk: about 2^21 floats in each of the two transformed buffers (V and M), at least one row
    /// (2^20 to 2^24 timed within 5% of each other for 160 channels at 256 x 256 on an AMD EPYC Zen 2).
    static func tileRowsPerChunk(_ g: ConvGeometry, cout: Int) -> Int {
        let tilesW = (g.wo + 3) / 4
        return max(1, (1 << 21) / (36 * max(g.cin, cout) * tilesW))
    }

    /// The batch `x` [n, cin, h, w] into `y` [n, cout, ho, wo], one image at a time (the transform buffers are
    /// shared), with `u` from `transformWeights`.
    static func forward(
        _ x: UnsafePointer<Float>, geometry g: ConvGeometry, u: UnsafePointer<Float>, cout: Int,
        bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>
    ) {
        BLAS.setUp()
        let cin = g.cin
        let tilesW = (g.wo + 3) / 4, tilesH = (g.ho + 3) / 4
        let rowsPerChunk = tileRowsPerChunk(g, cout: cout)
        Profiler.countSavedFLOPs(
            Double(g.n) * 2 * Double(cout) * Double(cin) * (9 * Double(g.ho * g.wo) - 36 * Double(tilesH * tilesW)))
        let maxTiles = min(tilesH, rowsPerChunk) * tilesW
        var v = Tensor.unfilled(36 * cin * maxTiles)
        var m = Tensor.unfilled(36 * cout * maxTiles)
        v.withUnsafeMutableBufferPointer { pv in
            m.withUnsafeMutableBufferPointer { pm in
                let vs = UnsafeSendable(UnsafePointer(pv.baseAddress!)), ms = UnsafeSendable(UnsafePointer(pm.baseAddress!))
                let us = UnsafeSendable(u)
                let bs = bias.map { UnsafeSendable($0) }
                for (img, row0) in (0..<g.n).flatMap({ i in stride(from: 0, to: tilesH, by: rowsPerChunk).map { (i, $0) } }) {
                    let xs = UnsafeSendable(x + img * cin * g.h * g.w)
                    let ys = UnsafeSendable(UnsafePointer(y + img * cout * g.plane))
                    let rows = min(rowsPerChunk, tilesH - row0), tiles = rows * tilesW
                    do {
                        let profile = Profiler.begin(.winograd)
                        Parallel.forPieces(cin, grain: 4) { _, cs in
                            varlab_winograd_f43_input(
                                xs.p, Int32(g.h), Int32(g.w), Int32(g.top), Int32(g.left), Int32(tilesW), Int32(row0),
                                Int32(rows), Int32(cs.lowerBound), Int32(cs.upperBound), Int32(cin),
                                UnsafeMutablePointer(mutating: vs.p), Int32(tiles))
                        }
                        Profiler.end(profile)
                    }
                    do {
                        let profile = Profiler.begin(.matmul)
                        Profiler.countGEMM(m: 36 * cout, n: tiles, k: cin)  // the 36 products' FLOPs
                        Parallel.forEach(36) { xi in
                            cblas_sgemm(
                                CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(cout), Int32(tiles), Int32(cin), 1,
                                us.p + xi * cout * cin, Int32(cin), vs.p + xi * cin * tiles, Int32(tiles), 0,
                                UnsafeMutablePointer(mutating: ms.p) + xi * cout * tiles, Int32(tiles))
                        }
                        Profiler.end(profile)
                    }
                    do {
                        let profile = Profiler.begin(.winograd)
                        Parallel.forPieces(cout, grain: 4) { _, ks in
                            varlab_winograd_f43_output(
                                ms.p, Int32(tiles), Int32(cout), Int32(tilesW), Int32(row0), Int32(rows), Int32(g.ho),
                                Int32(g.wo), Int32(ks.lowerBound), Int32(ks.upperBound), bs?.p,
                                UnsafeMutablePointer(mutating: ys.p))
                        }
                        Profiler.end(profile)
                    }
                }
            }
        }
    }
}
