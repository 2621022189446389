import Foundation

/// The official state dict's names and shapes (random-weight models for benchmarks) and the decoder's cost.
extension VQVAEConfig {
    /// Official VQVAE state-dict names and shapes (taming encoder/decoder + quantiser).
    public var stateDictShapes: [(String, [Int])] {
        let c = self
        var s: [(String, [Int])] = []
        func conv(_ n: String, _ cin: Int, _ cout: Int, _ k: Int = 3) { s += [(n + ".weight", [cout, cin, k, k]), (n + ".bias", [cout])] }
        func norm(_ n: String, _ ch: Int) { s += [(n + ".weight", [ch]), (n + ".bias", [ch])] }
        func res(_ p: String, _ cin: Int, _ cout: Int) {
            norm(p + "norm1", cin); conv(p + "conv1", cin, cout); norm(p + "norm2", cout); conv(p + "conv2", cout, cout)
            if cin != cout { conv(p + "nin_shortcut", cin, cout, 1) }
        }
        func attn(_ p: String, _ ch: Int) { norm(p + "norm", ch); conv(p + "qkv", ch, 3 * ch, 1); conv(p + "proj_out", ch, ch, 1) }
        let levels = c.chMult.count
        conv("encoder.conv_in", c.inChannels, c.ch)
        var blockIn = c.ch
        let inMult = [1] + c.chMult
        for l in 0..<levels {
            blockIn = c.ch * inMult[l]
            let out = c.ch * c.chMult[l]
            for b in 0..<c.numResBlocks {
                res("encoder.down.\(l).block.\(b).", blockIn, out); blockIn = out
                if l == levels - 1 && c.attnAtLowest { attn("encoder.down.\(l).attn.\(b).", out) }
            }
            if l != levels - 1 { conv("encoder.down.\(l).downsample.conv", blockIn, blockIn) }
        }
        res("encoder.mid.block_1.", blockIn, blockIn); attn("encoder.mid.attn_1.", blockIn); res("encoder.mid.block_2.", blockIn, blockIn)
        norm("encoder.norm_out", blockIn); conv("encoder.conv_out", blockIn, c.zChannels)
        blockIn = c.ch * c.chMult.last!
        conv("decoder.conv_in", c.zChannels, blockIn)
        res("decoder.mid.block_1.", blockIn, blockIn); attn("decoder.mid.attn_1.", blockIn); res("decoder.mid.block_2.", blockIn, blockIn)
        for l in stride(from: levels - 1, through: 0, by: -1) {
            let out = c.ch * c.chMult[l]
            for b in 0...c.numResBlocks {
                res("decoder.up.\(l).block.\(b).", blockIn, out); blockIn = out
                if l == levels - 1 && c.attnAtLowest { attn("decoder.up.\(l).attn.\(b).", out) }
            }
            if l != 0 { conv("decoder.up.\(l).upsample.conv", blockIn, blockIn) }
        }
        norm("decoder.norm_out", blockIn); conv("decoder.conv_out", blockIn, c.inChannels)
        for k in 0..<4 { conv("quantize.quant_resi.qresi_ls.\(k)", c.zChannels, c.zChannels) }
        s.append(("quantize.embedding.weight", [c.vocabSize, c.zChannels]))
        conv("quant_conv", c.zChannels, c.zChannels); conv("post_quant_conv", c.zChannels, c.zChannels)
        return s
    }

    /// Conv + attention FLOPs of post_quant_conv + decoder for one image.
    public func decoderFLOPs(latent: Int) -> Double {
        let c = self
        func conv(_ cin: Int, _ cout: Int, _ k: Int, _ hw: Int) -> Double { 2 * Double(cin * cout * k * k) * Double(hw * hw) }
        func res(_ cin: Int, _ cout: Int, _ hw: Int) -> Double {
            conv(cin, cout, 3, hw) + conv(cout, cout, 3, hw) + (cin != cout ? conv(cin, cout, 1, hw) : 0)
        }
        func attn(_ ch: Int, _ hw: Int) -> Double {
            let n = Double(hw * hw); return 4 * 2 * Double(ch * ch) * n + 2 * 2 * n * n * Double(ch)
        }
        var hw = latent
        var blockIn = c.ch * c.chMult.last!
        var f = conv(c.zChannels, c.zChannels, 3, hw) + conv(c.zChannels, blockIn, 3, hw)
        f += 2 * res(blockIn, blockIn, hw) + (c.midAttn ? attn(blockIn, hw) : 0)
        for l in stride(from: c.chMult.count - 1, through: 0, by: -1) {
            let out = c.ch * c.chMult[l]
            for _ in 0...c.numResBlocks {
                f += res(blockIn, out, hw); blockIn = out
                if l == c.chMult.count - 1 && c.attnAtLowest { f += attn(out, hw) }
            }
            if l != 0 { hw *= 2; f += conv(blockIn, blockIn, 3, hw) }
        }
        return f + conv(blockIn, c.inChannels, 3, hw)
    }
}
