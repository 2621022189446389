import Foundation

/// A value produced by the restricted unpickler. Containers are reference types because pickles share them
/// through the memo (a dict is created, memoized, then filled).
public enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer too large for Int64: little-endian two's complement bytes (LONG1/LONG4).
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes(Data)
    case tuple(PickleTuple)
    case list(PickleList)
    case dict(PickleDict)
    /// A global that passed the allow-list (a class or function reference), kept as data; never called.
    case global(module: String, name: String)
    /// An inert record for an allow-listed plain class such as argparse.Namespace (its state is kept as data).
    case object(PickleObject)
    case storage(TorchStorageRef)
    case tensor(TorchTensorRef)

    var asInt: Int? { if case let .int(v) = self { return v }; if case let .bool(b) = self { return b ? 1 : 0 }; return nil }
    var asString: String? { if case let .string(s) = self { return s }; return nil }
    var tupleItems: [PickleValue]? {
        if case let .tuple(t) = self { return t.items }
        if case let .list(l) = self { return l.items }
        return nil
    }

    /// A short human-readable rendering (bounded in depth and length).
    public func summary(maxLength: Int = 200) -> String {
        var out = ""
        render(into: &out, depth: 0, limit: maxLength)
        return out.count > maxLength ? String(out.prefix(maxLength)) + "..." : out
    }

    private func render(into out: inout String, depth: Int, limit: Int) {
        if out.count > limit { return }
        if depth > 4 { out += "..."; return }
        func seq(_ items: [PickleValue], _ open: String, _ close: String) {
            out += open
            for (i, v) in items.enumerated() {
                if out.count > limit { out += "..."; break }
                if i > 0 { out += ", " }
                v.render(into: &out, depth: depth + 1, limit: limit)
            }
            out += close
        }
        switch self {
        case .none: out += "None"
        case let .bool(b): out += b ? "True" : "False"
        case let .int(i): out += "\(i)"
        case let .bigInt(b): out += "<int of \(b.count) bytes>"
        case let .float(d): out += "\(d)"
        case let .string(s): out += "'" + (s.count > 80 ? String(s.prefix(80)) + "..." : s) + "'"
        case let .bytes(d): out += "<\(d.count) bytes>"
        case let .tuple(t): seq(t.items, "(", t.items.count == 1 ? ",)" : ")")
        case let .list(l): seq(l.items, "[", "]")
        case let .dict(d):
            out += "{"
            for (i, (k, v)) in d.entries.enumerated() {
                if out.count > limit { out += "..."; break }
                if i > 0 { out += ", " }
                k.render(into: &out, depth: depth + 1, limit: limit)
                out += ": "
                v.render(into: &out, depth: depth + 1, limit: limit)
            }
            out += "}"
        case let .global(m, n): out += "\(m).\(n)"
        case let .object(o):
            out += o.className + "("
            if case let .dict(d)? = o.state {
                for (i, (k, v)) in d.entries.enumerated() {
                    if out.count > limit { out += "..."; break }
                    if i > 0 { out += ", " }
                    out += (k.asString ?? "?") + "="
                    v.render(into: &out, depth: depth + 1, limit: limit)
                }
            }
            out += ")"
        case let .storage(s): out += "<storage \(s.key) \(s.dtype.rawValue) x\(s.numel)>"
        case let .tensor(t): out += "<tensor \(t.storage.dtype.rawValue) \(t.shape)>"
        }
    }
}

public final class PickleTuple { public internal(set) var items: [PickleValue]; init(_ i: [PickleValue]) { items = i } }
public final class PickleList { public var items: [PickleValue] = []; init(_ i: [PickleValue] = []) { items = i } }
public final class PickleObject {
    public let className: String
    public var state: PickleValue?
    init(_ c: String) { className = c }
}

/// An insertion-ordered dict; keys that are strings or ints can be looked up by their text.
public final class PickleDict {
    public private(set) var entries: [(PickleValue, PickleValue)] = []
    private var index: [String: Int] = [:]
    init() {}

    static func keyText(_ k: PickleValue) -> String? {
        switch k {
        case let .string(s): return s
        case let .int(i): return "\(i)"
        case let .bool(b): return b ? "True" : "False"
        default: return nil
        }
    }

