#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads byte ranges of a file with `pread` into memory the caller owns, bypassing any memory
/// map of the same file. Used to page experts into an expert cache: bytes read this way count
/// in the process's resident memory only where they are copied to, while pages touched through
/// a mapping stay resident (and counted) until the mapping releases them.
///
/// Safe to call from several threads at once (`pread` takes its offset as an argument).
public final class FileRangeReader: @unchecked Sendable {
    public let path: String
    /// File size in bytes.
    public let size: Int
    private let fd: Int32

    public init(path: String) throws(FormatError) {
        self.path = path
        fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .io(path: path, reason: String(cString: strerror(errno))) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw .io(path: path, reason: reason)
        }
        size = Int(st.st_size)
    }

    deinit { close(fd) }

    /// Copies `count` bytes at `offset` into `destination`.
    public func read(offset: Int, count: Int, into destination: UnsafeMutableRawPointer) throws(FormatError) {
        guard offset >= 0, count >= 0, offset + count <= size else {
            throw .truncated(offset: offset, needed: count, fileSize: size, what: "a paged range")
        }
        var done = 0
        while done < count {
            let n = pread(fd, destination + done, count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(path: path, reason: "pread of \(count) bytes at \(offset): \(String(cString: strerror(errno)))")
            }
            if n == 0 { throw .truncated(offset: offset + done, needed: count - done, fileSize: size, what: "a paged range") }
            done += n
        }
    }

    /// Asks the kernel to start reading a range into the page cache now (asynchronous
    /// readahead, `POSIX_FADV_WILLNEED`), so a later `read` finds it there. Advice only:
    /// failures are ignored.
    public func prefetch(offset: Int, count: Int) {
        #if os(Linux)
        _ = posix_fadvise(fd, off_t(offset), off_t(count), POSIX_FADV_WILLNEED)
        #endif
    }
}
