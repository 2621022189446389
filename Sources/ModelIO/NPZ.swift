import Foundation

/// NumPy `.npz`: a zip archive of `<key>.npy` members, stored (np.savez) or deflated (np.savez_compressed).
/// Arrays are read one at a time and on demand, so a large sample batch (`arr_0`, N x H x W x 3 uint8) can
/// also be streamed in row chunks without holding it whole.
public final class NPZFile {
    public let path: String
    /// Array names (member names without ".npy"), in archive order.
    public let keys: [String]
    private let archive: ZipArchive
    private let entries: [String: ZipArchive.Entry]

    public init(path: String) throws {
        self.path = path
        try requireRegularFile(path)
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw CheckpointError.cannotOpen(
                path: path, reason: FileManager.default.fileExists(atPath: path) ? "permission denied" : "no such file")
        }
        archive = try ZipArchive(path: path)
        var ks: [String] = []
        var es: [String: ZipArchive.Entry] = [:]
        for e in archive.entries where !e.isDirectory {
            var name = e.name
            if name.hasSuffix(".npy") { name.removeLast(4) }
            if es[name] == nil { ks.append(name) }
            es[name] = e
        }
        keys = ks
        entries = es
    }

    private func entry(_ key: String) throws -> ZipArchive.Entry {
        guard let e = entries[key] else {
            throw CheckpointError.missingKey(path: path, key: key, available: keys.count)
        }
        return e
    }

    /// The header of one member (reads only its first bytes).
    public func header(_ key: String) throws -> NPYHeader {
        let e = try entry(key)
        let source = "\(path)[\(key)]"
        var buf = Data()
        var found: NPYHeader?
        try archive.read(e, chunk: 4096) { chunk in
            buf.append(contentsOf: chunk)
            if let h = try NPY.parseHeader(buf, source: source) { found = h; return false }
            if buf.count > (1 << 20) + 16 { throw NPYError.malformed(source: source, reason: "no header end within 1 MB") }
            return true
        }
        guard let h = found else {
            throw NPYError.malformed(source: source, reason: "member is truncated inside the .npy header (\(buf.count) bytes)")
        }
        guard e.uncompressedSize == h.dataOffset + h.byteCount else {
            throw NPYError.malformed(
                source: source,
                reason:
                    "header claims shape \(h.shape) x \(h.dtype.rawValue) = \(h.byteCount) bytes, but the member holds \(e.uncompressedSize - h.dataOffset) data bytes"
            )
        }
        return h
    }

    /// Streams the data bytes of `key` in pieces of whole rows (`rows` entries of axis 0 at a time; the last
    /// piece may be shorter). Each piece is an NPYArray of shape [r] + shape[1...].
    public func forEachRowChunk(_ key: String, rows: Int, _ body: (NPYArray) throws -> Void) throws {
        let h = try header(key)
        let e = try entry(key)
        let source = "\(path)[\(key)]"
        let rowShape = Array(h.shape.dropFirst())
        let rowBytes = rowShape.reduce(h.dtype.itemSize, *)
        let chunkBytes = h.shape.isEmpty ? h.byteCount : max(1, rows) * rowBytes
        var skip = h.dataOffset
        var pending = Data()
        var seen = 0
        func emit(_ d: Data) throws {
            if h.shape.isEmpty { try body(try NPYArray(dtype: h.dtype, shape: [], data: d)); return }
            let r = rowBytes == 0 ? 0 : d.count / rowBytes
            try body(try NPYArray(dtype: h.dtype, shape: [r] + rowShape, data: d))
        }
        // A streaming consumer has seen the rows before the CRC-32 is checked at the end; the error still keeps any
        // result from being used.
        try archive.read(e) { chunk in
            var c = UnsafeRawBufferPointer(chunk)
            if skip > 0 {
                let k = min(skip, c.count)
                c = UnsafeRawBufferPointer(rebasing: c[k...]); skip -= k
            }
            seen += c.count
            if seen > h.byteCount { throw NPYError.malformed(source: source, reason: "member holds more data than its header says") }
            pending.append(contentsOf: c)
            while chunkBytes > 0 && pending.count >= chunkBytes {
                try emit(pending.prefix(chunkBytes))
                pending = pending.subdata(in: pending.startIndex + chunkBytes..<pending.endIndex)
            }
            return true
        }
        guard seen == h.byteCount else {
            throw NPYError.malformed(source: source, reason: "member is truncated: \(seen) of \(h.byteCount) data bytes")
        }
        if !pending.isEmpty { try emit(pending) }
    }

    /// One whole array.
    public func array(_ key: String) throws -> NPYArray {
        let h = try header(key)
        var data = Data(capacity: h.byteCount)
        try forEachRowChunk(key, rows: max(1, h.shape.first ?? 1)) { data.append($0.data) }
        return try NPYArray(dtype: h.dtype, shape: h.shape, data: data)
    }

    public subscript(key: String) -> NPYArray {
        get throws { try array(key) }
    }

    /// Every array of the file, in archive order.
    public static func read(path: String) throws -> NPZArrays {
        let f = try NPZFile(path: path)
        var out = NPZArrays()
        for k in f.keys { out.append(k, try f.array(k)) }
        return out
    }
}

/// Named arrays in a fixed order (np.savez order: arr_0, arr_1, ... or the keyword order).
public struct NPZArrays: Sendable {
    public private(set) var keys: [String] = []
    public private(set) var arrays: [String: NPYArray] = [:]
    public init() {}
    public mutating func append(_ key: String, _ a: NPYArray) {
        if arrays[key] == nil { keys.append(key) }
        arrays[key] = a
    }
    public subscript(key: String) -> NPYArray? { arrays[key] }
}

/// Writes an .npz like np.savez (stored members) or np.savez_compressed (`compressed: true`), atomically:
/// the archive is built in a temporary file next to `path` and renamed over it when complete.
public struct NPZWriter {
    public private(set) var arrays = NPZArrays()
    public var compressed: Bool
    public init(compressed: Bool = false) { self.compressed = compressed }

    public mutating func add(_ key: String, _ a: NPYArray) { arrays.append(key, a) }

    public func write(to path: String) throws {
        try AtomicFile.produce(path) { tmp in
            let archive = try ZipWriter(path: tmp)
            for key in arrays.keys {
                let a = arrays[key]!
                try NPZWriter.addMember(to: archive, key: key, dtype: a.dtype, shape: a.shape, compressed: compressed) { offset, count in
                    a.data[(a.data.startIndex + offset)..<(a.data.startIndex + offset + count)]
                }
            }
            try archive.finish()
        }
    }

    /// Adds `key.npy` to a zip being written, its data bytes served in windows by `data(offset, count)`
    /// (offsets into the data section; called with increasing offsets), so no member is ever built whole.
    static func addMember(
        to archive: ZipWriter, key: String, dtype: NPYDType, shape: [Int], compressed: Bool,
        data: (Int, Int) throws -> Data
    ) throws {
        let header = NPY.encodeHeader(dtype: dtype, shape: shape)
        let total = header.count + shape.reduce(dtype.itemSize, *)
        try archive.add(name: key + ".npy", size: total, deflate: compressed) { p, size in
            var out = Data(capacity: size)
            var p = p
            let end = p + size
            if p < header.count {
                let e = min(end, header.count)
                out.append(header[p..<e]); p = e
            }
            if p < end { out.append(try data(p - header.count, end - p)) }
            return out
        }
    }
}
