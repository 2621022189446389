import Foundation
import ModelIO
import Tensor

/// The FID InceptionV3: the TensorFlow `inception-2015-12-05` graph as ported by pytorch-fid
/// (`pytorch_fid.inception.fid_inception_v3`), which every standard FID tool uses.
///
/// Structure (torchvision Inception3 with pytorch-fid's patched blocks):
/// stem `Conv2d_1a_3x3` (stride 2) / `2a` / `2b` (pad 1) / max pool 3,2 / `3b_1x1` / `4a_3x3` / max pool 3,2;
/// `Mixed_5b/5c/5d` = FIDInceptionA, `Mixed_6a` = torchvision InceptionB, `Mixed_6b..6e` = FIDInceptionC,
/// `Mixed_7a` = torchvision InceptionD, `Mixed_7b` = FIDInceptionE_1, `Mixed_7c` = FIDInceptionE_2; global average
/// pool -> pool3 (2048). Every conv is conv (no bias) -> BatchNorm(eps 0.001) -> ReLU. The pool branches of the
/// FID blocks average with `count_include_pad=False`; the one of E_2 (Mixed_7c) is a **max** pool — both are
/// what the TF graph does and differ from torchvision's Inception3.
///
/// Weights: the state dict of pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` under its own key names
/// (torchvision names), from the .pth or a safetensors conversion. Channel counts are read from the weights.
///
/// The 1008-way head (`fc`, 1008 = the TF graph's classes incl. 8 unused): the TF graph and ADM's evaluator
/// compute the Inception-Score softmax from `pool3 @ fc.weight^T` WITHOUT the bias (ADM's softmax graph takes only
/// the MatMul weight of `softmax/logits`; torch-fidelity's "logits_unbiased" is the same), so `logits(_:bias:)`
/// defaults to no bias and the Inception Score uses that. With `bias: true` it is torchvision's `fc(pool3)`
/// (pytorch-fid never uses the head).
///
/// Not offered as an ImageNet classifier: the 1008 outputs are indexed by the TF graph's own label map
/// (`imagenet_2012_challenge_label_map_proto.pbtxt`, ids 1..1000 in synset order of that map plus unused ids),
/// and we have no verified source for an exact index mapping to the 1000 torchvision/ILSVRC class indices that
/// the samples' labels use; an approximate mapping would give silently wrong accuracies.
public final class InceptionV3: @unchecked Sendable {
    public static let bnEps: Float = 1e-3
    /// Input side the network was trained at (the resize target of both preprocessing modes).
    public static let inputSize = 299
    /// sFID: the first 7 channels of `mixed_6/conv` (17 x 17 spatial) -> 2023 values.
    public static let spatialChannels = 7

    let stem: [ConvBN]  // 1a, 2a, 2b, 3b, 4a
    let mixed5: [BlockA]
    let mixed6a: BlockB
    let mixed6: [BlockC]
    let mixed7a: BlockD
    let mixed7b: BlockE
    let mixed7c: BlockE
    public let fcWeight: Tensor  // [classes, 2048]
    public let fcBias: Tensor?  // [classes]
    public let path: String

    public var featureWidth: Int { mixed7c.outChannels }
    public var classes: Int { fcWeight.shape[0] }

    /// Reads the weights; a leading "module." (DataParallel) is accepted.
    public convenience init(path: String) throws {
        var archive = try CheckpointLoader.open(path: path)
        if !archive.contains("Conv2d_1a_3x3.conv.weight") && archive.contains("module.Conv2d_1a_3x3.conv.weight") {
            archive = PrefixedArchive(archive, prefix: "module.")
        }
        try self.init(archive: archive)
    }

