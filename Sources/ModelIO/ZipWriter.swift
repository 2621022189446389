import CVarlabZlib
import Foundation

/// Writes a zip archive member by member, streaming (PKWARE APPNOTE 6.3): each member's local header, its bytes
/// (stored, or raw deflate), then the central directory and the end record, with ZIP64 fields only where a size,
/// offset or count needs them. Every header field is fixed (UTF-8 names, 1980-01-01 00:00 timestamps, Unix mode
/// 0644), so the bytes depend only on the members' names and contents, never on the clock or the time zone.
public final class ZipWriter {
    private let path: String
    private var handle: UnsafeMutablePointer<FILE>?
    private var offset = 0
    private var directory = Data()
    private var count = 0
    /// Sizes, offsets and counts at or above this are written in ZIP64 form.
    let zip64Limit: Int

    /// `zip64Limit` is the format's (4 GiB - 1); a lower one exists so tests can exercise the ZIP64 form.
    public init(path: String, zip64Limit: Int = 0xFFFF_FFFF) throws {
        precondition(zip64Limit > 0 && zip64Limit <= 0xFFFF_FFFF)
        self.path = path
        self.zip64Limit = zip64Limit
        guard let f = fopen(path, "wb") else { throw Self.systemError() }
        handle = f
    }

    deinit { if let handle { fclose(handle) } }

    private static func systemError() -> Error { POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }

