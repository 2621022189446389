import Foundation
import ModelIO
import Tensor
import TestSupport
import XCTest

/// Builds pickles by hand (protocol 2 opcodes as torch.save writes them) for the synthetic checkpoints below.
struct PickleBuilder {
    var bytes: [UInt8] = [0x80, 0x02]
    mutating func op(_ b: UInt8) { bytes.append(b) }
    mutating func global(_ m: String, _ n: String) { op(0x63); bytes += Array((m + "\n" + n + "\n").utf8) }
    mutating func str(_ s: String) {
        let u = Array(s.utf8)
        op(0x58); bytes += withUnsafeBytes(of: UInt32(u.count).littleEndian, Array.init); bytes += u
    }
    /// BININT, or LONG1 (8 bytes, as pickle writes large ints) when it does not fit 32 bits.
    mutating func int(_ v: Int) {
        if let small = Int32(exactly: v) { op(0x4A); bytes += withUnsafeBytes(of: small.littleEndian, Array.init); return }
        op(0x8A); bytes.append(8); bytes += withUnsafeBytes(of: Int64(v).littleEndian, Array.init)
    }
    mutating func mark() { op(0x28) }
    mutating func tuple() { op(0x74) }
    mutating func ints(_ v: [Int]) { mark(); for x in v { int(x) }; tuple() }
    mutating func stop() { op(0x2E) }
    /// `_rebuild_tensor_v2(('storage', torch.<type>, key, 'cpu', numel), offset, size, stride, False, OrderedDict())`
    mutating func tensor(type: String, key: String, numel: Int, offset: Int, size: [Int], stride: [Int]) {
        global("torch._utils", "_rebuild_tensor_v2")
        mark()
        mark(); str("storage"); global("torch", type); str(key); str("cpu"); int(numel); tuple()
        op(0x51)  // BINPERSID
        int(offset); ints(size); ints(stride)
        op(0x89)  // False
        global("collections", "OrderedDict"); op(0x29); op(0x52)
        tuple()
        op(0x52)  // REDUCE
    }
    /// An OrderedDict of the given entries (each `value` closure pushes one value).
    mutating func dict(_ items: [(String, (inout PickleBuilder) -> Void)]) {
        global("collections", "OrderedDict"); op(0x29); op(0x52)
        mark()
        for (k, v) in items { str(k); v(&self) }
        op(0x75)  // SETITEMS
    }
}