    public init(archive a: TensorArchive) throws {
        path = a.path
        func cbn(_ name: String, stride: Int = 1, same: Bool) throws -> ConvBN {
            try ConvBN.load(a, conv: name + ".conv", bn: name + ".bn", eps: InceptionV3.bnEps, stride: stride, same: same)
        }
        var chain = ShapeChain(path: a.path, channels: 3)
        stem = [
            try cbn("Conv2d_1a_3x3", stride: 2, same: false), try cbn("Conv2d_2a_3x3", same: false),
            try cbn("Conv2d_2b_3x3", same: true), try cbn("Conv2d_3b_1x1", same: false),
            try cbn("Conv2d_4a_3x3", same: false),
        ]
        for (i, c) in stem.enumerated() { try chain.feed(c, "stem conv \(i)"); chain.channels = c.outChannels }
        mixed5 = try ["Mixed_5b", "Mixed_5c", "Mixed_5d"].map { try BlockA(prefix: $0, load: cbn) }
        for b in mixed5 { try chain.block(b.inputs, b.links, b.outChannels, b.prefix) }
        mixed6a = try BlockB(prefix: "Mixed_6a", load: cbn)
        try chain.block(mixed6a.inputs, mixed6a.links, mixed6a.outChannels(chain.channels), "Mixed_6a")
        mixed6 = try ["Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"].map { try BlockC(prefix: $0, load: cbn) }
        for b in mixed6 { try chain.block(b.inputs, b.links, b.outChannels, b.prefix) }
        mixed7a = try BlockD(prefix: "Mixed_7a", load: cbn)
        try chain.block(mixed7a.inputs, mixed7a.links, mixed7a.outChannels(chain.channels), "Mixed_7a")
        mixed7b = try BlockE(prefix: "Mixed_7b", maxPool: false, load: cbn)
        try chain.block(mixed7b.inputs, mixed7b.links, mixed7b.outChannels, "Mixed_7b")
        mixed7c = try BlockE(prefix: "Mixed_7c", maxPool: true, load: cbn)
        try chain.block(mixed7c.inputs, mixed7c.links, mixed7c.outChannels, "Mixed_7c")
        fcWeight = try a.floatTensor("fc.weight", shape: [-1, chain.channels])
        fcBias = a.contains("fc.bias") ? try a.floatTensor("fc.bias", shape: [fcWeight.shape[0]]) : nil
        guard mixed6.count > 2, mixed6[2].b1x1.outChannels >= InceptionV3.spatialChannels else {
            throw CheckpointError.malformed(path: a.path, reason: "Mixed_6d.branch1x1 has fewer than 7 channels (sFID needs them)")
        }
    }

    /// What one forward pass gives.
    public struct Output: Sendable {
        /// [N, 2048] global average pool of Mixed_7c (pytorch-fid's features, TF `pool_3`).
        public var pool3: Tensor
        /// [N, 2023] ReLU output of Mixed_6d.branch1x1, first 7 channels, NHWC order (TF `mixed_6/conv`[..., :7]).
        public var spatial: Tensor
    }

    /// Forward on preprocessed input [N, 3, 299, 299] (see `InceptionPreprocessing`).
    public func callAsFunction(_ input: Tensor) -> Output {
        precondition(input.rank == 4 && input.shape[1] == 3, "InceptionV3 expects [N, 3, H, W], got \(input.shape)")
        var x = input
        x = stem[0](x); x = stem[1](x); x = stem[2](x)
        x = x.maxPool2d(kernel: 3, stride: 2)
        x = stem[3](x); x = stem[4](x)
        x = x.maxPool2d(kernel: 3, stride: 2)
        for b in mixed5 { x = b(x) }
        x = mixed6a(x)
        var spatialMap: Tensor? = nil
        for (i, b) in mixed6.enumerated() {
            let (y, b1) = b.forward(x)
            if i == 2 { spatialMap = b1 }  // Mixed_6d
            x = y
        }
        x = mixed7a(x)
        x = mixed7b(x)
        x = mixed7c(x)
        let pool3 = x.globalAvgPool()
        return Output(pool3: pool3, spatial: InceptionV3.spatialFeatures(spatialMap!))
    }

    /// [N, C, H, W] -> [N, H * W * 7]: the first 7 channels in NHWC order.
    static func spatialFeatures(_ m: Tensor) -> Tensor {
        let (n, c, h, w) = (m.shape[0], m.shape[1], m.shape[2], m.shape[3])
        let k = spatialChannels
        var out = [Float](repeating: 0, count: n * h * w * k)
        for b in 0..<n {
            for ch in 0..<k {
                for p in 0..<(h * w) {
                    out[(b * h * w + p) * k + ch] = m.data[(b * c + ch) * h * w + p]
                }
            }
        }
        return Tensor(shape: [n, h * w * k], data: out)
    }

    /// The 1008-way logits of pool3 features [N, 2048]. `bias: false` (default) is what ADM's Inception Score
    /// uses (`pool3 @ W^T`); `bias: true` is torchvision's `fc(pool3)`.
    public func logits(_ pool3: Tensor, bias: Bool = false) -> Tensor {
        Linear(weight: fcWeight, bias: bias ? fcBias : nil)(pool3)
    }
}

