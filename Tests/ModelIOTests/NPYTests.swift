import Foundation
import ModelIO
import TestSupport
import XCTest

final class NPYTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("varlab-npy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    func file(_ name: String) -> String { tmp.appendingPathComponent(name).path }

    // MARK: the ADM evaluator files

    func testADMSampleBatch() throws {
        let expected = try Fixtures.json("eval/adm_npz_expected.json")["sample_batch"] as! [String: Any]
        let npz = try NPZFile(path: Fixtures.path("eval/adm_sample_batch.npz"))
        XCTAssertEqual(npz.keys, ["arr_0", "arr_1"])
        let e0 = expected["arr_0"] as! [String: Any]
        let a0 = try npz.array("arr_0")
        XCTAssertEqual(a0.dtype, .uint8)
        XCTAssertEqual(a0.shape, e0["shape"] as! [Int])
        XCTAssertEqual(try a0.asUInt8().reduce(0) { $0 + Int($1) }, e0["sum"] as! Int)
        let a1 = try npz.array("arr_1")
        XCTAssertEqual(a1.dtype, .int64)
        XCTAssertEqual(try a1.asInt64(), ((expected["arr_1"] as! [String: Any])["values"] as! [Int]).map(Int64.init))

        // Streaming in row chunks sees the same bytes.
        var streamed = Data()
        var chunks = 0
        try npz.forEachRowChunk("arr_0", rows: 3) { c in
            XCTAssertEqual(Array(c.shape.dropFirst()), Array(a0.shape.dropFirst()))
            streamed.append(c.data); chunks += 1
        }
        XCTAssertEqual(streamed, a0.data)
        XCTAssertEqual(chunks, (a0.shape[0] + 2) / 3)
    }

    func testADMReferenceBatch() throws {
        let expected = try Fixtures.json("eval/adm_npz_expected.json")["reference_batch"] as! [String: Any]
        let all = try NPZFile.read(path: Fixtures.path("eval/adm_reference_batch.npz"))
        XCTAssertEqual(Set(all.keys), ["arr_0", "mu", "sigma", "mu_s", "sigma_s"])
        let e0 = expected["arr_0"] as! [String: Any]
        XCTAssertEqual(all["arr_0"]!.shape, e0["shape"] as! [Int])
        XCTAssertEqual(try all["arr_0"]!.asUInt8().reduce(0) { $0 + Int($1) }, e0["sum"] as! Int)
        for (name, traceKey, dtypeKey) in [("mu", "sigma_trace", "sigma_dtype"), ("mu_s", "sigma_s_trace", "sigma_s_dtype")] {
            let em = expected[name] as! [String: Any]
            let mu = all[name]!
            XCTAssertEqual(mu.dtype.rawValue, em["dtype"] as! String == "float32" ? "<f4" : "<f8")
            XCTAssertEqual(mu.asFloat(), (em["values"] as! [Double]).map(Float.init), name)
            let sigmaName = name == "mu" ? "sigma" : "sigma_s"
            let sigma = all[sigmaName]!
            XCTAssertEqual(expected[dtypeKey] as? String, "float64")
            XCTAssertEqual(sigma.dtype, .float64)
            let d = mu.shape[0]
            XCTAssertEqual(sigma.shape, [d, d])
            let s = sigma.asDouble()
            let trace = (0..<d).reduce(0.0) { $0 + s[$1 * d + $1] }
            let want = expected[traceKey] as! Double
            XCTAssertEqual(trace, want, accuracy: abs(want) * 1e-12, sigmaName)
        }
    }

    // MARK: round trips

    func testRoundTripEveryDType() throws {
        let arrays: [(String, NPYArray)] = [
            ("f32", try NPYArray(float32: [1.5, -2, .infinity, 0x1p-149, 3, 4], shape: [2, 3])),
            ("f64", try NPYArray(float64: [1e300, -0.1, .pi], shape: [3])),
            ("u8", try NPYArray(uint8: (0..<24).map { UInt8($0 * 11 % 256) }, shape: [2, 2, 2, 3])),
            ("i64", try NPYArray(int64: [Int64.min, -1, 0, Int64.max], shape: [4, 1])),
            ("i32", try NPYArray(int32: [Int32.min, 7, Int32.max], shape: [3])),
            ("b", try NPYArray(bool: [true, false, true], shape: [3])),
            ("scalar", try NPYArray(float64: [42], shape: [])),
            ("empty", try NPYArray(float32: [], shape: [0, 5])),
        ]
        for compressed in [false, true] {
            var w = NPZWriter(compressed: compressed)
            for (k, a) in arrays { w.add(k, a) }
            let p = file("rt\(compressed).npz")
            try w.write(to: p)
            let back = try NPZFile.read(path: p)
            XCTAssertEqual(back.keys, arrays.map(\.0))
            for (k, a) in arrays { XCTAssertEqual(back[k], a, k) }
        }
        for (k, a) in arrays {
            let p = file(k + ".npy")
            try NPY.write(a, to: p)
            XCTAssertEqual(try NPY.read(path: p), a, k)
            // numpy aligns the data to 64 bytes
            XCTAssertEqual((try Data(contentsOf: URL(fileURLWithPath: p)).count - a.data.count) % 64, 0)
        }
        XCTAssertEqual(try NPYArray(int64: [3, -4], shape: [2]).asDouble(), [3, -4])
        XCTAssertThrowsError(try NPYArray(float32: [1], shape: [2]).asInt64())
        XCTAssertThrowsError(try NPYArray(float32: [1, 2], shape: [2]).asInt64())
    }

    // MARK: hostile input

    /// A .npy file whose header text is `dict`, followed by `dataBytes` bytes.
    func npy(_ dict: String, dataBytes: Int) -> Data {
        var h = dict
        while (10 + h.utf8.count + 1) % 64 != 0 { h += " " }
        h += "\n"
        var d = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(h.utf8.count & 0xff), UInt8(h.utf8.count >> 8)])
        d.append(contentsOf: Array(h.utf8))
        d.append(Data(count: dataBytes))
        return d
    }

    func assertNPYError(_ data: Data, _ needle: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try NPY.decode(data, source: "x.npy"), file: file, line: line) { err in
            XCTAssertTrue("\(err)".contains(needle), "error '\(err)' should mention '\(needle)'", file: file, line: line)
        }
    }

    func testHostileNPY() throws {
        // sanity: the helper makes a valid file
        XCTAssertEqual(try NPY.decode(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", dataBytes: 24)).shape, [2, 3])
        assertNPYError(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", dataBytes: 20), "holds 20 data bytes")
        assertNPYError(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", dataBytes: 28), "holds 28 data bytes")
        assertNPYError(npy("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", dataBytes: 16), "object arrays")
        assertNPYError(npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", dataBytes: 24), "Fortran")
        assertNPYError(npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", dataBytes: 8), "dtype '>f4'")
        assertNPYError(npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", dataBytes: 8), "structured")
        assertNPYError(
            npy("{'descr': '<f4', 'fortran_order': False, 'shape': (100000000, 100000000, 1000), }", dataBytes: 8), "absurd shape")
        assertNPYError(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", dataBytes: 8), "absurd shape")
        assertNPYError(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3), }", dataBytes: 8), "negative")
        assertNPYError(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)", dataBytes: 24), "header dict")
        assertNPYError(Data([0x93, 0x4E, 0x55, 0x4D]), "truncated")
        assertNPYError(Data("PK\u{3}\u{4}hello world".utf8), "magic")
        let valid = npy("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", dataBytes: 24)
        assertNPYError(valid.prefix(40), "truncated")
    }

    func testHostileNPZ() throws {
        // A member whose header lies about its size.
        var w = NPZWriter()
        w.add("ok", try NPYArray(float32: [1, 2, 3], shape: [3]))
        let good = file("good.npz")
        try w.write(to: good)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))

        // Truncated archive: the central directory is gone.
        for cut in [bytes.count / 2, bytes.count - 10, 30] {
            let p = file("trunc\(cut).npz")
            try bytes.prefix(cut).write(to: URL(fileURLWithPath: p))
            XCTAssertThrowsError(try NPZFile.read(path: p)) { err in
                XCTAssertTrue("\(err)".contains("zip") || "\(err)".contains("truncated"), "\(err)")
            }
        }
        // Header rewritten in place to claim 4 elements where 3 are stored: same byte length, so the zip stays
        // valid except for the CRC, which the size check must catch first.
        var lying = bytes
        let from = Data("(3,)".utf8), to = Data("(4,)".utf8)
        let r = lying.range(of: from)!
        lying.replaceSubrange(r, with: to)
        let p = file("lying.npz")
        try lying.write(to: URL(fileURLWithPath: p))
        XCTAssertThrowsError(try NPZFile.read(path: p)) { err in
            XCTAssertTrue("\(err)".contains("header claims shape [4]"), "\(err)")
        }
        XCTAssertThrowsError(try NPZFile(path: file("missing.npz"))) { err in
            XCTAssertTrue("\(err)".contains("no such file"), "\(err)")
        }
        XCTAssertThrowsError(try NPZFile(path: good).array("nope")) { err in
            XCTAssertTrue("\(err)".contains("nope"), "\(err)")
        }
    }
}
