import Foundation
import ModelIO
import TestSupport
import XCTest

/// varlab's own zip reader and writer (npz, torch.save): round trips, the ZIP64 form, and damaged archives.
final class ZipArchiveTests: XCTestCase {
    var tmp: URL!
    override func setUp() {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("zip-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(at: tmp) }
    func file(_ name: String) -> String { tmp.appendingPathComponent(name).path }

    /// Pseudo-random but compressible bytes (runs of repeated values).
    func payload(_ n: Int, seed: UInt64) -> Data {
        var s = seed
        var out = Data(capacity: n)
        while out.count < n {
            s = s &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            out.append(contentsOf: [UInt8](repeating: UInt8(truncatingIfNeeded: s >> 56), count: min(n - out.count, Int(s >> 60) + 1)))
        }
        return out
    }

    func write(_ path: String, _ members: [(String, Data, Bool)], zip64Limit: Int = 0xFFFF_FFFF, chunk: Int = 1 << 20) throws {
        let w = try ZipWriter(path: path, zip64Limit: zip64Limit)
        for (name, d, deflate) in members {
            try w.add(name: name, size: d.count, deflate: deflate, chunk: chunk) { p, n in d.subdata(in: p..<p + n) }
        }
        try w.finish()
    }

    func readAll(_ path: String, chunk: Int = 1 << 20) throws -> [String: Data] {
        let a = try ZipArchive(path: path)
        var out: [String: Data] = [:]
        for e in a.entries {
            var d = Data()
            try a.read(e, chunk: chunk) {
                d.append(contentsOf: $0); return true
            }
            out[e.name] = d
        }
        return out
    }

    func testStoredAndDeflatedMembersRoundTripAtAnyChunkSize() throws {
        let members: [(String, Data, Bool)] = [
            ("empty.npy", Data(), false), ("empty-deflated.npy", Data(), true),
            ("a.npy", payload(100_003, seed: 1), false), ("dir/b.npy", payload(250_000, seed: 2), true),
            ("ü-name", payload(7, seed: 3), true),
        ]
        for chunk in [1, 977, 1 << 20] {
            let p = file("rt\(chunk).zip")
            try write(p, members, chunk: max(chunk, 64))
            let got = try readAll(p, chunk: chunk)
            for (name, d, _) in members { XCTAssertEqual(got[name], d, "\(name), chunk \(chunk)") }
            let a = try ZipArchive(path: p)
            XCTAssertEqual(a.entries.map(\.name), members.map(\.0))
            XCTAssertEqual(a.entries.map(\.isStored), members.map { !$0.2 })
            // Deflate really compresses the run-heavy payload.
            XCTAssertLessThan(a.entries[3].compressedSize, 250_000 / 2)
        }
        // Same members, same bytes (no clock, no randomness).
        try write(file("again.zip"), members)
        try write(file("again2.zip"), members)
        XCTAssertEqual(
            try Data(contentsOf: URL(fileURLWithPath: file("again.zip"))), try Data(contentsOf: URL(fileURLWithPath: file("again2.zip"))))
    }

    /// The ZIP64 form (sizes, offsets and the member count past the 32-bit / 16-bit fields), reached by lowering the
    /// limit: every field that crosses it moves to the ZIP64 records, and the reader follows them.
    func testZip64FormRoundTrips() throws {
        let members: [(String, Data, Bool)] = (0..<6).map { ("m\($0).npy", payload(40 + 30 * $0, seed: UInt64($0)), $0 % 2 == 1) }
        let p = file("z64.zip")
        try write(p, members, zip64Limit: 64)
        let got = try readAll(p)
        for (name, d, _) in members { XCTAssertEqual(got[name], d, name) }
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: p)))
        func occurrences(_ sig: [UInt8]) -> Int { (0...(bytes.count - 4)).filter { Array(bytes[$0..<$0 + 4]) == sig }.count }
        XCTAssertEqual(occurrences([0x50, 0x4b, 0x06, 0x06]), 1, "ZIP64 end record")
        XCTAssertEqual(occurrences([0x50, 0x4b, 0x06, 0x07]), 1, "ZIP64 locator")
        // An .npz in this form reads through NPZFile as well.
        let npz = file("z64.npz")
        var arrays = NPZWriter()
        arrays.add("arr_0", try NPYArray(int64: Array(0..<50), shape: [5, 10]))
        try write(npz, [("arr_0.npy", try encodedNPY(arrays), false)], zip64Limit: 16)
        XCTAssertEqual(try NPZFile(path: npz).array("arr_0").asInt64(), (0..<50).map { Int64($0) })
    }

    /// The .npy bytes of a one-array NPZWriter (read back from a normal .npz).
    func encodedNPY(_ w: NPZWriter) throws -> Data {
        let p = file("enc.npz")
        try w.write(to: p)
        let a = try ZipArchive(path: p)
        return try a.data(a.entries[0])
    }

    /// Every truncation and many single-byte corruptions of a valid archive give an error (or, for bytes that carry
    /// no meaning such as a name byte, consistent data), never a crash or a hang.
    func testDamagedArchivesFailCleanly() throws {
        let p = file("ok.zip")
        try write(p, [("s.npy", payload(300, seed: 5), false), ("d.npy", payload(3000, seed: 6), true)])
        let good = [UInt8](try Data(contentsOf: URL(fileURLWithPath: p)))
        let bad = file("bad.zip")
        for n in 0..<good.count {
            try Data(good[0..<n]).write(to: URL(fileURLWithPath: bad))
            XCTAssertThrowsError(try readAll(bad), "truncated to \(n) bytes")
        }
        var failures = 0
        for i in stride(from: 0, to: good.count, by: 3) {
            var b = good
            b[i] ^= 0xA5
            try Data(b).write(to: URL(fileURLWithPath: bad))
            do { _ = try readAll(bad) } catch {
                failures += 1
                XCTAssertTrue("\(error)".contains("bad.zip"), "\(error)")
            }
        }
        XCTAssertGreaterThan(failures, good.count / 3 / 2, "most flips are caught (CRC-32, headers, deflate)")
        // A deflated member whose stream stops early.
        let a = try ZipArchive(path: p)
        let d = a.entries[1]
        var cut = good
        cut.replaceSubrange(
            (d.dataOffset + d.compressedSize / 2)..<(d.dataOffset + d.compressedSize),
            with: [UInt8](repeating: 0, count: d.compressedSize - d.compressedSize / 2))
        try Data(cut).write(to: URL(fileURLWithPath: bad))
        XCTAssertThrowsError(try readAll(bad)) { XCTAssertTrue("\($0)".contains("d.npy"), "\($0)") }
    }

    func testUnsupportedMembersAreNamed() throws {
        let p = file("m.zip")
        try write(p, [("x.npy", payload(10, seed: 1), false)])
        var b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: p)))
        let cd = try XCTUnwrap((0...(b.count - 4)).first { b[$0..<($0 + 4)].elementsEqual([0x50, 0x4b, 0x01, 0x02]) })
        var method = b
        method[cd + 10] = 12  // bzip2
        try Data(method).write(to: URL(fileURLWithPath: file("bz.zip")))
        assertThrows(try ZipArchive(path: file("bz.zip")), ["bz.zip", "x.npy", "compression method 12"])
        b[cd + 8] |= 1  // encrypted
        try Data(b).write(to: URL(fileURLWithPath: file("enc.zip")))
        assertThrows(try ZipArchive(path: file("enc.zip")), ["enc.zip", "x.npy", "encrypted"])
    }
}