/// Checks at load time that every block's input channels match the previous output (a mismatched checkpoint
/// gives an error naming the block instead of a crash in the forward pass).
struct ShapeChain {
    let path: String
    var channels: Int
    mutating func feed(_ c: ConvBN, _ what: String) throws {
        guard c.inChannels == channels else {
            throw CheckpointError.malformed(
                path: path, reason: "\(what) expects \(c.inChannels) input channels, previous layer gives \(channels)")
        }
    }
    mutating func block(_ inputs: [ConvBN], _ links: [(ConvBN, ConvBN)], _ out: Int, _ what: String) throws {
        for c in inputs { try feed(c, what) }
        for (a, b) in links where a.outChannels != b.inChannels {
            throw CheckpointError.malformed(
                path: path, reason: "\(what): a conv expects \(b.inChannels) input channels, the one before it gives \(a.outChannels)")
        }
        channels = out
    }
}

private func cat1(_ parts: [Tensor]) -> Tensor { Tensor.cat(parts, dim: 1) }

/// FIDInceptionA (Mixed_5b/5c/5d).
struct BlockA {
    let prefix: String
    let b1x1, b5x5_1, b5x5_2, dbl1, dbl2, dbl3, pool: ConvBN
    init(prefix p: String, load: (String, Int, Bool) throws -> ConvBN) throws {
        prefix = p
        b1x1 = try load(p + ".branch1x1", 1, false)
        b5x5_1 = try load(p + ".branch5x5_1", 1, false); b5x5_2 = try load(p + ".branch5x5_2", 1, true)
        dbl1 = try load(p + ".branch3x3dbl_1", 1, false); dbl2 = try load(p + ".branch3x3dbl_2", 1, true)
        dbl3 = try load(p + ".branch3x3dbl_3", 1, true)
        pool = try load(p + ".branch_pool", 1, false)
    }
    var inputs: [ConvBN] { [b1x1, b5x5_1, dbl1, pool] }
    var links: [(ConvBN, ConvBN)] { [(b5x5_1, b5x5_2), (dbl1, dbl2), (dbl2, dbl3)] }
    var outChannels: Int { b1x1.outChannels + b5x5_2.outChannels + dbl3.outChannels + pool.outChannels }
    func callAsFunction(_ x: Tensor) -> Tensor {
        cat1([
            b1x1(x), b5x5_2(b5x5_1(x)), dbl3(dbl2(dbl1(x))),
            pool(x.avgPool2d(kernel: 3, stride: 1, padding: 1, countIncludePad: false)),
        ])
    }
}

/// torchvision InceptionB (Mixed_6a), unpatched.
struct BlockB {
    let b3x3, dbl1, dbl2, dbl3: ConvBN
    init(prefix p: String, load: (String, Int, Bool) throws -> ConvBN) throws {
        b3x3 = try load(p + ".branch3x3", 2, false)
        dbl1 = try load(p + ".branch3x3dbl_1", 1, false); dbl2 = try load(p + ".branch3x3dbl_2", 1, true)
        dbl3 = try load(p + ".branch3x3dbl_3", 2, false)
    }
    var inputs: [ConvBN] { [b3x3, dbl1] }
    var links: [(ConvBN, ConvBN)] { [(dbl1, dbl2), (dbl2, dbl3)] }
    func outChannels(_ inChannels: Int) -> Int { b3x3.outChannels + dbl3.outChannels + inChannels }
    func callAsFunction(_ x: Tensor) -> Tensor {
        cat1([b3x3(x), dbl3(dbl2(dbl1(x))), x.maxPool2d(kernel: 3, stride: 2)])
    }
}