    func set(_ k: PickleValue, _ v: PickleValue) {
        if let t = Self.keyText(k) {
            if let i = index[t] { entries[i].1 = v; return }
            index[t] = entries.count
        }
        entries.append((k, v))
    }

    public subscript(text: String) -> PickleValue? { index[text].map { entries[$0].1 } }
}

/// Element storage referenced by a pickle's persistent id; `elementOffset` is non-zero only for the legacy
/// format's storage views.
public struct TorchStorageRef: Sendable {
    public let key: String
    public let dtype: DType
    public let numel: Int
    public let elementOffset: Int
}

/// A tensor as `_rebuild_tensor_v2` describes it: a strided view of a storage (offset and strides in elements).
public struct TorchTensorRef: Sendable {
    public let storage: TorchStorageRef
    public let offset: Int
    public let shape: [Int]
    public let stride: [Int]
}

/// How many objects (containers, memo entries, stack values, marks) one pickle may hold: a torch state dict
/// needs a few per tensor, so real files stay far below the limit, while a small, highly compressible hostile
/// pickle would otherwise grow without bound (1-byte opcodes such as MEMOIZE or EMPTY_LIST, repeated).
/// `VARLAB_PICKLE_MAX_OBJECTS` raises it.
public enum PickleLimits {
    nonisolated(unsafe) public static var maxObjects: Int = {
        if let s = ProcessInfo.processInfo.environment["VARLAB_PICKLE_MAX_OBJECTS"], let v = Int(s), v > 0 { return v }
        return 1 << 22
    }()
}

