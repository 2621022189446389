import Foundation

/// Errors from reading and writing images; each names the file (or "memory") and what went wrong.
public enum ImageError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(path: String, reason: String)
    case decode(source: String, format: String, reason: String)
    case encode(path: String, format: String, reason: String)
    case unsupported(source: String, reason: String)
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .cannotOpen(p, r): return "\(p): cannot open: \(r)"
        case let .decode(s, f, r): return "\(s): cannot decode \(f): \(r)"
        case let .encode(p, f, r): return "\(p): cannot encode \(f): \(r)"
        case let .unsupported(s, r): return "\(s): unsupported image: \(r)"
        case let .invalidArgument(r): return "invalid argument: \(r)"
        }
    }
}