/// FIDInceptionC (Mixed_6b..6e).
struct BlockC {
    let prefix: String
    let b1x1, b7_1, b7_2, b7_3, d1, d2, d3, d4, d5, pool: ConvBN
    init(prefix p: String, load: (String, Int, Bool) throws -> ConvBN) throws {
        prefix = p
        b1x1 = try load(p + ".branch1x1", 1, false)
        b7_1 = try load(p + ".branch7x7_1", 1, false); b7_2 = try load(p + ".branch7x7_2", 1, true)
        b7_3 = try load(p + ".branch7x7_3", 1, true)
        d1 = try load(p + ".branch7x7dbl_1", 1, false); d2 = try load(p + ".branch7x7dbl_2", 1, true)
        d3 = try load(p + ".branch7x7dbl_3", 1, true); d4 = try load(p + ".branch7x7dbl_4", 1, true)
        d5 = try load(p + ".branch7x7dbl_5", 1, true)
        pool = try load(p + ".branch_pool", 1, false)
    }
    var inputs: [ConvBN] { [b1x1, b7_1, d1, pool] }
    var links: [(ConvBN, ConvBN)] { [(b7_1, b7_2), (b7_2, b7_3), (d1, d2), (d2, d3), (d3, d4), (d4, d5)] }
    var outChannels: Int { b1x1.outChannels + b7_3.outChannels + d5.outChannels + pool.outChannels }
    /// Returns the block output and the branch1x1 output (the sFID tap for Mixed_6d).
    func forward(_ x: Tensor) -> (Tensor, Tensor) {
        let a = b1x1(x)
        return (
            cat1([
                a, b7_3(b7_2(b7_1(x))), d5(d4(d3(d2(d1(x))))),
                pool(x.avgPool2d(kernel: 3, stride: 1, padding: 1, countIncludePad: false)),
            ]), a
        )
    }
}

/// torchvision InceptionD (Mixed_7a), unpatched.
struct BlockD {
    let b3_1, b3_2, b7_1, b7_2, b7_3, b7_4: ConvBN
    init(prefix p: String, load: (String, Int, Bool) throws -> ConvBN) throws {
        b3_1 = try load(p + ".branch3x3_1", 1, false); b3_2 = try load(p + ".branch3x3_2", 2, false)
        b7_1 = try load(p + ".branch7x7x3_1", 1, false); b7_2 = try load(p + ".branch7x7x3_2", 1, true)
        b7_3 = try load(p + ".branch7x7x3_3", 1, true); b7_4 = try load(p + ".branch7x7x3_4", 2, false)
    }
    var inputs: [ConvBN] { [b3_1, b7_1] }
    var links: [(ConvBN, ConvBN)] { [(b3_1, b3_2), (b7_1, b7_2), (b7_2, b7_3), (b7_3, b7_4)] }
    func outChannels(_ inChannels: Int) -> Int { b3_2.outChannels + b7_4.outChannels + inChannels }
    func callAsFunction(_ x: Tensor) -> Tensor {
        cat1([b3_2(b3_1(x)), b7_4(b7_3(b7_2(b7_1(x)))), x.maxPool2d(kernel: 3, stride: 2)])
    }
}

/// FIDInceptionE_1 (Mixed_7b, average pool without padded taps) and FIDInceptionE_2 (Mixed_7c, max pool).
struct BlockE {
    let b1x1, b3_1, b3_2a, b3_2b, d1, d2, d3a, d3b, pool: ConvBN
    let maxPool: Bool
    init(prefix p: String, maxPool: Bool, load: (String, Int, Bool) throws -> ConvBN) throws {
        self.maxPool = maxPool
        b1x1 = try load(p + ".branch1x1", 1, false)
        b3_1 = try load(p + ".branch3x3_1", 1, false)
        b3_2a = try load(p + ".branch3x3_2a", 1, true); b3_2b = try load(p + ".branch3x3_2b", 1, true)
        d1 = try load(p + ".branch3x3dbl_1", 1, false); d2 = try load(p + ".branch3x3dbl_2", 1, true)
        d3a = try load(p + ".branch3x3dbl_3a", 1, true); d3b = try load(p + ".branch3x3dbl_3b", 1, true)
        pool = try load(p + ".branch_pool", 1, false)
    }
    var inputs: [ConvBN] { [b1x1, b3_1, d1, pool] }
    var links: [(ConvBN, ConvBN)] { [(b3_1, b3_2a), (b3_1, b3_2b), (d1, d2), (d2, d3a), (d2, d3b)] }
    var outChannels: Int {
        b1x1.outChannels + b3_2a.outChannels + b3_2b.outChannels + d3a.outChannels + d3b.outChannels + pool.outChannels
    }
    func callAsFunction(_ x: Tensor) -> Tensor {
        let t = b3_1(x)
        let d = d2(d1(x))
        let pooled =
            maxPool
            ? x.maxPool2d(kernel: 3, stride: 1, padding: 1)
            : x.avgPool2d(kernel: 3, stride: 1, padding: 1, countIncludePad: false)
        return cat1([b1x1(x), b3_2a(t), b3_2b(t), d3a(d), d3b(d), pool(pooled)])
    }
}
