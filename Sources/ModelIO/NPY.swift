import Foundation

/// NumPy `.npy` arrays (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html):
/// the magic "\x93NUMPY", a version byte pair, a little-endian header length (2 bytes in 1.0, 4 in 2.0/3.0),
/// a Python dict literal `{'descr': '<f4', 'fortran_order': False, 'shape': (8, 32, 32, 3), }` padded with
/// spaces and a newline, then the raw C-order bytes. Only little-endian / byte-sized plain dtypes are
/// accepted; object arrays, structured dtypes, big-endian data and Fortran order are refused.
public enum NPYDType: String, Sendable, CaseIterable {
    case float32 = "<f4", float64 = "<f8", uint8 = "|u1", int64 = "<i8", int32 = "<i4", bool = "|b1"

    public var itemSize: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .uint8, .bool: return 1
        }
    }

    /// Parses a numpy descr string. Byte-sized types may be written with '|', '<' or '=' (numpy writes '|').
    static func parse(_ descr: String) -> NPYDType? {
        switch descr {
        case "<f4": return .float32
        case "<f8": return .float64
        case "|u1", "<u1", "=u1", "u1": return .uint8
        case "<i8": return .int64
        case "<i4": return .int32
        case "|b1", "<b1", "=b1", "b1", "?": return .bool
        default: return nil
        }
    }
}

/// What the `.npy` header says; `dataOffset` is where the raw bytes start.
public struct NPYHeader: Sendable, Equatable {
    public let dtype: NPYDType
    public let shape: [Int]
    public let dataOffset: Int
    public var count: Int { shape.reduce(1, *) }
    public var byteCount: Int { count * dtype.itemSize }
    public init(dtype: NPYDType, shape: [Int], dataOffset: Int) { self.dtype = dtype; self.shape = shape; self.dataOffset = dataOffset }
}

public enum NPYError: Error, CustomStringConvertible, Equatable {
    case malformed(source: String, reason: String)
    case unsupported(source: String, reason: String)
    case wrongDType(source: String, dtype: NPYDType, wanted: String)

    public var description: String {
        switch self {
        case let .malformed(s, r): return "\(s): malformed .npy: \(r)"
        case let .unsupported(s, r): return "\(s): unsupported .npy: \(r)"
        case let .wrongDType(s, d, w): return "\(s): array has dtype \(d) (\(d.rawValue)), expected \(w)"
        }
    }
}

/// One array: dtype, shape and its raw little-endian C-order bytes.
public struct NPYArray: Sendable, Equatable {
    public let dtype: NPYDType
    public let shape: [Int]
    public let data: Data

    /// Largest element count accepted from a header (2^40): anything larger is a lie or a mistake, and is
    /// refused before any allocation.
    static let maxElements = 1 << 40

    public var count: Int { shape.reduce(1, *) }

    /// Raw bytes, which must hold exactly `shape` elements of `dtype`.
    public init(dtype: NPYDType, shape: [Int], data: Data) throws {
        let n = try NPY.checkedCount(shape, source: "array")
        guard n * dtype.itemSize == data.count else {
            throw NPYError.malformed(
                source: "array", reason: "shape \(shape) x \(dtype.rawValue) needs \(n * dtype.itemSize) bytes, got \(data.count)")
        }
        self.dtype = dtype; self.shape = shape; self.data = data
    }

    public init(float32 values: [Float], shape: [Int]) throws {
        try self.init(dtype: .float32, shape: shape, data: values.withUnsafeBytes { Data($0) })
    }
    public init(float64 values: [Double], shape: [Int]) throws {
        try self.init(dtype: .float64, shape: shape, data: values.withUnsafeBytes { Data($0) })
    }
    public init(uint8 values: [UInt8], shape: [Int]) throws {
        try self.init(dtype: .uint8, shape: shape, data: Data(values))
    }
    public init(int64 values: [Int64], shape: [Int]) throws {
        try self.init(dtype: .int64, shape: shape, data: values.withUnsafeBytes { Data($0) })
    }
    public init(int32 values: [Int32], shape: [Int]) throws {
        try self.init(dtype: .int32, shape: shape, data: values.withUnsafeBytes { Data($0) })
    }
    public init(bool values: [Bool], shape: [Int]) throws {
        try self.init(dtype: .bool, shape: shape, data: Data(values.map { $0 ? 1 : 0 }))
    }

