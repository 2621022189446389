import Foundation
import Tensor

/// safetensors (https://huggingface.co/docs/safetensors): 8-byte little-endian header length, a JSON header
/// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the raw bytes.
/// The file is memory-mapped; every entry is validated before anything is allocated for it.
public final class SafetensorsFile: TensorArchive {
    public let path: String
    public let keys: [String]
    public let metadata: [String: String]
    private let entries: [String: (info: TensorInfo, offset: Int)]
    private let file: MappedFile

    /// Header size limit (the format's own reference limit is 100 MB).
    static let maxHeader = 100_000_000

    public init(path: String) throws {
        file = try MappedFile(path: path)
        self.path = path
        func bad(_ r: String) -> CheckpointError { .malformed(path: path, reason: r) }
        guard file.size >= 8 else { throw bad("file is \(file.size) bytes, shorter than the 8-byte header length") }
        let n64 = file.bytes(0, 8).loadUnaligned(as: UInt64.self)
        guard n64 <= UInt64(file.size - 8) else { throw bad("header length \(n64) exceeds the file size \(file.size)") }
        guard n64 <= UInt64(Self.maxHeader) else { throw bad("header length \(n64) is over the 100 MB limit") }
        let n = Int(n64)
        let headerBytes = Data(file.bytes(8, n))
        guard let json = try? JSONSerialization.jsonObject(with: headerBytes), let dict = json as? [String: Any] else {
            throw bad("header is not a JSON object")
        }
        let dataStart = 8 + n
        let dataSize = file.size - dataStart
        var meta: [String: String] = [:]
        var parsed: [(String, TensorInfo, Int, Int)] = []
        for (name, value) in dict {
            if name == "__metadata__" {
                if let m = value as? [String: Any] { for (k, v) in m { meta[k] = "\(v)" } }
                continue
            }
            guard let e = value as? [String: Any] else { throw bad("entry '\(name)' is not an object") }
            guard let ds = e["dtype"] as? String, let dtype = DType(rawValue: ds) else {
                throw bad("entry '\(name)' has unknown dtype \(e["dtype"] ?? "nil")")
            }
            guard let shapeAny = e["shape"] as? [Any] else { throw bad("entry '\(name)' has no shape") }
            var shape: [Int] = []
            var numel = 1
            for s in shapeAny {
                guard let v = (s as? NSNumber)?.intValue, v >= 0 else { throw bad("entry '\(name)' has invalid shape \(shapeAny)") }
                let (p, o) = numel.multipliedReportingOverflow(by: v)
                guard !o, p <= Int(Int32.max) * 64 else { throw bad("entry '\(name)' claims an absurd shape \(shapeAny)") }
                numel = p
                shape.append(v)
            }
            guard let offs = e["data_offsets"] as? [Any], offs.count == 2,
                let b = (offs[0] as? NSNumber)?.intValue, let en = (offs[1] as? NSNumber)?.intValue
            else {
                throw bad("entry '\(name)' has invalid data_offsets")
            }
            guard b >= 0, en >= b, en <= dataSize else {
                throw bad("entry '\(name)' offsets [\(b), \(en)] lie outside the \(dataSize)-byte data section")
            }
            guard en - b == numel * dtype.byteSize else {
                throw bad(
                    "entry '\(name)' shape \(shape) x \(dtype.rawValue) needs \(numel * dtype.byteSize) bytes but offsets span \(en - b)")
            }
            parsed.append((name, TensorInfo(dtype: dtype, shape: shape), b, en))
        }
        parsed.sort { $0.2 < $1.2 || ($0.2 == $1.2 && $0.3 < $1.3) }
        var prevEnd = 0
        var prevName = ""
        for (name, _, b, en) in parsed where en > b {
            guard b >= prevEnd else { throw bad("entries '\(prevName)' and '\(name)' overlap") }
            prevEnd = en; prevName = name
        }
        var map: [String: (TensorInfo, Int)] = [:]
        for (name, info, b, _) in parsed { map[name] = (info, dataStart + b) }
        entries = map
        keys = parsed.map(\.0)
        metadata = meta
    }

    public func info(_ key: String) -> TensorInfo? { entries[key]?.info }

    public func rawBytes(_ key: String) throws -> UnsafeRawBufferPointer {
        guard let e = entries[key] else { throw CheckpointError.missingKey(path: path, key: key, available: keys.count) }
        return file.bytes(e.offset, e.info.count * e.info.dtype.byteSize)
    }

    public func floatTensor(_ key: String) throws -> Tensor {
        guard let e = entries[key] else { throw CheckpointError.missingKey(path: path, key: key, available: keys.count) }
        let n = e.info.count
        let data = n == 0 ? [] : decodeFloats(file.bytes(e.offset, n * e.info.dtype.byteSize).baseAddress!, dtype: e.info.dtype, count: n)
        return Tensor(shape: e.info.shape, data: data)
    }

    public func intTensor(_ key: String) throws -> (shape: [Int], values: [Int64]) {
        guard let e = entries[key] else { throw CheckpointError.missingKey(path: path, key: key, available: keys.count) }
        let n = e.info.count
        if n == 0 { return (e.info.shape, []) }
        guard let v = decodeInts(file.bytes(e.offset, n * e.info.dtype.byteSize).baseAddress!, dtype: e.info.dtype, count: n) else {
            throw CheckpointError.wrongDType(path: path, key: key, dtype: e.info.dtype.rawValue, wanted: "an integer type")
        }
        return (e.info.shape, v)
    }
}

/// Writes safetensors files (F32 or F16 floats, I64 integers), atomically.
public struct SafetensorsWriter {
    public enum Entry {
        case float(Tensor, DType)  // .f32 or .f16
        case int64(shape: [Int], values: [Int64])
    }
    public var entries: [(String, Entry)] = []
    public var metadata: [String: String] = [:]
    public init() {}

    public mutating func add(_ name: String, _ t: Tensor, as dtype: DType = .f32) {
        precondition(dtype == .f32 || dtype == .f16, "safetensors writer supports F32 and F16 floats")
        entries.append((name, .float(t, dtype)))
    }
    public mutating func add(_ name: String, shape: [Int], int64 values: [Int64]) {
        entries.append((name, .int64(shape: shape, values: values)))
    }

    public func encoded() throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var body = Data()
        for (name, e) in entries {
            let begin = body.count
            switch e {
            case let .float(t, dtype):
                if dtype == .f32 {
                    t.data.withUnsafeBytes { body.append(contentsOf: $0) }
                } else {
                    let halves = t.data.map { Float16($0).bitPattern }
                    halves.withUnsafeBytes { body.append(contentsOf: $0) }
                }
                header[name] = ["dtype": dtype.rawValue, "shape": t.shape, "data_offsets": [begin, body.count]]
            case let .int64(shape, values):
                values.withUnsafeBytes { body.append(contentsOf: $0) }
                header[name] = ["dtype": "I64", "shape": shape, "data_offsets": [begin, body.count]]
            }
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad the header with spaces so the data section starts 8-byte aligned.
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var out = Data()
        var n = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(body)
        return out
    }

    public func write(to path: String) throws {
        try AtomicFile.write(try encoded(), to: path)
    }
}
