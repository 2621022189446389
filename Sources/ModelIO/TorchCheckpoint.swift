import Foundation
import Tensor

extension CheckpointLoader {
    static func openTorch(path: String, format: Format, keyPath: String?) throws -> TensorArchive {
        try TorchCheckpoint(path: path).archive(keyPath: keyPath)
    }
}

/// A file written by `torch.save`, in either container:
/// - zip (torch >= 1.6): `<prefix>/data.pkl` (the object pickle; tensors are persistent ids
///   `('storage', <torch.XStorage>, key, location, numel)`), `<prefix>/data/<key>` (raw little-endian storage
///   bytes, read on demand one storage at a time), `<prefix>/byteorder`, and entries that are ignored;
/// - legacy (pre-1.6): consecutive pickles (magic number, protocol version, sys_info, the object with persistent
///   ids `('storage', type, key, location, numel, view_metadata)`, the list of storage keys), then for each key
///   an 8-byte little-endian element count and the raw bytes. The file is memory-mapped.
/// The object is unpickled with the allow-listed VM in Pickle.swift; every tensor reachable from it is
/// recorded with its path of dict keys / attribute names / list indices, so nested state dicts ("model", "ema",
/// "trainer.var_wo_ddp") can be selected by key path.
public final class TorchCheckpoint {
    public let path: String
    public let format: CheckpointLoader.Format

    public struct Entry {
        public let components: [String]
        public let tensor: TorchTensorRef
    }
    /// Every tensor in the file, depth-first in file order.
    public private(set) var entries: [Entry] = []
    /// Containers that hold tensors directly ("" = the top level), with their tensor counts, in file order.
    public private(set) var stateDicts: [(path: String, count: Int)] = []
    /// Top-level entries that are not tensors or dicts (e.g. `args=argparse.Namespace(...)`, `epoch=10`).
    public private(set) var topLevelSummary: [(key: String, summary: String)] = []
    /// Container paths (joined with ".") to their components.
    private var containers: [String: [String]] = [:]
    private var containerOrder: [String] = []

    private var zipArchive: ZipArchive?
    private var zipPrefix = ""
    private var zipEntries: [String: ZipArchive.Entry] = [:]
    private var mapped: MappedFile?
    private var legacyOffsets: [String: Int] = [:]
    /// Data offsets of stored zip entries in `mapped` (storage key -> byte offset).
    private var zipDataOffsets: [String: Int] = [:]
    /// Root storages: key -> (dtype, element count).
    private var storages: [String: (dtype: DType, numel: Int)] = [:]
    private let lock = NSLock()
    private var cachedKey: String?
    private var cachedBytes = Data()
    /// Stored zip entries whose CRC-32 has been checked (each is checked once, on first use).
    private var crcVerified = Set<String>()