    private func load<T>(_ type: T.Type, _ convert: (UnsafeRawBufferPointer, Int) -> T) -> [T] {
        let n = count
        return data.withUnsafeBytes { raw in (0..<n).map { convert(raw, $0) } }
    }

    /// Any dtype as Float32 (float64 rounds to nearest, integers convert exactly up to 2^24).
    public func asFloat() -> [Float] {
        switch dtype {
        case .float32: return load(Float.self) { $0.loadUnaligned(fromByteOffset: $1 * 4, as: Float.self) }
        case .float64: return load(Float.self) { Float($0.loadUnaligned(fromByteOffset: $1 * 8, as: Double.self)) }
        case .int64: return load(Float.self) { Float($0.loadUnaligned(fromByteOffset: $1 * 8, as: Int64.self)) }
        case .int32: return load(Float.self) { Float($0.loadUnaligned(fromByteOffset: $1 * 4, as: Int32.self)) }
        case .uint8, .bool: return load(Float.self) { Float($0[$1]) }
        }
    }

    /// Any dtype as Float64 (exact for every supported dtype except int64 beyond 2^53).
    public func asDouble() -> [Double] {
        switch dtype {
        case .float32: return load(Double.self) { Double($0.loadUnaligned(fromByteOffset: $1 * 4, as: Float.self)) }
        case .float64: return load(Double.self) { $0.loadUnaligned(fromByteOffset: $1 * 8, as: Double.self) }
        case .int64: return load(Double.self) { Double($0.loadUnaligned(fromByteOffset: $1 * 8, as: Int64.self)) }
        case .int32: return load(Double.self) { Double($0.loadUnaligned(fromByteOffset: $1 * 4, as: Int32.self)) }
        case .uint8, .bool: return load(Double.self) { Double($0[$1]) }
        }
    }

    /// Integer and bool dtypes as Int64; floats are refused (no silent truncation).
    public func asInt64() throws -> [Int64] {
        switch dtype {
        case .int64: return load(Int64.self) { $0.loadUnaligned(fromByteOffset: $1 * 8, as: Int64.self) }
        case .int32: return load(Int64.self) { Int64($0.loadUnaligned(fromByteOffset: $1 * 4, as: Int32.self)) }
        case .uint8, .bool: return load(Int64.self) { Int64($0[$1]) }
        case .float32, .float64: throw NPYError.wrongDType(source: "array", dtype: dtype, wanted: "an integer type")
        }
    }

    /// uint8 (or bool) bytes as they are; other dtypes are refused (convert explicitly instead).
    public func asUInt8() throws -> [UInt8] {
        guard dtype == .uint8 || dtype == .bool else { throw NPYError.wrongDType(source: "array", dtype: dtype, wanted: "uint8") }
        return [UInt8](data)
    }

    /// The file bytes of this array in npy format 1.0.
    public func encoded() -> Data {
        var out = NPY.encodeHeader(dtype: dtype, shape: shape)
        out.append(data)
        return out
    }
}

public enum NPY {
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY

    static func checkedCount(_ shape: [Int], source: String) throws -> Int {
        var n = 1
        for d in shape {
            guard d >= 0 else { throw NPYError.malformed(source: source, reason: "negative dimension in shape \(shape)") }
            let (p, o) = n.multipliedReportingOverflow(by: d)
            guard !o, p <= NPYArray.maxElements else {
                throw NPYError.malformed(source: source, reason: "absurd shape \(shape) (more than 2^40 elements)")
            }
            n = p
        }
        return n
    }