final class TorchCheckpointTests: XCTestCase {
    var tmp: URL!
    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("varlab-pth-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }
    func file(_ n: String) -> String { tmp.appendingPathComponent(n).path }

    /// A torch zip checkpoint: `<name>/data.pkl`, `<name>/data/<key>` entries (stored), `<name>/byteorder`.
    func writeTorchZip(
        _ name: String, pickle: [UInt8], storages: [(String, Data)], extra: [(String, Data)] = [],
        deflate: Bool = false
    ) throws -> String {
        let p = file(name + ".pth")
        let archive = try ZipWriter(path: p)
        func add(_ path: String, _ d: Data) throws {
            try archive.add(name: path, size: d.count, deflate: deflate) { pos, size in d.subdata(in: pos..<pos + size) }
        }
        try add(name + "/data.pkl", Data(pickle))
        try add(name + "/byteorder", Data("little".utf8))
        for (k, d) in storages { try add(name + "/data/" + k, d) }
        for (k, d) in extra { try add(name + "/" + k, d) }
        try archive.finish()
        return p
    }

    // MARK: fixtures: every .pth / .pt equals its safetensors twin, bit for bit

    /// (torch file, key path, safetensors twin, factor applied to the twin's floats)
    static let twins: [(String, String?, String, Float)] = [
        ("var/var.pth", nil, "var/var.safetensors", 1),
        ("var/vqvae.pth", nil, "var/vqvae.safetensors", 1),  // twin is fp16; the fp32 values are fp16-exact
        ("dit/dit_legacy_format.pt", nil, "dit/dit.safetensors", 1),
        ("eval/dinov2_tiny_pretrain.pth", nil, "eval/dinov2_tiny.safetensors", 1),  // torch.hub's plain state dict
    ]
    /// dit_train_checkpoint.pt is checked separately (testTrainCheckpoint): its tensors are not those of
    /// dit.safetensors bit for bit, see there.
    static let otherTorchFiles = ["dit/dit_train_checkpoint.pt"]

    func testEveryTorchFixtureHasATwin() throws {
        let fm = FileManager.default
        let root = Fixtures.root.path
        let all = (fm.enumerator(atPath: root)?.compactMap { $0 as? String } ?? [])
            .filter { $0.hasSuffix(".pth") || $0.hasSuffix(".pt") || $0.hasSuffix(".ckpt") || $0.hasSuffix(".bin") }
        XCTAssertFalse(all.isEmpty)
        for f in all {
            XCTAssertTrue(Self.twins.contains { $0.0 == f } || Self.otherTorchFiles.contains(f), "\(f) has no twin in this test")
        }
        // The two extra containers are the ones extra_containers.json describes.
        let extra = try Fixtures.json("dit/extra_containers.json")
        for k in extra.keys { XCTAssertTrue(Self.twins.contains { $0.0 == "dit/" + k } || Self.otherTorchFiles.contains("dit/" + k), k) }
    }

    func testTorchFilesEqualTheirSafetensorsTwins() throws {
        for (torchFile, keyPath, twinFile, factor) in Self.twins {
            let a = try CheckpointLoader.open(path: Fixtures.path(torchFile), keyPath: keyPath)
            let b = try Fixtures.safetensors(twinFile)
            let label = torchFile + (keyPath.map { " [\($0)]" } ?? "")
            XCTAssertEqual(Set(a.keys), Set(b.keys), label)
            XCTAssertEqual(a.keys.count, b.keys.count, label)
            for k in b.keys {
                guard let ia = a.info(k), let ib = b.info(k) else { XCTFail("\(label): \(k) missing"); continue }
                XCTAssertEqual(ia.shape, ib.shape, "\(label) \(k)")
                if ib.dtype.isFloatingPoint {
                    XCTAssertTrue(ia.dtype.isFloatingPoint, "\(label) \(k)")
                    let ta = try a.floatTensor(k), tb = try b.floatTensor(k)
                    XCTAssertEqual(ta.shape, tb.shape)
                    let want = tb.data.map { $0 * factor }
                    // bit for bit (NaN-safe, and -inf in attn_bias_for_masking compares equal by bits)
                    let same = zip(ta.data, want).allSatisfy { $0.bitPattern == $1.bitPattern }
                    XCTAssertTrue(
                        same,
                        "\(label) \(k): values differ (max diff \(zip(ta.data, want).map { abs($0 - $1) }.filter { !$0.isNaN }.max() ?? 0))"
                    )
                } else {
                    XCTAssertEqual(ia.dtype, ib.dtype, "\(label) \(k)")
                    XCTAssertEqual(try a.intTensor(k).values, try b.intTensor(k).values, "\(label) \(k)")
                }
            }
        }
    }

    /// extra_containers.json says 'model' equals dit.safetensors exactly and 'ema' is it times 0.5. What the file
    /// holds (checked independently with Python's pickle + numpy on the raw storages) is 'model' = the weights
    /// after the one AdamW step whose state is in 'opt' (state_dict() returned the live parameters, which the
    /// step then updated before torch.save), and 'ema' = 0.5 x 'model' exactly. So: ema is checked bit for bit
    /// against 0.5 x model, and model against dit.safetensors within one step of size lr (lr from 'args').
    func testTrainCheckpoint() throws {
        let p = Fixtures.path("dit/dit_train_checkpoint.pt")
        let model = try CheckpointLoader.open(path: p, keyPath: "model")
        let ema = try CheckpointLoader.open(path: p, keyPath: "ema")
        let twin = try Fixtures.safetensors("dit/dit.safetensors")
        let args = try TorchCheckpoint(path: p).topLevelSummary.first { $0.key == "args" }?.summary ?? ""
        guard let lrText = args.components(separatedBy: "lr=").last?.prefix(while: { "0123456789.e-".contains($0) }),
            let lr = Float(lrText)
        else { return XCTFail("no lr in args: \(args)") }
        XCTAssertEqual(Set(model.keys), Set(twin.keys))
        XCTAssertEqual(Set(ema.keys), Set(twin.keys))
        var maxStep: Float = 0
        for k in twin.keys {
            let m = try model.floatTensor(k), e = try ema.floatTensor(k), t = try twin.floatTensor(k)
            XCTAssertEqual(m.shape, t.shape, k)
            XCTAssertTrue(zip(e.data, m.data).allSatisfy { $0.bitPattern == ($1 * 0.5).bitPattern }, "ema \(k) != 0.5 * model")
            maxStep = max(maxStep, m.maxAbsDiff(t))
        }
        // AdamW's first step moves each weight by lr * (m/(sqrt(v)+eps) = ±1) plus weight decay lr * wd * |w|.
        XCTAssertGreaterThan(maxStep, 0)
        XCTAssertLessThanOrEqual(maxStep, lr * 1.01, "model differs from dit.safetensors by more than one AdamW step")
    }

    func testTrainCheckpointNeedsAKeyPath() throws {
        let p = Fixtures.path("dit/dit_train_checkpoint.pt")
        XCTAssertThrowsError(try CheckpointLoader.open(path: p)) { err in
            let s = "\(err)"
            XCTAssertTrue(s.contains("model (") && s.contains("ema (") && s.contains("opt.state.*"), s)
        }
        XCTAssertThrowsError(try CheckpointLoader.open(path: p, keyPath: "nope")) { err in
            XCTAssertTrue("\(err)".contains("'nope'") && "\(err)".contains("model ("), "\(err)")
        }
        let ck = try TorchCheckpoint(path: p)
        // argparse.Namespace is kept as an inert record
        let args = ck.topLevelSummary.first { $0.key == "args" }?.summary ?? ""
        XCTAssertTrue(args.hasPrefix("argparse.Namespace(") && args.contains("model='DiT-XL/2'"), args)
        // the optimizer state is reachable too
        let opt = try ck.archive(keyPath: "opt.state.0")
        XCTAssertEqual(Set(opt.keys), ["step", "exp_avg", "exp_avg_sq"])
    }

    // MARK: synthetic checkpoints: dtypes, strided views, legacy

    func testDTypesAndStridedViews() throws {
        let f32: [Float] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
        let halves: [Float16] = [1.5, -2, 65504, 0.0001]
        let bf: [UInt16] = [0x3FC0, 0xC000]  // 1.5, -2
        let longs: [Int64] = [-5, 1 << 40, 7]
        let i32: [Int32] = [-3, 4]
        let bools: [UInt8] = [1, 0, 1]
        var pk = PickleBuilder()
        pk.dict([
            ("transposed", { $0.tensor(type: "FloatStorage", key: "0", numel: 12, offset: 0, size: [4, 3], stride: [1, 4]) }),
            ("sliced", { $0.tensor(type: "FloatStorage", key: "0", numel: 12, offset: 5, size: [2, 2], stride: [3, 1]) }),
            ("expanded", { $0.tensor(type: "FloatStorage", key: "0", numel: 12, offset: 2, size: [2, 3], stride: [0, 1]) }),
            ("whole", { $0.tensor(type: "FloatStorage", key: "0", numel: 12, offset: 0, size: [3, 4], stride: [4, 1]) }),
            ("scalar", { $0.tensor(type: "FloatStorage", key: "0", numel: 12, offset: 11, size: [], stride: []) }),
            ("half", { $0.tensor(type: "HalfStorage", key: "1", numel: 4, offset: 0, size: [4], stride: [1]) }),
            ("bf16", { $0.tensor(type: "BFloat16Storage", key: "2", numel: 2, offset: 0, size: [2], stride: [1]) }),
            ("long", { $0.tensor(type: "LongStorage", key: "3", numel: 3, offset: 0, size: [3], stride: [1]) }),
            ("int", { $0.tensor(type: "IntStorage", key: "4", numel: 2, offset: 0, size: [2], stride: [1]) }),
            ("bool", { $0.tensor(type: "BoolStorage", key: "5", numel: 3, offset: 0, size: [3], stride: [1]) }),
            ("nested", { $0.dict([("w", { $0.tensor(type: "FloatStorage", key: "0", numel: 12, offset: 1, size: [2], stride: [1]) })]) }),
        ])
        pk.stop()
        // Stored entries are read in place from the memory map; deflated ones (not written by torch.save, but
        // legal zip) are inflated. Both must give the same tensors.
        for deflate in [false, true] {
            let p = try writeTorchZip(
                "synthetic\(deflate)", pickle: pk.bytes,
                storages: [
                    ("0", f32.withUnsafeBytes { Data($0) }), ("1", halves.withUnsafeBytes { Data($0) }),
                    ("2", bf.withUnsafeBytes { Data($0) }), ("3", longs.withUnsafeBytes { Data($0) }),
                    ("4", i32.withUnsafeBytes { Data($0) }), ("5", Data(bools)),
                ], extra: [(".format_version", Data("1".utf8)), ("version", Data("3\n".utf8))], deflate: deflate)
            let a = try CheckpointLoader.open(path: p)
            XCTAssertEqual(
                a.keys, ["transposed", "sliced", "expanded", "whole", "scalar", "half", "bf16", "long", "int", "bool", "nested.w"])
            XCTAssertEqual(try a.floatTensor("transposed").data, [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11])
            XCTAssertEqual(try a.floatTensor("sliced").data, [5, 6, 8, 9])
            XCTAssertEqual(try a.floatTensor("expanded").data, [2, 3, 4, 2, 3, 4])
            XCTAssertEqual(try a.floatTensor("whole").data, f32)
            XCTAssertEqual(try a.floatTensor("scalar").shape, [])
            XCTAssertEqual(try a.floatTensor("scalar").data, [11])
            XCTAssertEqual(try a.floatTensor("half").data, halves.map(Float.init))
            XCTAssertEqual(try a.floatTensor("bf16").data, [1.5, -2])
            XCTAssertEqual(try a.intTensor("long").values, longs)
            XCTAssertEqual(try a.intTensor("int").values, [-3, 4])
            XCTAssertEqual(try a.intTensor("bool").values, [1, 0, 1])
            XCTAssertEqual(a.info("bool")?.dtype, .bool)
            XCTAssertThrowsError(try a.intTensor("half"))
            XCTAssertEqual(try a.floatTensor("nested.w").data, [1, 2])
            XCTAssertEqual(try CheckpointLoader.open(path: p, keyPath: "nested").keys, ["w"])
            XCTAssertThrowsError(try a.floatTensor("transposed", shape: [3, 4])) { XCTAssertTrue("\($0)".contains("transposed")) }
        }
    }

    // MARK: hostile inputs

    func testForbiddenGlobalsAreRefusedWithoutRunning() throws {
        let marker = file("pwned")
        for (i, (m, n)) in [("os", "system"), ("builtins", "eval"), ("posix", "system"), ("subprocess", "Popen"), ("torch", "load")]
            .enumerated()
        {
            var pk = PickleBuilder()
            pk.global(m, n); pk.mark(); pk.str("touch " + marker); pk.tuple(); pk.op(0x52); pk.stop()
            let p = try writeTorchZip("evil_\(i)", pickle: pk.bytes, storages: [])
            assertThrows(try CheckpointLoader.open(path: p), ["\(m).\(n)", "not on the allow-list"])
        }
        // STACK_GLOBAL (protocol 4) goes through the same allow-list
        var pk = PickleBuilder()
        pk.bytes = [0x80, 0x04]
        pk.op(0x8C); pk.bytes += [8] + Array("builtins".utf8); pk.op(0x8C); pk.bytes += [4] + Array("exec".utf8); pk.op(0x93)
        pk.stop()
        let p = try writeTorchZip("evil_stack", pickle: pk.bytes, storages: [])
        assertThrows(try CheckpointLoader.open(path: p), ["builtins.exec"])
        // The same in a legacy-format file.
        var legacy = PickleBuilder()
        legacy.global("os", "system"); legacy.stop()
        let lp = file("evil_legacy.pt")
        try Data(legacy.bytes).write(to: URL(fileURLWithPath: lp))
        assertThrows(try CheckpointLoader.open(path: lp), ["os.system"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker))
    }

    func testBrokenTorchFiles() throws {
        // truncated zip (real fixture cut in half, and cut before the central directory's end)
        let real = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("var/var.pth")))
        for cut in [real.count / 2, real.count - 30, 100] {
            let p = file("trunc\(cut).pth")
            try real.prefix(cut).write(to: URL(fileURLWithPath: p))
            assertThrows(try CheckpointLoader.open(path: p), ["trunc\(cut).pth"])
        }
        // truncated legacy file
        let legacy = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("dit/dit_legacy_format.pt")))
        for cut in [legacy.count - 100, 3000, 200, 20] {
            let p = file("trunc\(cut).pt")
            try legacy.prefix(cut).write(to: URL(fileURLWithPath: p))
            assertThrows(try CheckpointLoader.open(path: p), ["trunc\(cut).pt"])
        }
        // a view reaching past its storage; an absurd shape; a storage entry shorter than the pickle says
        var pk = PickleBuilder()
        pk.dict([
            ("past", { $0.tensor(type: "FloatStorage", key: "0", numel: 4, offset: 2, size: [3], stride: [1]) }),
            (
                "absurd",
                { $0.tensor(type: "FloatStorage", key: "0", numel: 4, offset: 0, size: [1 << 30, 1 << 30, 1 << 30], stride: [0, 0, 0]) }
            ),
            ("ok", { $0.tensor(type: "FloatStorage", key: "0", numel: 4, offset: 0, size: [4], stride: [1]) }),
        ])
        pk.stop()
        let floats: [Float] = [1, 2, 3, 4]
        let p = try writeTorchZip("views", pickle: pk.bytes, storages: [("0", floats.withUnsafeBytes { Data($0) })])
        let a = try CheckpointLoader.open(path: p)
        XCTAssertEqual(try a.floatTensor("ok").data, floats)
        assertThrows(try a.floatTensor("past"), ["past", "4-element storage"])
        assertThrows(try a.floatTensor("absurd"), ["absurd"])
        let short = try writeTorchZip("short", pickle: pk.bytes, storages: [("0", Data(count: 12))])
        assertThrows(try CheckpointLoader.open(path: short), ["storage '0'", "16 bytes", "12"])
        // A storage declaring 2^62 floats: numel x 4 would wrap to an empty entry; refused by its size instead.
        for numel in [1 << 62, Int.max] {
            var huge = PickleBuilder()
            huge.dict([("w", { $0.tensor(type: "FloatStorage", key: "0", numel: numel, offset: 0, size: [4], stride: [1]) })])
            huge.stop()
            let hp = try writeTorchZip("huge\(numel)", pickle: huge.bytes, storages: [("0", Data())])
            assertThrows(try CheckpointLoader.open(path: hp), ["storage '0'", "2^40"])
        }
        let missing = try writeTorchZip("missing", pickle: pk.bytes, storages: [])
        assertThrows(try CheckpointLoader.open(path: missing), ["storage '0'"])
        // garbage pickles: truncated, stack underflow, unknown opcode
        for (i, bytes) in [
            [0x80, 0x02, 0x58, 0xFF, 0xFF, 0x00], [0x80, 0x02, 0x2E], [0x80, 0x02, 0xFE], [0x80, 0x02, 0x7D, 0x73, 0x2E],
        ].enumerated() {
            let p = try writeTorchZip("garbage\(i)", pickle: bytes.map(UInt8.init), storages: [])
            assertThrows(try CheckpointLoader.open(path: p), ["pickle"])
        }
        // deeply nested containers are released without recursion (no stack overflow)
        let depth = 300_000
        var deep: [UInt8] = [0x80, 0x02]
        deep += [UInt8](repeating: 0x5D, count: depth) + [UInt8](repeating: 0x61, count: depth - 1) + [0x2E]
        let dp = try writeTorchZip("deep", pickle: deep, storages: [])
        assertThrows(try CheckpointLoader.open(path: dp), ["no tensors"])
    }

    /// A byte flipped inside a stored zip entry (a tensor of a .pth, an .npz member) fails its CRC-32 check
    /// instead of loading as wrong weights or labels.
    func testCorruptedZipEntriesFailTheirCRC() throws {
        var pk = PickleBuilder()
        pk.dict([("w", { $0.tensor(type: "FloatStorage", key: "0", numel: 4, offset: 0, size: [4], stride: [1]) })])
        pk.stop()
        let floats: [Float] = [1, 2, 3, 12345.5]
        let p = try writeTorchZip("crc", pickle: pk.bytes, storages: [("0", floats.withUnsafeBytes { Data($0) })])
        XCTAssertEqual(try CheckpointLoader.open(path: p).floatTensor("w").data, floats)
        func flipped(_ path: String, _ needle: [UInt8], _ name: String) throws -> String {
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            let at = try XCTUnwrap((0...(bytes.count - needle.count)).first { Array(bytes[$0..<($0 + needle.count)]) == needle })
            bytes[at] ^= 0x01
            let out = file(name)
            try Data(bytes).write(to: URL(fileURLWithPath: out))
            return out
        }
        let bad = try flipped(p, withUnsafeBytes(of: Float(12345.5), Array.init), "crc-bad.pth")
        assertThrows(try CheckpointLoader.open(path: bad).floatTensor("w"), ["crc-bad.pth", "CRC-32", "data/0"])
        // The pickle itself (data.pkl) is checked when the file is opened.
        let badPickle = try flipped(p, Array("storage".utf8), "crc-pkl.pth")
        assertThrows(try CheckpointLoader.open(path: badPickle), ["crc-pkl.pth", "CRC-32"])
        // .npz: a flipped label.
        var w = NPZWriter()
        w.add("arr_1", try NPYArray(int64: [7, 8, 9, 424242], shape: [4]))
        let npz = file("labels.npz")
        try w.write(to: npz)
        XCTAssertEqual(try NPZFile(path: npz).array("arr_1").asInt64(), [7, 8, 9, 424242])
        let badNPZ = try flipped(npz, withUnsafeBytes(of: Int64(424242).littleEndian, Array.init), "labels-bad.npz")
        assertThrows(try NPZFile(path: badNPZ).array("arr_1"), ["labels-bad.npz", "CRC-32", "arr_1"])
    }

    /// A small, highly compressible pickle cannot grow without bound: past the object limit it is an error
    /// naming the limit and how to raise it (here lowered so the test stays small).
    func testPickleObjectBudget() throws {
        let saved = PickleLimits.maxObjects
        defer { PickleLimits.maxObjects = saved }
        PickleLimits.maxObjects = 10_000
        for spam: UInt8 in [0x94, 0x5D] {  // MEMOIZE, EMPTY_LIST
            let bomb: [UInt8] = [0x80, 0x02, 0x5D] + [UInt8](repeating: spam, count: 50_000) + [0x2E]
            let p = try writeTorchZip("bomb\(spam)", pickle: bomb, storages: [], deflate: true)
            assertThrows(try CheckpointLoader.open(path: p), ["more than 10000 pickle objects", "VARLAB_PICKLE_MAX_OBJECTS"])
        }
        // Real checkpoints are far below the default.
        XCTAssertNoThrow(try CheckpointLoader.open(path: Fixtures.path("dit/dit_train_checkpoint.pt"), keyPath: "model"))
    }

    /// A zip entry claiming more bytes than the file can hold is refused when the archive is opened (before any
    /// allocation of that size or any arithmetic on it).
    func testAbsurdZipEntrySizesAreRefused() throws {
        var w = NPZWriter()
        w.add("arr_1", try NPYArray(int64: [1, 2, 3], shape: [3]))
        let ok = file("sizes.npz")
        try w.write(to: ok)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: ok)))
        let cd = try XCTUnwrap((0...(bytes.count - 4)).first { bytes[$0..<($0 + 4)].elementsEqual([0x50, 0x4b, 0x01, 0x02]) })
        bytes.replaceSubrange((cd + 24)..<(cd + 28), with: withUnsafeBytes(of: UInt32(0x7fff_fff0).littleEndian, Array.init))
        let bad = file("sizes-bad.npz")
        try Data(bytes).write(to: URL(fileURLWithPath: bad))
        assertThrows(try NPZFile(path: bad), ["sizes-bad.npz", "arr_1.npy", "claims"])
    }

    /// .npz outputs are a function of their arrays only (fixed zip timestamps), so reruns and merged shards
    /// compare with cmp.
    func testNPZBytesDoNotDependOnTheClock() throws {
        var w = NPZWriter()
        w.add("arr_0", try NPYArray(uint8: [1, 2, 3, 4], shape: [1, 2, 2, 1]))
        w.add("arr_1", try NPYArray(int64: [5], shape: [1]))
        let a = file("a.npz")
        try w.write(to: a)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: a)))
        // First local header: mod time (offset 10) 00:00:00, mod date (offset 12) 1980-01-01 in DOS format.
        XCTAssertEqual(Array(bytes[10..<14]), [0x00, 0x00, 0x21, 0x00])
        XCTAssertEqual(try NPZFile(path: a).array("arr_1").asInt64(), [5])
    }

    /// A FIFO (or device) given as a checkpoint or array file fails at once instead of blocking on open.
    func testNonRegularFilesAreRefused() throws {
        let fifo = file("pipe.pth")
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        assertThrows(try CheckpointLoader.open(path: fifo), ["pipe.pth", "not a regular file"])
        assertThrows(try NPZFile(path: fifo), ["pipe.pth", "not a regular file"])
        assertThrows(try MappedFile(path: fifo), ["pipe.pth", "not a regular file"])
        assertThrows(try CheckpointLoader.open(path: tmp.path), ["is a directory"])
    }

    func testInspectRefusesANegativeLimit() throws {
        let r = try VarlabCLI.run(["inspect", Fixtures.path("var/var.pth"), "--limit", "-1"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("--limit"), r.err)
        let ok = try VarlabCLI.run(["inspect", Fixtures.path("var/var.pth"), "--limit", "0"])
        XCTAssertEqual(ok.status, 0, ok.err)
    }

    func testHostileSafetensors() throws {
        func st(_ header: String, data: Int, declaredLength: UInt64? = nil) throws -> String {
            let h = Array(header.utf8)
            var d = Data(withUnsafeBytes(of: (declaredLength ?? UInt64(h.count)).littleEndian, Array.init))
            d.append(contentsOf: h)
            d.append(Data(count: data))
            let p = file("x\(UUID().uuidString).safetensors")
            try d.write(to: URL(fileURLWithPath: p))
            return p
        }
        let ok = try st(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: 8)
        XCTAssertEqual(try CheckpointLoader.open(path: ok).floatTensor("a").data, [0, 0])
        assertThrows(
            try SafetensorsFile(path: st(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: 8, declaredLength: 5000)),
            ["header length 5000 exceeds"])
        assertThrows(
            try SafetensorsFile(
                path: st(
                    #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                    data: 12)),
            ["overlap"])
        assertThrows(
            try SafetensorsFile(path: st(#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: 8)),
            ["outside"])
        assertThrows(
            try SafetensorsFile(path: st(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: 8)),
            ["needs 12 bytes", "span 8"])
        assertThrows(
            try SafetensorsFile(path: st(#"{"a":{"dtype":"F32","shape":[100000000000,100000000000],"data_offsets":[0,8]}}"#, data: 8)),
            ["absurd shape"])
        assertThrows(
            try SafetensorsFile(path: st(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#, data: 8)),
            ["not a JSON object"])
        assertThrows(
            try SafetensorsFile(path: st(#"{"a":{"dtype":"Q8","shape":[2],"data_offsets":[0,8]}}"#, data: 8)),
            ["unknown dtype"])
        assertThrows(try CheckpointLoader.open(path: ok, keyPath: "model"), ["'model'", "a.*"])
        assertThrows(try CheckpointLoader.open(path: file("absent.safetensors")), ["no such file"])
    }
}
