import Foundation
import ZIPFoundation

/// NumPy `.npz`: a zip archive of `<key>.npy` members, stored (np.savez) or deflated (np.savez_compressed).
/// Arrays are read one at a time and on demand, so a large sample batch (`arr_0`, N x H x W x 3 uint8) can
/// also be streamed in row chunks without holding it whole.
public final class NPZFile {
    public let path: String
    /// Array names (member names without ".npy"), in archive order.
    public let keys: [String]
    private let archive: Archive
    private let entries: [String: Entry]

    public init(path: String) throws {
        self.path = path
        try requireRegularFile(path)
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw CheckpointError.cannotOpen(
                path: path, reason: FileManager.default.fileExists(atPath: path) ? "permission denied" : "no such file")
        }
        do {
            archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read)
        } catch {
            throw CheckpointError.malformed(path: path, reason: "not a readable zip archive (truncated or damaged?): \(error)")
        }
        var ks: [String] = []
        var es: [String: Entry] = [:]
        let fileSize = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
        for e in archive where e.type == .file {
            try ZipSizes.check(e, fileSize: fileSize, path: path)
            var name = e.path
            if name.hasSuffix(".npy") { name.removeLast(4) }
            if es[name] == nil { ks.append(name) }
            es[name] = e
        }
        keys = ks
        entries = es
    }

    private func entry(_ key: String) throws -> Entry {
        guard let e = entries[key] else {
            throw CheckpointError.missingKey(path: path, key: key, available: keys.count)
        }
        return e
    }

    private struct Stop: Error {}

    /// The header of one member (reads only its first bytes).
    public func header(_ key: String) throws -> NPYHeader {
        let e = try entry(key)
        let source = "\(path)[\(key)]"
        var buf = Data()
        var found: NPYHeader?
        do {
            _ = try archive.extract(e, bufferSize: 4096, skipCRC32: true) { chunk in
                buf.append(chunk)
                if let h = try NPY.parseHeader(buf, source: source) { found = h; throw Stop() }
                if buf.count > (1 << 20) + 16 { throw NPYError.malformed(source: source, reason: "no header end within 1 MB") }
            }
        } catch is Stop {
        } catch let err as NPYError { throw err } catch {
            throw CheckpointError.malformed(path: path, reason: "member '\(key)': \(error)")
        }
        guard let h = found else {
            throw NPYError.malformed(source: source, reason: "member is truncated inside the .npy header (\(buf.count) bytes)")
        }
        let expected = UInt64(h.dataOffset + h.byteCount)
        guard e.uncompressedSize == expected else {
            throw NPYError.malformed(
                source: source,
                reason:
                    "header claims shape \(h.shape) x \(h.dtype.rawValue) = \(h.byteCount) bytes, but the member holds \(Int64(e.uncompressedSize) - Int64(h.dataOffset)) data bytes"
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
        do {
            let crc = try archive.extract(e, bufferSize: 1 << 20, skipCRC32: false) { chunk in
                var c = chunk
                if skip > 0 {
                    let k = min(skip, c.count)
                    c = c.subdata(in: c.startIndex + k..<c.endIndex); skip -= k
                }
                seen += c.count
                if seen > h.byteCount { throw NPYError.malformed(source: source, reason: "member holds more data than its header says") }
                pending.append(c)
                while chunkBytes > 0 && pending.count >= chunkBytes {
                    try emit(pending.prefix(chunkBytes))
                    pending = pending.subdata(in: pending.startIndex + chunkBytes..<pending.endIndex)
                }
            }
            // A streaming consumer has seen the rows by now; the error still keeps any result from being used.
            try ZipCRC.check(crc, e, path: path)
        } catch let err as NPYError { throw err } catch let err as CheckpointError { throw err } catch {
            throw CheckpointError.malformed(path: path, reason: "member '\(key)' cannot be read (truncated or damaged?): \(error)")
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
            let archive: Archive
            do {
                archive = try Archive(url: URL(fileURLWithPath: tmp), accessMode: .create)
            } catch {
                throw CheckpointError.cannotOpen(path: path, reason: "cannot create zip: \(error)")
            }
            for key in arrays.keys {
                let a = arrays[key]!
                try NPZWriter.addMember(to: archive, key: key, dtype: a.dtype, shape: a.shape, compressed: compressed) { offset, count in
                    a.data[(a.data.startIndex + offset)..<(a.data.startIndex + offset + count)]
                }
            }
        }
    }

    /// Adds `key.npy` to a zip being written, its data bytes served in windows by `data(offset, count)`
    /// (offsets into the data section; called with increasing offsets), so no member is ever built whole.
    static func addMember(
        to archive: Archive, key: String, dtype: NPYDType, shape: [Int], compressed: Bool,
        data: @escaping (Int, Int) throws -> Data
    ) throws {
        let header = NPY.encodeHeader(dtype: dtype, shape: shape)
        let total = header.count + shape.reduce(dtype.itemSize, *)
        // A fixed timestamp (the zip epoch, 1980-01-01, local time as zip stores it): the same arrays give the same
        // bytes, so shards, merged sets and reruns compare with cmp.
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .current
        let epoch =
            calendar.date(from: DateComponents(year: 1980, month: 1, day: 1, hour: 0, minute: 0, second: 0))
            ?? Date(timeIntervalSince1970: 315_532_800)
        try archive.addEntry(
            with: key + ".npy", type: .file, uncompressedSize: Int64(total), modificationDate: epoch,
            permissions: 0o644, compressionMethod: compressed ? .deflate : .none, bufferSize: 1 << 20
        ) { pos, size in
            var out = Data(capacity: size)
            var p = Int(pos)
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