    /// Parses the header at the start of `prefix` (which needs only the header bytes, not the data).
    /// Returns nil when `prefix` is too short to hold the whole header yet.
    public static func parseHeader(_ prefix: Data, source: String) throws -> NPYHeader? {
        let b = [UInt8](prefix.prefix(12))
        if b.count < 10 {
            if b.count >= 6 && Array(b[0..<6]) != magic { throw NPYError.malformed(source: source, reason: "missing the \\x93NUMPY magic") }
            return nil
        }
        guard Array(b[0..<6]) == magic else { throw NPYError.malformed(source: source, reason: "missing the \\x93NUMPY magic") }
        let major = b[6]
        let headerLen: Int, start: Int
        switch major {
        case 1:
            headerLen = Int(b[8]) | Int(b[9]) << 8; start = 10
        case 2, 3:
            guard b.count >= 12 else { return nil }
            headerLen = Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24; start = 12
        default:
            throw NPYError.unsupported(source: source, reason: "format version \(major).\(b[7])")
        }
        guard headerLen <= 1 << 20 else { throw NPYError.malformed(source: source, reason: "header length \(headerLen) is implausible") }
        guard prefix.count >= start + headerLen else { return nil }
        let hb = prefix.subdata(in: prefix.startIndex + start..<prefix.startIndex + start + headerLen)
        guard let text = String(data: hb, encoding: major == 3 ? .utf8 : .isoLatin1) else {
            throw NPYError.malformed(source: source, reason: "header is not text")
        }
        var parser = HeaderParser(text: text, source: source)
        let dict = try parser.parseDict()
        guard case let .string(descr)? = dict["descr"] else {
            if dict["descr"] != nil {
                throw NPYError.unsupported(source: source, reason: "structured dtype (descr is not a simple type string)")
            }
            throw NPYError.malformed(source: source, reason: "header has no 'descr'")
        }
        guard case let .bool(fortran)? = dict["fortran_order"] else {
            throw NPYError.malformed(source: source, reason: "header has no 'fortran_order'")
        }
        guard case let .tuple(shape)? = dict["shape"] else {
            throw NPYError.malformed(source: source, reason: "header has no 'shape' tuple")
        }
        if descr.contains("O") {
            throw NPYError.unsupported(source: source, reason: "object arrays (descr '\(descr)') are not supported: they need pickle")
        }
        guard let dtype = NPYDType.parse(descr) else {
            throw NPYError.unsupported(
                source: source, reason: "dtype '\(descr)' (supported: " + NPYDType.allCases.map(\.rawValue).joined(separator: ", ") + ")")
        }
        if fortran {
            throw NPYError.unsupported(source: source, reason: "Fortran-order arrays are not supported (save with np.ascontiguousarray)")
        }
        _ = try checkedCount(shape, source: source)
        return NPYHeader(dtype: dtype, shape: shape, dataOffset: start + headerLen)
    }

    /// Parses a complete .npy file's bytes. The byte count after the header must match the shape exactly.
    public static func decode(_ bytes: Data, source: String = "npy") throws -> NPYArray {
        guard let h = try parseHeader(bytes, source: source) else {
            throw NPYError.malformed(source: source, reason: "file is truncated inside the header (\(bytes.count) bytes)")
        }
        let available = bytes.count - h.dataOffset
        guard available == h.byteCount else {
            throw NPYError.malformed(
                source: source,
                reason:
                    "header claims shape \(h.shape) x \(h.dtype.rawValue) = \(h.byteCount) bytes, but the file holds \(available) data bytes"
            )
        }
        return try NPYArray(
            dtype: h.dtype, shape: h.shape,
            data: bytes.subdata(in: bytes.startIndex + h.dataOffset..<bytes.endIndex))
    }

    public static func read(path: String) throws -> NPYArray {
        let f = try MappedFile(path: path)
        guard f.size > 0 else { throw NPYError.malformed(source: path, reason: "empty file") }
        return try decode(Data(f.bytes(0, f.size)), source: path)
    }

    /// Writes `array` as a 1.0 .npy file, atomically.
    public static func write(_ array: NPYArray, to path: String) throws {
        try AtomicFile.write(array.encoded(), to: path)
    }