    static let legacyMagic: [UInt8] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]  // 0x1950a86a20f9469cfc6c LE
    /// Longest key path followed when listing tensors; state dicts are never this deep.
    static let maxDepth = 32

    public init(path: String) throws {
        self.path = path
        format = try CheckpointLoader.detectFormat(path: path)
        switch format {
        case .torchZip: try openZip()
        case .torchLegacy: try openLegacy()
        case .safetensors: throw CheckpointError.unsupported(path: path, reason: "this is a safetensors file, not a torch.save file")
        }
    }

    private func bad(_ why: String) -> CheckpointError { .malformed(path: path, reason: why) }

    /// 2^40 elements (4 TiB of float32): far beyond any real checkpoint, and small enough that
    /// elements x 8 bytes and offset + size never overflow.
    static let maxStorageElements = 1 << 40

    /// Registers a storage from a persistent id and returns its reference.
    private func persistent(_ pid: PickleValue) throws -> PickleValue {
        guard let t = pid.tupleItems, t.count >= 5, t[0].asString == "storage" else {
            if let t = pid.tupleItems, let kind = t.first?.asString, kind == "module" {
                throw CheckpointError.unsupported(
                    path: path, reason: "whole-module pickles (torch.save(model)) are not supported; save model.state_dict()")
            }
            throw bad("unexpected persistent id \(pid.summary(maxLength: 100))")
        }
        guard case let .global(module, typeName) = t[1], module == "torch" else {
            throw bad("persistent id with storage type \(t[1].summary(maxLength: 60))")
        }
        guard let dtype = Unpickler.storageTypes[typeName] ?? (typeName == "UntypedStorage" ? DType.u8 : nil) else {
            throw CheckpointError.unsupported(path: path, reason: "storage type torch.\(typeName)")
        }
        guard let key = t[2].asString ?? t[2].asInt.map(String.init), let numel = t[4].asInt, numel >= 0 else {
            throw bad("persistent id \(pid.summary(maxLength: 100)) has no key / element count")
        }
        // Every later size and offset product (elements x bytes, offset + view size) stays far from overflow.
        guard numel <= Self.maxStorageElements else {
            throw bad("storage '\(key)' declares \(numel) elements (more than 2^40; the file cannot hold them)")
        }
        var rootNumel = numel
        var offset = 0
        var viewNumel = numel
        if t.count >= 6, let view = t[5].tupleItems {
            // legacy storage view: (view_key, offset, view_size) into the root storage
            guard view.count == 3, let o = view[1].asInt, let n = view[2].asInt, o >= 0, n >= 0,
                o <= Self.maxStorageElements, n <= Self.maxStorageElements
            else {
                throw bad("bad storage view metadata \(t[5].summary(maxLength: 80))")
            }
            offset = o; viewNumel = n
        }
        if let existing = storages[key] {
            guard existing.dtype == dtype else {
                throw bad("storage '\(key)' is used with dtypes \(existing.dtype.rawValue) and \(dtype.rawValue)")
            }
            rootNumel = existing.numel
        } else {
            storages[key] = (dtype, rootNumel)
        }
        guard offset + viewNumel <= rootNumel else { throw bad("storage view of '\(key)' lies outside its storage") }
        return .storage(TorchStorageRef(key: key, dtype: dtype, numel: viewNumel, elementOffset: offset))
    }

    private func unpickle(_ bytes: UnsafeRawBufferPointer, at pos: Int, withStorages: Bool) throws -> (PickleValue, Int, Unpickler) {
        var u = Unpickler(bytes: bytes, pos: pos, source: path) { [unowned self] pid in
            guard withStorages else { throw self.bad("unexpected persistent id outside the main pickle") }
            return try self.persistent(pid)
        }
        do {
            let v = try u.load()
            return (v, u.pos, u)
        } catch {
            u.teardown()
            throw error
        }
    }

    // MARK: zip container

    private func openZip() throws {
        let archive = try ZipArchive(path: path)
        var pkl: ZipArchive.Entry?
        for e in archive.entries where !e.isDirectory {
            zipEntries[e.name] = e
            if pkl == nil && (e.name == "data.pkl" || e.name.hasSuffix("/data.pkl")) { pkl = e }
        }
        guard let pkl else { throw bad("zip archive without a data.pkl entry (not a torch.save file)") }
        zipPrefix = String(pkl.name.dropLast("data.pkl".count))
        zipArchive = archive
        if let bo = zipEntries[zipPrefix + "byteorder"] {
            let order = String(decoding: try archive.data(bo, limit: 64), as: UTF8.self)
            guard order == "little" else { throw CheckpointError.unsupported(path: path, reason: "byte order '\(order)'") }
        }
        let pickle = try archive.data(pkl, limit: 1 << 31)
        try pickle.withUnsafeBytes { raw in
            var (root, _, u) = try unpickle(raw, at: 0, withStorages: true)
            index(root)
            root = .none
            u.teardown()
        }
        // The entries must hold exactly the bytes the pickle says. Stored ones (torch.save stores every entry) are
        // used in place from the memory map instead of being copied out.
        for (key, s) in storages {
            guard let e = zipEntries[zipPrefix + "data/" + key] else { throw bad("storage '\(key)' has no entry \(zipPrefix)data/\(key)") }
            guard e.uncompressedSize == s.numel * s.dtype.byteSize else {
                throw bad(
                    "storage '\(key)' should hold \(s.numel) x \(s.dtype.rawValue) = \(s.numel * s.dtype.byteSize) bytes, its entry has \(e.uncompressedSize)"
                )
            }
            if e.isStored { zipDataOffsets[key] = e.dataOffset }
        }
        if !zipDataOffsets.isEmpty { mapped = archive.file }
    }

    // MARK: legacy container

    private func openLegacy() throws {
        let file = try MappedFile(path: path)
        mapped = file
        let all = file.bytes(0, file.size)
        // Every unpickler is emptied (teardown) once its value has been read, so nothing nested is freed recursively.
        var (magic, pos, u1) = try unpickle(all, at: 0, withStorages: false)
        let magicOK: Bool
        if case let .bigInt(m) = magic { magicOK = m == Self.legacyMagic } else { magicOK = false }
        let magicText = magic.summary(maxLength: 40)
        magic = .none; u1.teardown()
        guard magicOK else { throw bad("legacy torch.save file without the magic number (got \(magicText))") }
        var (proto, p2, u2) = try unpickle(all, at: pos, withStorages: false)
        let protoOK = proto.asInt == 1001, protoText = proto.summary(maxLength: 20)
        proto = .none; u2.teardown()
        guard protoOK else { throw CheckpointError.unsupported(path: path, reason: "legacy protocol version \(protoText)") }
        var (sysInfo, p3, u3) = try unpickle(all, at: p2, withStorages: false)
        var bigEndian = false
        if case let .dict(d) = sysInfo, case let .bool(little)? = d["little_endian"], !little { bigEndian = true }
        sysInfo = .none; u3.teardown()
        if bigEndian { throw CheckpointError.unsupported(path: path, reason: "big-endian legacy checkpoint") }
        var (root, p4, u4) = try unpickle(all, at: p3, withStorages: true)
        index(root)
        root = .none; u4.teardown()
        var (keysValue, p5, u5) = try unpickle(all, at: p4, withStorages: false)
        let keyItems = keysValue.tupleItems?.map { $0.asString }
        keysValue = .none; u5.teardown()
        guard let keyItems, keyItems.allSatisfy({ $0 != nil }) else { throw bad("the storage key list is not a list of strings") }
        let keys = keyItems.map { $0! }
        pos = p5
        for key in keys {
            guard let s = storages[key] else { throw bad("storage '\(key)' is listed but never used") }
            guard pos + 8 <= file.size else { throw bad("file ends before storage '\(key)' (truncated)") }
            let count = Int(Int64(littleEndian: file.bytes(pos, 8).loadUnaligned(as: Int64.self)))
            guard count == s.numel else { throw bad("storage '\(key)' holds \(count) elements, the pickle says \(s.numel)") }
            let n = count * s.dtype.byteSize
            guard n <= file.size - pos - 8 else {
                throw bad("storage '\(key)' needs \(n) bytes but the file ends \(file.size - pos - 8) bytes later (truncated)")
            }
            legacyOffsets[key] = pos + 8
            pos += 8 + n
        }
        for key in storages.keys where legacyOffsets[key] == nil { throw bad("storage '\(key)' is missing from the storage list") }
    }

    // MARK: indexing the object

    private func index(_ root: PickleValue) {
        var work: [(PickleValue, [String])] = [(root, [])]
        var visited = Set<ObjectIdentifier>()
        while let (v, comps) = work.popLast() {
            var children: [(String, PickleValue)] = []
            switch v {
            case let .tensor(t):
                entries.append(Entry(components: comps, tensor: t)); continue
            case let .dict(d):
                guard visited.insert(ObjectIdentifier(d)).inserted else { continue }
                children = d.entries.map { (PickleDict.keyText($0.0) ?? $0.0.summary(maxLength: 40), $0.1) }
            case let .list(l):
                guard visited.insert(ObjectIdentifier(l)).inserted else { continue }
                children = l.items.enumerated().map { ("\($0.offset)", $0.element) }
            case let .tuple(t):
                guard visited.insert(ObjectIdentifier(t)).inserted else { continue }
                children = t.items.enumerated().map { ("\($0.offset)", $0.element) }
            case let .object(o):
                guard visited.insert(ObjectIdentifier(o)).inserted else { continue }
                if case let .dict(d)? = o.state { children = d.entries.map { (PickleDict.keyText($0.0) ?? "?", $0.1) } }
            default:
                continue
            }
            guard comps.count < Self.maxDepth else { continue }
            let joined = comps.joined(separator: ".")
            if containers[joined] == nil { containers[joined] = comps; containerOrder.append(joined) }
            let direct = children.reduce(0) { n, c in
                if case .tensor = c.1 { return n + 1 }; return n
            }
            if direct > 0 { stateDicts.append((joined, direct)) }
            if comps.isEmpty {
                for (k, c) in children {
                    switch c {
                    case .tensor, .dict: break
                    default: topLevelSummary.append((k, c.summary(maxLength: 160)))
                    }
                }
            }
            for (k, c) in children.reversed() { work.append((c, comps + [k])) }
        }
    }

    // MARK: selecting a state dict

    /// The tensors under `keyPath` (nil or "" = the top level), keyed by their remaining path joined with ".".
    public func archive(keyPath: String?) throws -> TensorArchive {
        let kp = keyPath ?? ""
        let candidates = keyPathCandidates()
        if entries.isEmpty { throw CheckpointError.unsupported(path: path, reason: "the file holds no tensors") }
        guard let node = containers[kp] else {
            throw CheckpointError.keyPathNotFound(path: path, keyPath: kp, candidates: candidates)
        }
        if kp.isEmpty && !stateDicts.contains(where: { $0.path.isEmpty }) {
            // A training checkpoint such as {"model": sd, "ema": sd, "opt": ..., "args": ...}: make the user choose.
            throw CheckpointError.keyPathNotFound(path: path, keyPath: "", candidates: candidates)
        }
        var selected: [(String, TorchTensorRef)] = []
        for e in entries where e.components.count > node.count && Array(e.components.prefix(node.count)) == node {
            selected.append((e.components.dropFirst(node.count).joined(separator: "."), e.tensor))
        }
        if selected.isEmpty { throw CheckpointError.keyPathNotFound(path: path, keyPath: kp, candidates: candidates) }
        return TorchArchive(checkpoint: self, keyPath: kp, tensors: selected)
    }

    /// The shallowest state dicts (no state dict above them), with groups of more than three siblings
    /// (optimizer states keyed 0, 1, 2, ...) collapsed to "parent.*".
    public func keyPathCandidates() -> [String] {
        let paths = stateDicts.map { $0.path }
        let containersOf = Dictionary(stateDicts.map { ($0.path, $0.count) }, uniquingKeysWith: { a, _ in a })
        var shallow: [(path: String, count: Int)] = []
        for p in paths where !p.isEmpty {
            let comps = containers[p] ?? [p]
            let hasAncestor = (0..<comps.count).contains { containersOf[comps.prefix($0).joined(separator: ".")] != nil }
            if !hasAncestor { shallow.append((p, containersOf[p]!)) }
        }
        var parentOrder: [String] = []
        var groups: [String: [(String, Int)]] = [:]
        for (p, n) in shallow {
            let comps = containers[p] ?? [p]
            let parent = comps.dropLast().joined(separator: ".")
            if groups[parent] == nil { parentOrder.append(parent) }
            groups[parent, default: []].append((p, n))
        }
        var out: [String] = []
        for parent in parentOrder {
            let g = groups[parent]!
            if g.count > 3 {
                out.append((parent.isEmpty ? "" : parent + ".") + "* (\(g.count) state dicts, \(g.reduce(0) { $0 + $1.1 }) tensors)")
            } else {
                out += g.map { "\($0.0) (\($0.1) tensors)" }
            }
        }
        return out
    }

    // MARK: reading tensors

    /// Calls `body` with the bytes of root storage `key` (cached: consecutive views of one storage read it once).
    fileprivate func withStorage<R>(_ key: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let s = storages[key] else { throw bad("unknown storage '\(key)'") }
        let n = s.numel * s.dtype.byteSize
        if let mapped, let off = legacyOffsets[key] ?? zipDataOffsets[key] {
            let bytes = mapped.bytes(off, n)
            if zipDataOffsets[key] != nil, let e = zipEntries[zipPrefix + "data/" + key] {
                // Stored zip entries are used in place: check each one's CRC-32 once, on first use.
                lock.lock()
                let done = crcVerified.contains(key)
                lock.unlock()
                if !done {
                    try zipArchive!.checkCRC(e, ZipCRC.checksum(bytes))
                    lock.lock(); crcVerified.insert(key); lock.unlock()
                }
            }
            return try body(bytes)
        }
        lock.lock()
        defer { lock.unlock() }
        if cachedKey != key {
            guard let e = zipEntries[zipPrefix + "data/" + key] else { throw bad("storage '\(key)' has no zip entry") }
            cachedKey = nil
            cachedBytes = Data()
            cachedBytes = try zipArchive!.data(e)
            cachedKey = key
        }
        return try cachedBytes.withUnsafeBytes { try body($0) }
    }

    /// The contiguous little-endian bytes of a (possibly strided) tensor view, after checking that every
    /// element lies inside its storage. Nothing is allocated for a view that fails the checks.
    fileprivate func materialize<R>(_ t: TorchTensorRef, name: String, _ body: (UnsafeRawBufferPointer, Int) throws -> R) throws -> R {
        let s = t.storage
        let es = s.dtype.byteSize
        var numel = 1
        for d in t.shape {
            guard d >= 0 else { throw bad("tensor '\(name)' has a negative size in \(t.shape)") }
            let (p, o) = numel.multipliedReportingOverflow(by: d)
            guard !o, p <= 1 << 40 else { throw bad("tensor '\(name)' claims an absurd shape \(t.shape)") }
            numel = p
        }
        guard t.offset >= 0, t.stride.allSatisfy({ $0 >= 0 }) else {
            throw CheckpointError.unsupported(path: path, reason: "tensor '\(name)' has a negative offset or stride")
        }
        if numel > 0 {
            var last = t.offset
            for (d, st) in zip(t.shape, t.stride) {
                let (p, o1) = (d - 1).multipliedReportingOverflow(by: st)
                let (q, o2) = last.addingReportingOverflow(p)
                guard !o1, !o2 else { throw bad("tensor '\(name)' view overflows") }
                last = q
            }
            guard last < s.numel else {
                throw bad(
                    "tensor '\(name)' (shape \(t.shape), offset \(t.offset), stride \(t.stride)) reaches element \(last) of a \(s.numel)-element storage"
                )
            }
            // An expanded view (stride 0) may be larger than its storage; keep it sane.
            guard numel <= max(s.numel, 1 << 31) else { throw bad("tensor '\(name)' expands to an absurd \(numel) elements") }
        }
        // Row-major contiguous? (dims of size 1 can have any stride)
        var contiguous = true
        var expect = 1
        for (d, st) in zip(t.shape, t.stride).reversed() where d != 1 {
            if st != expect { contiguous = false; break }
            expect *= d
        }
        return try withStorage(s.key) { raw in
            let base = s.elementOffset + t.offset
            if numel == 0 { return try body(UnsafeRawBufferPointer(start: nil, count: 0), 0) }
            if contiguous {
                return try body(UnsafeRawBufferPointer(rebasing: raw[(base * es)..<((base + numel) * es)]), numel)
            }
            var out = [UInt8](repeating: 0, count: numel * es)
            let rank = t.shape.count
            var idx = [Int](repeating: 0, count: rank)
            out.withUnsafeMutableBytes { dst in
                var src = base
                for i in 0..<numel {
                    memcpy(dst.baseAddress! + i * es, raw.baseAddress! + src * es, es)
                    // advance the multi-index
                    var a = rank - 1
                    while a >= 0 {
                        idx[a] += 1
                        src += t.stride[a]
                        if idx[a] < t.shape[a] { break }
                        src -= t.stride[a] * t.shape[a]
                        idx[a] = 0
                        a -= 1
                    }
                }
            }
            return try out.withUnsafeBytes { try body($0, numel) }
        }
    }
}

