import CVarlabZlib
import Foundation

/// A zip archive read from a memory map (PKWARE APPNOTE 6.3: end of central directory, its ZIP64 form, central
/// directory entries, local headers; "stored" and "deflate" members). It holds what torch.save and np.savez
/// write. Every size and offset comes from the file, so each is checked against the file's size with overflow-
/// checked arithmetic before it is used; errors name the file and the member.
public final class ZipArchive {
    public struct Entry: Sendable {
        public let name: String
        /// 0 = stored, 8 = deflate (the only methods accepted).
        public let method: UInt16
        public let crc32: UInt32
        public let compressedSize: Int
        public let uncompressedSize: Int
        /// Where the member's (compressed) bytes start in the file.
        public let dataOffset: Int
        public var isStored: Bool { method == 0 }
        public var isDirectory: Bool { name.hasSuffix("/") }
    }

    public let path: String
    /// Members in central-directory order.
    public let entries: [Entry]
    let file: MappedFile

    /// More members than any checkpoint or sample file has; keeps a hostile count from driving allocation.
    public static let maxEntries = 1 << 20
    /// A deflate stream expands at most ~1032 : 1; a member claiming more is damaged or hostile.
    static let maxDeflateRatio = 1100

    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        entries = try Self.readDirectory(file, path: path)
    }

    private static func fail(_ path: String, _ why: String) -> CheckpointError {
        .malformed(path: path, reason: "not a readable zip archive (truncated or damaged?): \(why)")
    }

    private static func readDirectory(_ file: MappedFile, path: String) throws -> [Entry] {
        let size = file.size
        guard size >= 22 else { throw fail(path, "\(size) bytes, shorter than an end-of-directory record") }
        func u16(_ o: Int) -> Int { Int(file.bytes(o, 2).loadUnaligned(as: UInt16.self).littleEndian) }
        func u32(_ o: Int) -> Int { Int(file.bytes(o, 4).loadUnaligned(as: UInt32.self).littleEndian) }
        func u64(_ o: Int) throws -> Int {
            let v = file.bytes(o, 8).loadUnaligned(as: UInt64.self).littleEndian
            guard v <= UInt64(Int.max / 2) else { throw fail(path, "a ZIP64 field holds an absurd value (\(v))") }
            return Int(v)
        }
        // The end-of-directory record is the last 22 bytes plus a comment of up to 65,535 bytes.
        var eocd = -1
        var p = size - 22
        let lowest = max(0, size - 22 - 0xFFFF)
        while p >= lowest {
            if u32(p) == 0x0605_4b50 && p + 22 + u16(p + 20) <= size { eocd = p; break }
            p -= 1
        }
        guard eocd >= 0 else { throw fail(path, "no end-of-central-directory record") }
        var count = u16(eocd + 10)
        var cdSize = u32(eocd + 12)
        var cdOffset = u32(eocd + 16)
        var cdEnd = eocd
        if eocd >= 20 && u32(eocd - 20) == 0x0706_4b50 {
            // ZIP64: the locator points at a record with 64-bit counts and offsets.
            let rec = try u64(eocd - 20 + 8)
            guard rec <= eocd - 20 - 56, u32(rec) == 0x0606_4b50 else { throw fail(path, "bad ZIP64 end-of-directory locator") }
            count = try u64(rec + 32)
            cdSize = try u64(rec + 40)
            cdOffset = try u64(rec + 48)
            cdEnd = rec
        }
        guard count <= maxEntries else { throw fail(path, "\(count) members (more than \(maxEntries))") }
        guard cdOffset <= cdEnd, cdSize <= cdEnd - cdOffset else {
            throw fail(path, "central directory (\(cdSize) bytes at \(cdOffset)) lies outside the file")
        }
        var out: [Entry] = []
        out.reserveCapacity(count)
        var q = cdOffset
        let end = cdOffset + cdSize
        for i in 0..<count {
            guard end - q >= 46, u32(q) == 0x0201_4b50 else { throw fail(path, "central directory entry \(i) is damaged") }
            let flags = u16(q + 8), method = u16(q + 10)
            let nameLen = u16(q + 28), extraLen = u16(q + 30), commentLen = u16(q + 32)
            guard end - q - 46 >= nameLen + extraLen + commentLen else {
                throw fail(path, "central directory entry \(i) runs past the directory")
            }
            let name = String(decoding: file.bytes(q + 46, nameLen), as: UTF8.self)
            var compressed = u32(q + 20), uncompressed = u32(q + 24), local = u32(q + 42)
            // ZIP64 extended information: the 64-bit values of the fields saturated at 0xFFFFFFFF, in this order.
            var e = q + 46 + nameLen
            let extraEnd = e + extraLen
            while extraEnd - e >= 4 {
                let id = u16(e), len = u16(e + 2)
                guard extraEnd - e - 4 >= len else { throw fail(path, "member \(name): extra field runs past its entry") }
                if id == 0x0001 {
                    var f = e + 4
                    for field in [0, 1, 2] {
                        let saturated = [uncompressed, compressed, local][field] == 0xFFFF_FFFF
                        guard saturated else { continue }
                        guard e + 4 + len - f >= 8 else { throw fail(path, "member \(name): ZIP64 extra field too short") }
                        let v = try u64(f)
                        f += 8
                        if field == 0 { uncompressed = v } else if field == 1 { compressed = v } else { local = v }
                    }
                }
                e += 4 + len
            }
            let what = "zip entry \(name)"
            guard flags & 1 == 0 else { throw CheckpointError.unsupported(path: path, reason: "\(what) is encrypted") }
            guard method == 0 || method == 8 else {
                throw CheckpointError.unsupported(path: path, reason: "\(what) uses compression method \(method) (only stored and deflate)")
            }
            func bad(_ why: String) -> CheckpointError { .malformed(path: path, reason: "\(what) \(why)") }
            guard compressed <= size else { throw bad("claims \(compressed) compressed bytes in a \(size)-byte file") }
            if method == 0 {
                guard uncompressed == compressed else {
                    throw bad("is stored but claims \(uncompressed) bytes for \(compressed) stored bytes")
                }
            } else {
                let (bound, o) = compressed.multipliedReportingOverflow(by: maxDeflateRatio)
                guard !o, uncompressed <= max(bound, 1 << 16) else {
                    throw bad("claims \(uncompressed) bytes from \(compressed) deflated bytes (more than deflate can expand)")
                }
            }
            // The local header repeats the name; its own extra field decides where the data starts.
            guard local <= size - 30, u32(local) == 0x0403_4b50 else { throw bad("has no local header at offset \(local)") }
            let localName = u16(local + 26), localExtra = u16(local + 28)
            let dataOffset = local + 30 + localName + localExtra
            guard dataOffset <= size, compressed <= size - dataOffset else { throw bad("runs past the end of the file") }
            guard file.bytes(local + 30, localName).elementsEqual(file.bytes(q + 46, nameLen)) else {
                throw bad("has a different name in its local header")
            }
            out.append(
                Entry(
                    name: name, method: UInt16(method), crc32: UInt32(u32(q + 16)), compressedSize: compressed,
                    uncompressedSize: uncompressed, dataOffset: dataOffset))
            q += 46 + nameLen + extraLen + commentLen
        }
        return out
    }

    /// The stored bytes of a stored member, in place in the memory map (not CRC-checked: see `checkCRC`).
    public func storedBytes(_ e: Entry) -> UnsafeRawBufferPointer {
        precondition(e.isStored)
        return file.bytes(e.dataOffset, e.compressedSize)
    }

    /// Throws unless the CRC-32 of `bytes` is the one the directory records for `e`.
    public func checkCRC(_ e: Entry, _ computed: UInt32) throws {
        guard computed == e.crc32 else {
            throw CheckpointError.malformed(
                path: path,
                reason: String(
                    format: "zip entry %@ fails its CRC-32 check (stored %08x, computed %08x): the file is corrupted",
                    e.name, e.crc32, computed))
        }
    }

    /// Streams the uncompressed bytes of `e` to `body` in pieces of at most `chunk` bytes, until the member ends
    /// or `body` returns false. A member read to its end has its length and CRC-32 checked; errors name the member.
    public func read(_ e: Entry, chunk: Int = 1 << 20, _ body: (UnsafeRawBufferPointer) throws -> Bool) throws {
        let chunk = max(1, chunk)
        if e.isStored {
            let all = storedBytes(e)
            var crc = ZipCRC.start
            var o = 0
            while o < all.count {
                let piece = UnsafeRawBufferPointer(rebasing: all[o..<min(all.count, o + chunk)])
                crc = ZipCRC.update(crc, piece)
                o += piece.count
                if try !body(piece) { return }
            }
            try checkCRC(e, crc)
            return
        }
        try inflate(e, chunk: chunk, body)
    }

    private func inflate(_ e: Entry, chunk: Int, _ body: (UnsafeRawBufferPointer) throws -> Bool) throws {
        func bad(_ why: String) -> CheckpointError { .malformed(path: path, reason: "zip entry \(e.name) \(why)") }
        var stream = z_stream()
        guard inflateInit2_(&stream, -15, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw bad("cannot be inflated (zlib init failed)")
        }
        defer { inflateEnd(&stream) }
        let input = file.bytes(e.dataOffset, e.compressedSize)
        var consumed = 0
        var produced = 0
        var crc = ZipCRC.start
        var out = [UInt8](repeating: 0, count: chunk)
        var finished = false
        while !finished {
            if stream.avail_in == 0 && consumed < input.count {
                let n = min(input.count - consumed, 1 << 30)
                stream.next_in = UnsafeMutablePointer(
                    mutating: input.baseAddress!.advanced(by: consumed).assumingMemoryBound(to: Bytef.self))
                stream.avail_in = uInt(n)
                consumed += n
            }
            let status = out.withUnsafeMutableBytes { o -> Int32 in
                stream.next_out = o.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(chunk)
                return CVarlabZlib.inflate(&stream, Z_NO_FLUSH)
            }
            let n = chunk - Int(stream.avail_out)
            switch status {
            case Z_STREAM_END: finished = true
            case Z_OK: break
            case Z_BUF_ERROR where n == 0 && stream.avail_in == 0 && consumed == input.count:
                throw bad("is truncated (its deflate stream ends early)")
            case Z_BUF_ERROR: break
            default: throw bad("is not a valid deflate stream (zlib error \(status))")
            }
            produced += n
            guard produced <= e.uncompressedSize else { throw bad("inflates to more than the \(e.uncompressedSize) bytes it claims") }
            if n > 0 {
                let piece = try out.withUnsafeBytes { o -> Bool in
                    let p = UnsafeRawBufferPointer(rebasing: o[0..<n])
                    crc = ZipCRC.update(crc, p)
                    return try body(p)
                }
                if !piece { return }
            }
        }
        guard produced == e.uncompressedSize else { throw bad("is truncated (\(produced) of \(e.uncompressedSize) bytes)") }
        try checkCRC(e, crc)
    }

    /// The whole member, at most `limit` bytes, length and CRC-32 checked.
    public func data(_ e: Entry, limit: Int = Int.max) throws -> Data {
        guard e.uncompressedSize <= limit else {
            throw CheckpointError.malformed(path: path, reason: "zip entry \(e.name) is implausibly large (\(e.uncompressedSize) bytes)")
        }
        var out = Data(capacity: e.uncompressedSize)
        try read(e) {
            out.append(contentsOf: $0); return true
        }
        return out
    }
}

/// CRC-32 of zip members (zlib's, the zip polynomial), in pieces below 4 GiB (zlib's length argument is 32-bit).
enum ZipCRC {
    static let start = UInt32(0)

    static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = uLong(crc)
        var offset = 0
        while offset < bytes.count {
            let n = min(bytes.count - offset, 1 << 30)
            c = crc32(c, bytes.baseAddress!.advanced(by: offset).assumingMemoryBound(to: Bytef.self), uInt(n))
            offset += n
        }
        return UInt32(truncatingIfNeeded: c)
    }

    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 { update(start, bytes) }
}