    /// Header in format 1.0 (2.0 if it would not fit), padded so the data starts 64-byte aligned, as numpy does.
    public static func encodeHeader(dtype: NPYDType, shape: [Int]) -> Data {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var dict = "{'descr': '\(dtype.rawValue)', 'fortran_order': False, 'shape': \(shapeText), }"
        func padded(_ pre: Int) -> Int { ((pre + dict.utf8.count + 1 + 63) / 64) * 64 - pre }
        let v1 = padded(10) <= 65535
        let pre = v1 ? 10 : 12
        let n = padded(pre)
        dict += String(repeating: " ", count: n - dict.utf8.count - 1) + "\n"
        var out = Data(magic)
        if v1 {
            out.append(contentsOf: [1, 0, UInt8(n & 0xff), UInt8(n >> 8)])
        } else {
            out.append(contentsOf: [2, 0, UInt8(n & 0xff), UInt8((n >> 8) & 0xff), UInt8((n >> 16) & 0xff), UInt8(n >> 24)])
        }
        out.append(contentsOf: Array(dict.utf8))
        return out
    }
}

/// A tiny parser for the Python literal numpy writes as the header: a dict of str keys to str / bool /
/// tuple-of-int values. Anything else (lists of fields for structured dtypes, ...) is reported, never evaluated.
private struct HeaderParser {
    enum Value { case string(String), bool(Bool), tuple([Int]), other }
    let chars: [Character]
    var i = 0
    let source: String
    init(text: String, source: String) { chars = Array(text); self.source = source }

    func fail(_ why: String) -> NPYError { .malformed(source: source, reason: "header dict: \(why)") }
    mutating func skipSpace() { while i < chars.count, chars[i].isWhitespace { i += 1 } }
    mutating func expect(_ c: Character) throws {
        skipSpace()
        guard i < chars.count, chars[i] == c else { throw fail("expected '\(c)' at position \(i)") }
        i += 1
    }
    mutating func peek() -> Character? { skipSpace(); return i < chars.count ? chars[i] : nil }

    mutating func parseString() throws -> String {
        skipSpace()
        guard i < chars.count, chars[i] == "'" || chars[i] == "\"" else { throw fail("expected a string at position \(i)") }
        let q = chars[i]; i += 1
        var s = ""
        while i < chars.count, chars[i] != q { s.append(chars[i]); i += 1 }
        guard i < chars.count else { throw fail("unterminated string") }
        i += 1
        return s
    }

    mutating func parseValue() throws -> Value {
        guard let c = peek() else { throw fail("unexpected end") }
        if c == "'" || c == "\"" { return .string(try parseString()) }
        if c == "(" {
            i += 1
            var dims: [Int] = []
            while true {
                guard let d = peek() else { throw fail("unterminated tuple") }
                if d == ")" { i += 1; break }
                var num = ""
                while i < chars.count, chars[i].isNumber || chars[i] == "-" { num.append(chars[i]); i += 1 }
                if i < chars.count, chars[i] == "L" { i += 1 }  // Python 2 longs
                guard let v = Int(num) else { throw fail("shape entry '\(num)' is not an integer") }
                dims.append(v)
                if peek() == "," { i += 1 }
            }
            return .tuple(dims)
        }
        if c == "[" || c == "{" {
            // structured dtype descriptions: skip the balanced bracket and report as unsupported by the caller
            var depth = 0
            repeat {
                guard i < chars.count else { throw fail("unbalanced brackets") }
                if "[{(".contains(chars[i]) { depth += 1 } else if "]})".contains(chars[i]) { depth -= 1 }
                i += 1
            } while depth > 0
            return .other
        }
        var word = ""
        while i < chars.count, chars[i].isLetter || chars[i].isNumber { word.append(chars[i]); i += 1 }
        if word == "True" { return .bool(true) }
        if word == "False" { return .bool(false) }
        throw fail("unexpected value '\(word)'")
    }

    mutating func parseDict() throws -> [String: Value] {
        try expect("{")
        var out: [String: Value] = [:]
        while true {
            guard let c = peek() else { throw fail("unterminated dict") }
            if c == "}" { i += 1; break }
            let k = try parseString()
            try expect(":")
            out[k] = try parseValue()
            if peek() == "," { i += 1 }
        }
        return out
    }
}
