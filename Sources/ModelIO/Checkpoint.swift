import Foundation
import Tensor

/// Element types found in checkpoints.
public enum DType: String, Sendable, CaseIterable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16", i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8",
        u8 = "U8", bool = "BOOL"

    public var byteSize: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }
    public var isFloatingPoint: Bool { self == .f64 || self == .f32 || self == .f16 || self == .bf16 }
}

public struct TensorInfo: Sendable, Equatable {
    public let dtype: DType
    public let shape: [Int]
    public init(dtype: DType, shape: [Int]) { self.dtype = dtype; self.shape = shape }
    public var count: Int { shape.reduce(1, *) }
}

/// Errors that name the file, the key and what was expected.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(path: String, reason: String)
    case malformed(path: String, reason: String)
    case missingKey(path: String, key: String, available: Int)
    case wrongShape(path: String, key: String, expected: [Int], actual: [Int])
    case wrongDType(path: String, key: String, dtype: String, wanted: String)
    case forbiddenGlobal(path: String, name: String)
    case unsupported(path: String, reason: String)
    /// No container at `keyPath` ("" = none given while the file holds several state dicts); lists the choices.
    case keyPathNotFound(path: String, keyPath: String, candidates: [String])

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason): return "\(path): cannot open: \(reason)"
        case let .malformed(path, reason): return "\(path): malformed checkpoint: \(reason)"
        case let .missingKey(path, key, available): return "\(path): missing key '\(key)' (the file has \(available) tensors)"
        case let .wrongShape(path, key, expected, actual): return "\(path): key '\(key)' has shape \(actual), expected \(expected)"
        case let .wrongDType(path, key, dtype, wanted): return "\(path): key '\(key)' has dtype \(dtype), expected \(wanted)"
        case let .forbiddenGlobal(path, name):
            return "\(path): pickle refers to global '\(name)', which is not on the allow-list (nothing was executed)"
        case let .unsupported(path, reason): return "\(path): unsupported: \(reason)"
        case let .keyPathNotFound(path, keyPath, candidates):
            let list = candidates.isEmpty ? "none" : candidates.joined(separator: ", ")
            if keyPath.isEmpty { return "\(path): holds no state dict at the top level; choose one with a key path: \(list)" }
            return "\(path): no state dict at key path '\(keyPath)'; available: \(list)"
        }
    }
}

/// A named collection of tensors (a state dict), whatever the file format.
public protocol TensorArchive: AnyObject {
    /// The file this came from, used in error messages.
    var path: String { get }
    /// Tensor names in file order.
    var keys: [String] { get }
    func info(_ key: String) -> TensorInfo?
    /// Any numeric dtype converted to Float32.
    func floatTensor(_ key: String) throws -> Tensor
    /// Integer / bool dtypes as Int64 (floats are refused).
    func intTensor(_ key: String) throws -> (shape: [Int], values: [Int64])
}

extension TensorArchive {
    public func contains(_ key: String) -> Bool { info(key) != nil }

    /// Float tensor whose shape must be `expected` (-1 entries match anything).
    public func floatTensor(_ key: String, shape expected: [Int]) throws -> Tensor {
        guard let i = info(key) else { throw CheckpointError.missingKey(path: path, key: key, available: keys.count) }
        guard i.shape.count == expected.count, zip(i.shape, expected).allSatisfy({ $1 == -1 || $0 == $1 }) else {
            throw CheckpointError.wrongShape(path: path, key: key, expected: expected, actual: i.shape)
        }
        return try floatTensor(key)
    }

    public func requireInfo(_ key: String) throws -> TensorInfo {
        guard let i = info(key) else { throw CheckpointError.missingKey(path: path, key: key, available: keys.count) }
        return i
    }

    public var parameterCount: Int { keys.reduce(0) { $0 + (info($1)?.count ?? 0) } }
}

/// A view of an archive restricted to keys under `prefix` (e.g. "model." or "ema."), with the prefix removed.
public final class PrefixedArchive: TensorArchive {
    public let base: TensorArchive
    public let prefix: String
    public init(_ base: TensorArchive, prefix: String) { self.base = base; self.prefix = prefix }
    public var path: String { base.path + (prefix.isEmpty ? "" : " [\(prefix)]") }
    public var keys: [String] { base.keys.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) } }
    public func info(_ key: String) -> TensorInfo? { base.info(prefix + key) }
    public func floatTensor(_ key: String) throws -> Tensor {
        guard info(key) != nil else { throw CheckpointError.missingKey(path: path, key: key, available: keys.count) }
        return try base.floatTensor(prefix + key)
    }
    public func intTensor(_ key: String) throws -> (shape: [Int], values: [Int64]) {
        guard info(key) != nil else { throw CheckpointError.missingKey(path: path, key: key, available: keys.count) }
        return try base.intTensor(prefix + key)
    }
}

/// Converts raw little-endian bytes of a dtype to Float32.
public func decodeFloats(_ src: UnsafeRawPointer, dtype: DType, count: Int) -> [Float] {
    var out = [Float](repeating: 0, count: count)
    out.withUnsafeMutableBufferPointer { dst in
        switch dtype {
        case .f32:
            memcpy(dst.baseAddress!, src, count * 4)
        case .f64:
            for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i * 8, as: Double.self)) }
        case .f16:
            for i in 0..<count { dst[i] = Float(Float16(bitPattern: src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) }
        case .bf16:
            for i in 0..<count {
                dst[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) << 16)
            }
        case .i64: for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)) }
        case .i32: for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)) }
        case .i16: for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i * 2, as: Int16.self)) }
        case .i8: for i in 0..<count { dst[i] = Float(src.load(fromByteOffset: i, as: Int8.self)) }
        case .u8, .bool: for i in 0..<count { dst[i] = Float(src.load(fromByteOffset: i, as: UInt8.self)) }
        }
    }
    return out
}

/// Converts raw little-endian integer bytes to Int64; nil for floating dtypes.
public func decodeInts(_ src: UnsafeRawPointer, dtype: DType, count: Int) -> [Int64]? {
    switch dtype {
    case .i64: return (0..<count).map { src.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self) }
    case .i32: return (0..<count).map { Int64(src.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
    case .i16: return (0..<count).map { Int64(src.loadUnaligned(fromByteOffset: $0 * 2, as: Int16.self)) }
    case .i8: return (0..<count).map { Int64(src.load(fromByteOffset: $0, as: Int8.self)) }
    case .u8, .bool: return (0..<count).map { Int64(src.load(fromByteOffset: $0, as: UInt8.self)) }
    default: return nil
    }
}