    private func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count > 0 else { return }
        guard let handle, fwrite(bytes.baseAddress!, 1, bytes.count, handle) == bytes.count else { throw Self.systemError() }
        offset += bytes.count
    }

    private func write(_ data: Data) throws { try data.withUnsafeBytes { try write($0) } }

    /// Adds a member of `size` bytes whose contents `provider(offset, count)` serves in increasing windows of at
    /// most `chunk` bytes (so no member is held whole), stored or deflated.
    public func add(
        name: String, size: Int, deflate: Bool = false, chunk: Int = 1 << 20, provider: (Int, Int) throws -> Data
    ) throws {
        precondition(size >= 0 && chunk > 0)
        guard let handle else { throw CheckpointError.malformed(path: path, reason: "zip writer already finished") }
        let nameBytes = Data(name.utf8)
        guard nameBytes.count <= 0xFFFF else { throw CheckpointError.malformed(path: path, reason: "zip member name too long") }
        let headerAt = offset
        // The local header's ZIP64 form is decided by the size known up front; it is rewritten in place with the
        // CRC and the compressed size once the bytes are out, so both versions must have the same length.
        let local64 = size >= zip64Limit
        try write(localHeader(name: nameBytes, deflate: deflate, crc: 0, compressed: 0, size: size, zip64: local64))
        let dataAt = offset
        var crc = ZipCRC.start
        if deflate {
            crc = try deflateMember(size: size, chunk: chunk, provider: provider)
        } else {
            var p = 0
            while p < size {
                let piece = try provider(p, min(chunk, size - p))
                guard piece.count == min(chunk, size - p) else {
                    throw CheckpointError.malformed(path: path, reason: "member \(name): provider gave \(piece.count) bytes")
                }
                try piece.withUnsafeBytes {
                    crc = ZipCRC.update(crc, $0); try write($0)
                }
                p += piece.count
            }
        }
        let compressed = offset - dataAt
        guard local64 || compressed < zip64Limit else {
            throw CheckpointError.malformed(path: path, reason: "member \(name) deflated past 4 GiB; write it stored")
        }
        let end = offset
        guard fseeko(handle, off_t(headerAt), SEEK_SET) == 0 else { throw Self.systemError() }
        offset = headerAt
        try write(localHeader(name: nameBytes, deflate: deflate, crc: crc, compressed: compressed, size: size, zip64: local64))
        guard fseeko(handle, off_t(end), SEEK_SET) == 0 else { throw Self.systemError() }
        offset = end
        directory.append(
            centralEntry(name: nameBytes, deflate: deflate, crc: crc, compressed: compressed, size: size, localAt: headerAt))
        count += 1
    }

    /// Writes the central directory and the end record, and closes the file.
    public func finish() throws {
        guard let handle else { return }
        let cdAt = offset
        try write(directory)
        let cdSize = directory.count
        let endAt = offset
        if count >= min(0xFFFF, zip64Limit) || cdSize >= zip64Limit || cdAt >= zip64Limit {
            var r = ZipBytes()
            r.u32(0x0606_4b50); r.u64(44); r.u16(ZipBytes.madeBy); r.u16(45); r.u32(0); r.u32(0)
            r.u64(count); r.u64(count); r.u64(cdSize); r.u64(cdAt)
            r.u32(0x0706_4b50); r.u32(0); r.u64(endAt); r.u32(1)
            try write(r.data)
        }
        var e = ZipBytes()
        e.u32(0x0605_4b50); e.u16(0); e.u16(0)
        let entries = count >= min(0xFFFF, zip64Limit) ? 0xFFFF : count
        e.u16(entries); e.u16(entries)
        e.u32(cdSize >= zip64Limit ? 0xFFFF_FFFF : cdSize); e.u32(cdAt >= zip64Limit ? 0xFFFF_FFFF : cdAt)
        e.u16(0)
        try write(e.data)
        self.handle = nil
        guard fclose(handle) == 0 else { throw Self.systemError() }
    }

    private func localHeader(name: Data, deflate: Bool, crc: UInt32, compressed: Int, size: Int, zip64: Bool) -> Data {
        var h = ZipBytes()
        h.u32(0x0403_4b50); h.u16(zip64 ? 45 : 20); h.u16(ZipBytes.utf8Flag); h.u16(deflate ? 8 : 0)
        h.u16(ZipBytes.time); h.u16(ZipBytes.date); h.u32(Int(crc))
        h.u32(zip64 ? 0xFFFF_FFFF : compressed); h.u32(zip64 ? 0xFFFF_FFFF : size)
        h.u16(name.count); h.u16(zip64 ? 20 : 0)
        h.data.append(name)
        if zip64 { h.u16(1); h.u16(16); h.u64(size); h.u64(compressed) }
        return h.data
    }

    private func centralEntry(name: Data, deflate: Bool, crc: UInt32, compressed: Int, size: Int, localAt: Int) -> Data {
        // ZIP64 extra: the 64-bit value of each saturated field, in the order uncompressed, compressed, offset.
        let big = [size, compressed, localAt].map { $0 >= zip64Limit }
        var extra = ZipBytes()
        if big.contains(true) {
            extra.u16(1); extra.u16(8 * big.filter { $0 }.count)
            for (v, b) in zip([size, compressed, localAt], big) where b { extra.u64(v) }
        }
        var c = ZipBytes()
        c.u32(0x0201_4b50); c.u16(ZipBytes.madeBy); c.u16(big.contains(true) ? 45 : 20); c.u16(ZipBytes.utf8Flag)
        c.u16(deflate ? 8 : 0); c.u16(ZipBytes.time); c.u16(ZipBytes.date); c.u32(Int(crc))
        c.u32(big[1] ? 0xFFFF_FFFF : compressed); c.u32(big[0] ? 0xFFFF_FFFF : size)
        c.u16(name.count); c.u16(extra.data.count); c.u16(0); c.u16(0); c.u16(0)
        c.u32(ZipBytes.regularFile0644); c.u32(big[2] ? 0xFFFF_FFFF : localAt)
        c.data.append(name)
        c.data.append(extra.data)
        return c.data
    }

    /// Raw deflate (zlib level 6, 32 KiB window, memory level 9) of the provider's bytes; returns their CRC-32.
    private func deflateMember(size: Int, chunk: Int, provider: (Int, Int) throws -> Data) throws -> UInt32 {
        var stream = z_stream()
        guard
            deflateInit2_(
                &stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
                == Z_OK
        else { throw CheckpointError.malformed(path: path, reason: "zlib deflate init failed") }
        defer { deflateEnd(&stream) }
        var crc = ZipCRC.start
        var out = [UInt8](repeating: 0, count: chunk)
        var p = 0
        repeat {
            let n = min(chunk, size - p)
            var piece = try provider(p, n)
            guard piece.count == n else { throw CheckpointError.malformed(path: path, reason: "provider gave \(piece.count) bytes") }
            p += n
            let flush = p >= size ? Z_FINISH : Z_NO_FLUSH
            try piece.withUnsafeMutableBytes { input in
                crc = ZipCRC.update(crc, UnsafeRawBufferPointer(input))
                stream.next_in = input.baseAddress?.assumingMemoryBound(to: Bytef.self)
                stream.avail_in = uInt(n)
                var status: Int32
                repeat {
                    status = out.withUnsafeMutableBytes { o in
                        stream.next_out = o.baseAddress!.assumingMemoryBound(to: Bytef.self)
                        stream.avail_out = uInt(chunk)
                        return CVarlabZlib.deflate(&stream, flush)
                    }
                    guard status >= Z_OK || status == Z_BUF_ERROR else {
                        throw CheckpointError.malformed(path: path, reason: "zlib deflate failed (\(status))")
                    }
                    try out.withUnsafeBytes { try write(UnsafeRawBufferPointer(rebasing: $0[0..<(chunk - Int(stream.avail_out))])) }
                } while stream.avail_out == 0
            }
            if flush == Z_FINISH { break }
        } while true
        return crc
    }
}

/// Little-endian header fields.
struct ZipBytes {
    var data = Data()
    /// "Made by" Unix (3), spec version 2.1, as ZIPFoundation wrote it (keeps older sample files byte-identical).
    static let madeBy = 789
    static let utf8Flag = 0x0800
    /// 00:00:00 on 1980-01-01 in DOS format, the zip epoch.
    static let time = 0
    static let date = (0 << 9) | (1 << 5) | 1
    /// Unix mode S_IFREG | 0644 in the high half of the external attributes.
    static let regularFile0644 = (0o100644) << 16
    mutating func u16(_ v: Int) { withUnsafeBytes(of: UInt16(truncatingIfNeeded: v).littleEndian) { data.append(contentsOf: $0) } }
    mutating func u32(_ v: Int) { withUnsafeBytes(of: UInt32(truncatingIfNeeded: v).littleEndian) { data.append(contentsOf: $0) } }
    mutating func u64(_ v: Int) { withUnsafeBytes(of: UInt64(v).littleEndian) { data.append(contentsOf: $0) } }
}
