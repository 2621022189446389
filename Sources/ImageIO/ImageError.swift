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

/// Writes through a temporary file in the same directory and a rename, so a reader never sees a half-written
/// image (the same scheme as ModelIO's AtomicFile; ImageIO does not depend on ModelIO).
func atomicWrite(_ data: Data, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let tmp = url.deletingLastPathComponent()
        .appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    do {
        try data.write(to: tmp)
        guard rename(tmp.path, url.path) == 0 else {
            throw ImageError.cannotOpen(path: path, reason: "rename failed: \(String(cString: strerror(errno)))")
        }
    } catch let e as ImageError {
        try? FileManager.default.removeItem(at: tmp)
        throw e
    } catch {
        try? FileManager.default.removeItem(at: tmp)
        throw ImageError.cannotOpen(path: path, reason: error.localizedDescription)
    }
}
