import Dispatch

/// Splits loops across worker threads.
///
/// Uses GCD's `concurrentPerform`, whose worker threads persist across calls (no thread is
/// created per op). `threadCount` is process-wide and set once from the CLI/server config.
public enum Parallel {
    /// Number of workers a parallel loop is split into (default: active processor count).
    nonisolated(unsafe) public static var threadCount: Int = max(1, ProcessInfoCount.active)

    /// Calls `body(start, end)` on disjoint chunks covering `0..<count`, in parallel.
    /// Chunks are multiples of `granularity` (except the last) so workers never share a cache line
    /// of output or a quantization block.
    @inline(__always)
    public static func forRanges(_ count: Int, granularity: Int = 1, minPerThread: Int = 1, _ body: (Int, Int) -> Void) {
        let threads = min(threadCount, max(1, count / max(minPerThread, 1)))
        if threads <= 1 || count <= granularity {
            body(0, count)
            return
        }
        let units = (count + granularity - 1) / granularity
        let perThread = (units + threads - 1) / threads
        withoutActuallyEscaping(body) { body in
            // The chunks are disjoint and concurrentPerform returns only when all are done.
            nonisolated(unsafe) let body = body
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                let start = t * perThread * granularity
                let end = min(count, start + perThread * granularity)
                if start < end { body(start, end) }
            }
        }
    }
}

/// Processor count without importing Foundation into kernels.
enum ProcessInfoCount {
    static var active: Int {
        #if canImport(Glibc)
        return Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        #else
        return 4
        #endif
    }
}

#if canImport(Glibc)
import Glibc
#endif