/// One selected state dict of a torch.save file.
final class TorchArchive: TensorArchive {
    let checkpoint: TorchCheckpoint
    let path: String
    let keys: [String]
    private let tensors: [String: TorchTensorRef]

    init(checkpoint: TorchCheckpoint, keyPath: String, tensors list: [(String, TorchTensorRef)]) {
        self.checkpoint = checkpoint
        path = checkpoint.path + (keyPath.isEmpty ? "" : " [\(keyPath)]")
        var ks: [String] = []
        var map: [String: TorchTensorRef] = [:]
        for (k, t) in list where map[k] == nil { ks.append(k); map[k] = t }
        keys = ks
        tensors = map
    }

    func info(_ key: String) -> TensorInfo? {
        tensors[key].map { TensorInfo(dtype: $0.storage.dtype, shape: $0.shape) }
    }

    private func ref(_ key: String) throws -> TorchTensorRef {
        guard let t = tensors[key] else { throw CheckpointError.missingKey(path: path, key: key, available: keys.count) }
        return t
    }

    func floatTensor(_ key: String) throws -> Tensor {
        let t = try ref(key)
        let data = try checkpoint.materialize(t, name: key) { raw, n in
            n == 0 ? [] : decodeFloats(raw.baseAddress!, dtype: t.storage.dtype, count: n)
        }
        return Tensor(shape: t.shape, data: data)
    }

    func intTensor(_ key: String) throws -> (shape: [Int], values: [Int64]) {
        let t = try ref(key)
        guard !t.storage.dtype.isFloatingPoint else {
            throw CheckpointError.wrongDType(path: path, key: key, dtype: t.storage.dtype.rawValue, wanted: "an integer type")
        }
        let v = try checkpoint.materialize(t, name: key) { raw, n in
            n == 0 ? [] : decodeInts(raw.baseAddress!, dtype: t.storage.dtype, count: n) ?? []
        }
        return (t.shape, v)
    }
}
