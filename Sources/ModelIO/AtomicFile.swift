import Foundation

/// A file could not be written. Names the file the user asked for (never the temporary file beside it) and the
/// system's reason ("No space left on device", "File too large", ...), not Foundation's error dump.
public struct FileWriteError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let reason: String
    public init(path: String, reason: String) { self.path = path; self.reason = reason }
    public var description: String { "\(path): cannot write: \(reason)" }

    /// The user's view of `error`, raised while writing `path`: Foundation and POSIX errors (the zip writer's too) become a
    /// `FileWriteError`; errors of varlab's own (which already say what is wrong) pass through unchanged.
    public static func wrapping(_ error: Error, path: String) -> Error {
        if error is FileWriteError { return error }
        let ns = error as NSError
        let isSystem = ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain
        guard isSystem else { return error }
        var reason: String
        if let posix = posixCode(ns) {
            reason = String(cString: strerror(posix))
        } else {
            reason = ns.localizedDescription
        }
        if let free = freeBytes(near: path), free < 1 << 20, !reason.contains("space") {
            reason += " (the disk holding it has \(free) bytes free)"
        }
        return FileWriteError(path: path, reason: reason)
    }

    private static func posixCode(_ ns: NSError) -> Int32? {
        if ns.domain == NSPOSIXErrorDomain { return Int32(ns.code) }
        if let under = ns.userInfo[NSUnderlyingErrorKey] as? Error { return posixCode(under as NSError) }
        return nil
    }

    private static func freeBytes(near path: String) -> UInt64? {
        var st = statvfs()
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        guard statvfs(dir, &st) == 0 else { return nil }
        return UInt64(st.f_bavail) * UInt64(st.f_frsize)
    }
}

/// Writes files through a temporary file in the same directory and a rename, so a reader never sees a
/// half-written file and a failure (a full disk included) leaves the previous version intact.
public enum AtomicFile {
    /// Lets `body` write a temporary file (its path is passed in; same directory as `path`), then renames it
    /// over `path`. On any error the temporary file is removed and `path` is left as it was; write errors name `path`.
    public static func produce(_ path: String, _ body: (String) throws -> Void) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent()
        let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        do {
            try body(tmp.path)
            if rename(tmp.path, url.path) != 0 {
                throw FileWriteError(path: path, reason: "rename failed: \(String(cString: strerror(errno)))")
            }
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            throw FileWriteError.wrapping(error, path: path)
        }
    }

    public static func write(_ data: Data, to path: String) throws {
        try produce(path) { tmp in try data.write(to: URL(fileURLWithPath: tmp)) }
    }

    /// Throws now, naming the path, if `produce` / `write` could not create `path` later (missing or unwritable
    /// folder, or `path` is a folder), so a long computation does not end in a lost result.
    public static func checkWritable(_ path: String, what: String) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            throw CheckpointError.cannotOpen(path: path, reason: "\(what) must be a file path, this is a folder")
        }
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw CheckpointError.cannotOpen(path: path, reason: "\(what): the folder \(dir) does not exist")
        }
        guard access(dir, W_OK) == 0 else {
            throw CheckpointError.cannotOpen(path: path, reason: "\(what): the folder \(dir) is not writable")
        }
    }
}
