import CVarlabZlib
import Foundation
import ZIPFoundation

/// Sizes a zip entry may claim in a file of `fileSize` bytes: a stored entry holds exactly its bytes, a deflated
/// one expands at most ~1032 : 1. Checked before ZIPFoundation or an allocation sees a size, so a header claiming
/// 2^64 - 1 or a terabyte is an error naming the entry, not a trap.
enum ZipSizes {
    static let maxDeflateRatio: UInt64 = 1100

    static func check(_ e: Entry, fileSize: Int, path: String) throws {
        func fail(_ why: String) -> Error { CheckpointError.malformed(path: path, reason: "zip entry \(e.path) \(why)") }
        let c = e.compressedSize, u = e.uncompressedSize
        guard c <= UInt64(fileSize) else { throw fail("claims \(c) compressed bytes in a \(fileSize)-byte file") }
        if !e.isCompressed {
            guard u == c else { throw fail("is stored but claims \(u) bytes for \(c) stored bytes") }
        } else {
            let (bound, o) = c.multipliedReportingOverflow(by: maxDeflateRatio)
            guard !o, u <= max(bound, 1 << 16) else {
                throw fail("claims \(u) bytes from \(c) deflated bytes (more than deflate can expand)")
            }
        }
        guard u <= UInt64(Int.max / 2) else { throw fail("claims an absurd size (\(u) bytes)") }
    }
}

/// CRC-32 of zip entries. ZIPFoundation's streaming `extract(_:consumer:)` computes the checksum but never
/// compares it with the entry's, and varlab reads stored tensors straight from the memory map; both paths go
/// through here, so a corrupted entry is an error instead of silently wrong weights, images or labels.
enum ZipCRC {
    /// zlib's crc32 (the zip polynomial), in pieces below 4 GiB (its length argument is 32-bit).
    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc = crc32(0, nil, 0)
        var offset = 0
        while offset < bytes.count {
            let n = min(bytes.count - offset, 1 << 30)
            crc = crc32(crc, bytes.baseAddress!.advanced(by: offset).assumingMemoryBound(to: Bytef.self), uInt(n))
            offset += n
        }
        return UInt32(truncatingIfNeeded: crc)
    }

    /// Throws unless `computed` is the CRC-32 the zip header records for `entry`.
    static func check(_ computed: UInt32, _ entry: Entry, path: String) throws {
        guard computed == entry.checksum else {
            throw CheckpointError.malformed(
                path: path,
                reason: String(
                    format: "zip entry %@ fails its CRC-32 check (stored %08x, computed %08x): the file is corrupted",
                    entry.path, entry.checksum, computed))
        }
    }
}
