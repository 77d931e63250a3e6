#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory map of a whole file. Tensor views point into it; nothing is copied.
///
/// The mapping lives as long as this object, so every view must keep a reference to it
/// (GGUFFile and the model weights do).
public final class MappedFile: @unchecked Sendable {
    public let path: String
    /// The mapped bytes, `count` = file size.
    public let bytes: UnsafeRawBufferPointer

    public init(path: String) throws(FormatError) {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .io(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .io(path: path, reason: String(cString: strerror(errno))) }
        let size = Int(st.st_size)
        guard size > 0 else {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let ptr = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let ptr, ptr != MAP_FAILED else { throw .io(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))") }
        bytes = UnsafeRawBufferPointer(start: ptr, count: size)
    }

    /// Wraps bytes already in memory (tests, fuzzing). The buffer is copied once.
    public init(copying data: [UInt8], name: String = "<memory>") {
        path = name
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: max(data.count, 1), alignment: 64)
        data.withUnsafeBytes { src in
            if let base = src.baseAddress { buf.baseAddress!.copyMemory(from: base, byteCount: data.count) }
        }
        bytes = UnsafeRawBufferPointer(start: buf.baseAddress, count: data.count)
        ownsHeap = true
    }

    private var ownsHeap = false

    /// Drops the whole pages of `count` bytes at `start` (inside this mapping) from the
    /// process's resident memory, e.g. after their contents were copied elsewhere; reading them
    /// again faults them back in from the file. Does nothing for heap-backed copies.
    public func release(_ start: UnsafeRawPointer, count: Int) {
        guard !ownsHeap, let base = bytes.baseAddress else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let lo = max(start - base, 0), hi = min(start - base + count, bytes.count)
        let first = (lo + page - 1) / page * page, end = hi / page * page
        guard end > first else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + first), end - first, Int32(MADV_DONTNEED))
    }

    deinit {
        guard let base = bytes.baseAddress else { return }
        if ownsHeap {
            base.deallocate()
        } else {
            munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        }
    }
}