/// The pickle virtual machine for what `torch.save` writes (protocols 2-5, binary opcodes), with globals
/// resolved through an allow-list. Allowed globals are only ever interpreted by this code (e.g.
/// `_rebuild_tensor_v2` becomes a tensor description); nothing from the file is executed. Any other global is
/// an error naming it, raised as soon as the GLOBAL opcode is read.
struct Unpickler {
    let bytes: UnsafeRawBufferPointer
    var pos: Int
    let source: String
    /// Called for BINPERSID / PERSID with the persistent id; returns the storage value.
    let persistentLoad: (PickleValue) throws -> PickleValue

    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]
    /// Every container created, so they can be emptied iteratively afterwards (see `teardown`).
    private(set) var containers: [AnyObject] = []

    init(bytes: UnsafeRawBufferPointer, pos: Int = 0, source: String, persistentLoad: @escaping (PickleValue) throws -> PickleValue) {
        self.bytes = bytes; self.pos = pos; self.source = source; self.persistentLoad = persistentLoad
    }

    // Plain classes reconstructed as inert records.
    static let inertClasses: Set<String> = ["argparse.Namespace"]
    static let storageTypes: [String: DType] = [
        "FloatStorage": .f32, "DoubleStorage": .f64, "HalfStorage": .f16, "BFloat16Storage": .bf16,
        "LongStorage": .i64, "IntStorage": .i32, "ShortStorage": .i16, "CharStorage": .i8, "ByteStorage": .u8,
        "BoolStorage": .bool,
    ]
    static let torchDTypes: Set<String> = [
        "float32", "float", "float64", "double", "float16", "half", "bfloat16", "int64", "long", "int32", "int",
        "int16", "short", "int8", "uint8", "bool",
    ]
    static let functions: Set<String> = [
        "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
        "torch._tensor._rebuild_from_type_v2", "torch.nn.parameter.Parameter", "torch.Tensor", "torch.Size",
        "torch.device", "builtins.set", "builtins.frozenset", "__builtin__.set", "__builtin__.frozenset",
        "copyreg._reconstructor", "copy_reg._reconstructor", "builtins.object", "__builtin__.object",
        "torch.serialization._get_layout", "torch.strided", "torch.contiguous_format", "torch.preserve_format",
    ]

    func isAllowed(_ module: String, _ name: String) -> Bool {
        let full = module + "." + name
        if Self.functions.contains(full) || Self.inertClasses.contains(full) { return true }
        if module == "torch" && (Self.storageTypes[name] != nil || Self.torchDTypes.contains(name) || name == "UntypedStorage") {
            return true
        }
        return false
    }

    func fail(_ why: String) -> CheckpointError { .malformed(path: source, reason: "pickle: \(why) (at byte \(pos))") }

    // MARK: reading primitives

    mutating func need(_ n: Int) throws {
        guard n >= 0, pos + n <= bytes.count else { throw fail("unexpected end of data (truncated pickle)") }
    }
    mutating func u8() throws -> UInt8 { try need(1); defer { pos += 1 }; return bytes[pos] }
    mutating func le<T: FixedWidthInteger>(_: T.Type) throws -> T {
        try need(MemoryLayout<T>.size)
        defer { pos += MemoryLayout<T>.size }
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: pos, as: T.self))
    }
    mutating func take(_ n: Int) throws -> UnsafeRawBufferPointer {
        try need(n)
        defer { pos += n }
        return UnsafeRawBufferPointer(rebasing: bytes[pos..<pos + n])
    }
    mutating func line() throws -> String {
        var e = pos
        while e < bytes.count && bytes[e] != 0x0A { e += 1 }
        guard e < bytes.count else { throw fail("unterminated text line") }
        let s = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[pos..<e]), as: UTF8.self)
        pos = e + 1
        return s
    }
    mutating func utf8(_ n: Int) throws -> String {
        let b = try take(n)
        return String(decoding: b, as: UTF8.self)
    }

    mutating func pop() throws -> PickleValue {
        guard let v = stack.popLast() else { throw fail("stack underflow") }
        if let m = marks.last, stack.count < m { throw fail("stack underflow past a MARK") }
        return v
    }
    mutating func popMark() throws -> [PickleValue] {
        guard let m = marks.popLast() else { throw fail("no MARK on the stack") }
        guard m <= stack.count else { throw fail("corrupt MARK") }
        let items = Array(stack[m...])
        stack.removeSubrange(m...)
        return items
    }
    mutating func top() throws -> PickleValue {
        guard let v = stack.last else { throw fail("stack underflow") }
        return v
    }

    mutating func newTuple(_ items: [PickleValue]) -> PickleValue {
        let t = PickleTuple(items); containers.append(t); return .tuple(t)
    }
    mutating func newList(_ items: [PickleValue] = []) -> PickleValue {
        let l = PickleList(items); containers.append(l); return .list(l)
    }
    mutating func newDict() -> PickleDict { let d = PickleDict(); containers.append(d); return d }

    static func bigInt(_ b: [UInt8]) -> PickleValue {
        if b.isEmpty { return .int(0) }
        if b.count <= 8 {
            var v: UInt64 = 0
            for (i, x) in b.enumerated() { v |= UInt64(x) << (8 * UInt64(i)) }
            if b.count < 8 && (b.last! & 0x80) != 0 { v |= ~UInt64(0) << (8 * UInt64(b.count)) }  // sign extend
            return .int(Int(Int64(bitPattern: v)))
        }
        return .bigInt(b)
    }

    // MARK: the machine

    /// Runs until STOP and returns the result; `pos` is left just after STOP.
    private func checkBudget() throws {
        let m = PickleLimits.maxObjects
        if containers.count > m || memo.count > m || stack.count > m || marks.count > m {
            throw fail(
                "more than \(m) pickle objects (containers \(containers.count), memo \(memo.count), stack \(stack.count)): not a plausible checkpoint; set VARLAB_PICKLE_MAX_OBJECTS to raise the limit"
            )
        }
    }

    mutating func load() throws -> PickleValue {
        var ops = 0
        while true {
            ops &+= 1
            if ops & 0xfff == 0 { try checkBudget() }
            let op = try u8()
            switch op {
            case 0x80:  // PROTO
                let p = try u8()
                guard p <= 5 else { throw fail("unsupported pickle protocol \(p)") }
            case 0x95: _ = try le(UInt64.self)  // FRAME (length only; frames are contiguous here)
            case 0x2E:  // STOP
                let v = try pop()
                return v
            case 0x28: marks.append(stack.count)  // MARK
            case 0x30: _ = try pop()  // POP
            case 0x31: _ = try popMark()  // POP_MARK
            case 0x32: stack.append(try top())  // DUP

            // constants and numbers
            case 0x4E: stack.append(.none)
            case 0x88: stack.append(.bool(true))
            case 0x89: stack.append(.bool(false))
            case 0x4A: stack.append(.int(Int(try le(Int32.self))))  // BININT
            case 0x4B: stack.append(.int(Int(try u8())))  // BININT1
            case 0x4D: stack.append(.int(Int(try le(UInt16.self))))  // BININT2
            case 0x8A:  // LONG1
                let n = Int(try u8())
                stack.append(Self.bigInt(Array(try take(n))))
            case 0x8B:  // LONG4
                let n = Int(try le(Int32.self))
                guard n >= 0 else { throw fail("negative LONG4 length") }
                stack.append(Self.bigInt(Array(try take(n))))
            case 0x47:  // BINFLOAT (big-endian double)
                stack.append(.float(Double(bitPattern: try le(UInt64.self).byteSwapped)))
            case 0x49:  // INT (text); "I01\n" / "I00\n" are booleans
                let s = try line()
                if s == "01" {
                    stack.append(.bool(true))
                } else if s == "00" {
                    stack.append(.bool(false))
                } else {
                    guard let v = Int(s) else { throw fail("bad INT '\(s)'") }
                    stack.append(.int(v))
                }
            case 0x4C:  // LONG (text)
                var s = try line()
                if s.hasSuffix("L") { s.removeLast() }
                guard let v = Int(s) else { throw fail("LONG '\(s.prefix(40))' out of range") }
                stack.append(.int(v))
            case 0x46:  // FLOAT (text)
                let s = try line()
                guard let v = Double(s) else { throw fail("bad FLOAT '\(s)'") }
                stack.append(.float(v))

            // strings and bytes
            case 0x58:  // BINUNICODE
                let n = Int(try le(UInt32.self)); stack.append(.string(try utf8(n)))
            case 0x8C:  // SHORT_BINUNICODE
                let n = Int(try u8()); stack.append(.string(try utf8(n)))
            case 0x8D:  // BINUNICODE8
                let n = try le(UInt64.self)
                guard n <= UInt64(bytes.count) else { throw fail("string length \(n) exceeds the data") }
                stack.append(.string(try utf8(Int(n))))
            case 0x54:  // BINSTRING (python 2 str)
                let n = Int(try le(Int32.self)); stack.append(.string(try utf8(n)))
            case 0x55:  // SHORT_BINSTRING
                let n = Int(try u8()); stack.append(.string(try utf8(n)))
            case 0x42:  // BINBYTES
                let n = Int(try le(UInt32.self)); stack.append(.bytes(Data(try take(n))))
            case 0x43:  // SHORT_BINBYTES
                let n = Int(try u8()); stack.append(.bytes(Data(try take(n))))
            case 0x8E, 0x96:  // BINBYTES8, BYTEARRAY8
                let n = try le(UInt64.self)
                guard n <= UInt64(bytes.count) else { throw fail("bytes length \(n) exceeds the data") }
                stack.append(.bytes(Data(try take(Int(n)))))

            // containers
            case 0x29: stack.append(newTuple([]))  // EMPTY_TUPLE
            case 0x74: let items = try popMark(); stack.append(newTuple(items))  // TUPLE
            case 0x85: let a = try pop(); stack.append(newTuple([a]))  // TUPLE1
            case 0x86: let b = try pop(); let a = try pop(); stack.append(newTuple([a, b]))  // TUPLE2
            case 0x87: let c = try pop(); let b = try pop(); let a = try pop(); stack.append(newTuple([a, b, c]))  // TUPLE3
            case 0x5D: stack.append(newList())  // EMPTY_LIST
            case 0x6C: let items = try popMark(); stack.append(newList(items))  // LIST
            case 0x7D: stack.append(.dict(newDict()))  // EMPTY_DICT
            case 0x64:  // DICT
                let items = try popMark()
                guard items.count % 2 == 0 else { throw fail("DICT with an odd number of items") }
                let d = newDict()
                for i in stride(from: 0, to: items.count, by: 2) { d.set(items[i], items[i + 1]) }
                stack.append(.dict(d))
            case 0x8F: stack.append(newList())  // EMPTY_SET (kept as a list)
            case 0x91: let items = try popMark(); stack.append(newList(items))  // FROZENSET
            case 0x61:  // APPEND
                let v = try pop()
                guard case let .list(l) = try top() else { throw fail("APPEND to a non-list") }
                l.items.append(v)
            case 0x65, 0x90:  // APPENDS, ADDITEMS
                let items = try popMark()
                guard case let .list(l) = try top() else { throw fail("APPENDS to a non-list") }
                l.items.append(contentsOf: items)
            case 0x73:  // SETITEM
                let v = try pop(); let k = try pop()
                guard case let .dict(d) = try top() else { throw fail("SETITEM on a non-dict") }
                d.set(k, v)
            case 0x75:  // SETITEMS
                let items = try popMark()
                guard items.count % 2 == 0 else { throw fail("SETITEMS with an odd number of items") }
                guard case let .dict(d) = try top() else { throw fail("SETITEMS on a non-dict") }
                for i in stride(from: 0, to: items.count, by: 2) { d.set(items[i], items[i + 1]) }

            // memo
            case 0x71: memo[Int(try u8())] = try top()  // BINPUT
            case 0x72: memo[Int(try le(UInt32.self))] = try top()  // LONG_BINPUT
            case 0x94: memo[memo.count] = try top()  // MEMOIZE
            case 0x70:  // PUT (text)
                guard let i = Int(try line()) else { throw fail("bad PUT index") }
                memo[i] = try top()
            case 0x68, 0x6A, 0x67:  // BINGET, LONG_BINGET, GET
                let i: Int
                if op == 0x68 {
                    i = Int(try u8())
                } else if op == 0x6A {
                    i = Int(try le(UInt32.self))
                } else {
                    guard let v = Int(try line()) else { throw fail("bad GET index") }
                    i = v
                }
                guard let v = memo[i] else { throw fail("memo key \(i) was never stored") }
                stack.append(v)

            // globals and calls
            case 0x63:  // GLOBAL "module\nname\n"
                let module = try line(), name = try line()
                try pushGlobal(module, name)
            case 0x93:  // STACK_GLOBAL
                let n = try pop(), m = try pop()
                guard let name = n.asString, let module = m.asString else { throw fail("STACK_GLOBAL needs two strings") }
                try pushGlobal(module, name)
            case 0x52:  // REDUCE
                let args = try pop(), callable = try pop()
                stack.append(try call(callable, args))
            case 0x81:  // NEWOBJ
                let args = try pop(), cls = try pop()
                stack.append(try newObject(cls, args))
            case 0x92:  // NEWOBJ_EX
                _ = try pop(); let args = try pop(), cls = try pop()
                stack.append(try newObject(cls, args))
            case 0x62:  // BUILD
                let state = try pop()
                try build(try top(), state)
            case 0x51:  // BINPERSID
                let pid = try pop()
                stack.append(try persistentLoad(pid))
            case 0x50:  // PERSID (text id)
                let pid = try line()
                stack.append(try persistentLoad(.string(pid)))
            case 0x69, 0x6F:  // INST, OBJ: old-style instance creation
                throw fail("opcode \(op == 0x69 ? "INST" : "OBJ") (old-style class instances) is not supported")
            case 0x82, 0x83, 0x84: throw fail("extension-registry opcodes (EXT1/2/4) are not supported")
            case 0x97, 0x98: throw fail("out-of-band buffers (protocol 5) are not supported")
            case 0x53, 0x56: throw fail("text STRING/UNICODE opcodes (protocol 0) are not supported")
            default:
                throw fail(String(format: "unknown opcode 0x%02x", op))
            }
        }
    }

    mutating func pushGlobal(_ module: String, _ name: String) throws {
        guard isAllowed(module, name) else { throw CheckpointError.forbiddenGlobal(path: source, name: "\(module).\(name)") }
        stack.append(.global(module: module, name: name))
    }

    /// REDUCE: only the allow-listed functions, each interpreted here.
    mutating func call(_ callable: PickleValue, _ argsValue: PickleValue) throws -> PickleValue {
        guard case let .global(module, name) = callable else { throw fail("REDUCE on a non-callable (\(callable.summary(maxLength: 60)))") }
        let full = module + "." + name
        guard let args = argsValue.tupleItems else { throw fail("REDUCE arguments of \(full) are not a tuple") }
        switch full {
        case "collections.OrderedDict":
            let d = newDict()
            if let first = args.first, let pairs = first.tupleItems {
                for p in pairs {
                    guard let kv = p.tupleItems, kv.count == 2 else { throw fail("OrderedDict item is not a pair") }
                    d.set(kv[0], kv[1])
                }
            }
            return .dict(d)
        case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
            guard args.count >= 4, case let .storage(s) = args[0], let offset = args[1].asInt,
                let size = args[2].tupleItems?.map(\.asInt), let stride = args[3].tupleItems?.map(\.asInt),
                size.allSatisfy({ $0 != nil }), stride.allSatisfy({ $0 != nil })
            else {
                throw fail("\(full) called with unexpected arguments \(argsValue.summary(maxLength: 120))")
            }
            let shape = size.map { $0! }, strides = stride.map { $0! }
            guard shape.count == strides.count else { throw fail("tensor size \(shape) and stride \(strides) differ in rank") }
            return .tensor(TorchTensorRef(storage: s, offset: offset, shape: shape, stride: strides))
        case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
            guard let t = args.first, case .tensor = t else { throw fail("\(full) without a tensor") }
            return t
        case "torch._tensor._rebuild_from_type_v2":
            // (func, new_type, args, state): interpret func on args; the subclass type is dropped.
            guard args.count >= 3 else { throw fail("\(full) with \(args.count) arguments") }
            if case let .global(m, n) = args[0], m + "." + n == full { throw fail("nested \(full)") }
            return try call(args[0], args[2])
        case "torch.nn.parameter.Parameter":
            guard let t = args.first, case .tensor = t else { throw fail("Parameter without a tensor") }
            return t
        case "torch.Size", "builtins.set", "builtins.frozenset", "__builtin__.set", "__builtin__.frozenset":
            return newList(args.first?.tupleItems ?? [])
        case "torch.device":
            return .string(args.map { $0.summary(maxLength: 20) }.joined(separator: ":"))
        case "copyreg._reconstructor", "copy_reg._reconstructor":
            guard let cls = args.first, case let .global(m, n) = cls, Self.inertClasses.contains(m + "." + n) else {
                throw fail("copyreg._reconstructor for a class that is not allow-listed")
            }
            let o = PickleObject(m + "." + n); containers.append(o)
            if args.count >= 3, case .dict = args[2] { o.state = args[2] }
            return .object(o)
        case "torch.serialization._get_layout":
            return .string(args.first?.asString ?? "")
        default:
            if Self.inertClasses.contains(full) {
                let o = PickleObject(full); containers.append(o)
                return .object(o)
            }
            throw fail("'\(full)' cannot be called")
        }
    }

    mutating func newObject(_ cls: PickleValue, _ args: PickleValue) throws -> PickleValue {
        guard case let .global(m, n) = cls else { throw fail("NEWOBJ on a non-class") }
        let full = m + "." + n
        if Self.inertClasses.contains(full) {
            let o = PickleObject(full); containers.append(o)
            return .object(o)
        }
        if full == "collections.OrderedDict" { return .dict(newDict()) }
        return try call(cls, args)
    }

    mutating func build(_ target: PickleValue, _ state: PickleValue) throws {
        switch target {
        case let .object(o):
            // argparse.Namespace & co: __dict__ update, or (dict, slots) pair
            if case let .tuple(t) = state, t.items.count == 2 { o.state = t.items[0] } else { o.state = state }
        case .dict, .tensor, .list:
            break  // OrderedDict._metadata, tensor hooks / python attributes: irrelevant to the weights
        default:
            throw fail("BUILD on \(target.summary(maxLength: 40))")
        }
    }

    /// Empties every container so that releasing a deeply nested (or cyclic) structure never recurses.
    mutating func teardown() {
        for c in containers {
            if let l = c as? PickleList { l.items.removeAll() }
            if let t = c as? PickleTuple { t.items.removeAll() }
            if let o = c as? PickleObject { o.state = nil }
            if let d = c as? PickleDict { d.removeAll() }
        }
        containers.removeAll()
        stack.removeAll()
        memo.removeAll()
    }
}

extension PickleDict {
    func removeAll() { entries.removeAll(); index.removeAll() }
}

/// One pickle parsed on its own, through the same allow-listed VM that reads checkpoints (nothing is executed;
/// persistent ids come back as plain values). For inspection tools and the fuzz targets.
public enum PickleReader {
    /// A one-line summary of the pickled value; the value itself is torn down before returning (deeply nested
    /// pickles are never released recursively).
    public static func summary(of bytes: Data, source: String = "pickle", maxLength: Int = 200) throws -> String {
        try bytes.withUnsafeBytes { raw in
            var u = Unpickler(bytes: raw, source: source) { pid in pid }
            defer { u.teardown() }
            return try u.load().summary(maxLength: maxLength)
        }
    }
}
