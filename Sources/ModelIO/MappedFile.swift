import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Throws unless `path` names a regular file (or a link to one): a FIFO, a device or a socket given as a
/// checkpoint or array file would block or stream forever instead of failing.
public func requireRegularFile(_ path: String) throws {
    var st = stat()
    guard stat(path, &st) == 0 else {
        throw CheckpointError.cannotOpen(path: path, reason: errno == ENOENT ? "no such file" : String(cString: strerror(errno)))
    }
    switch st.st_mode & S_IFMT {
    case S_IFREG: return
    case S_IFDIR: throw CheckpointError.cannotOpen(path: path, reason: "is a directory")
    default: throw CheckpointError.cannotOpen(path: path, reason: "not a regular file (a FIFO, device or socket)")
    }
}

/// A read-only memory map of a whole file: large checkpoints are paged in on demand, never read twice.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    public let base: UnsafeRawPointer?

    public init(path: String) throws {
        self.path = path
        try requireRegularFile(path)
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw CheckpointError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw CheckpointError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw CheckpointError.cannotOpen(path: path, reason: "is a directory") }
        size = Int(st.st_size)
        if size == 0 { base = nil; return }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw CheckpointError.cannotOpen(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p)
    }

    deinit { if let base { munmap(UnsafeMutableRawPointer(mutating: base), size) } }

    public func bytes(_ offset: Int, _ count: Int) -> UnsafeRawBufferPointer {
        precondition(offset >= 0 && count >= 0 && offset + count <= size)
        guard let base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + offset, count: count)
    }
}
