#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Splits loops across worker threads.
///
/// A persistent pool (`WorkerPool`): its threads are created once and, between parallel
/// regions, spin briefly on an atomic generation counter before sleeping on a condition
/// variable, so a decode step's ~150 small regions cost no thread wake-ups (GCD's
/// `concurrentPerform` paid a futex wake per region). Work inside a region is handed out in
/// chunks from an atomic counter, so a worker delayed by another process does not hold the
/// others back. `threadCount` is process-wide and set once from the CLI/server config.
public enum Parallel {
    /// Number of workers a parallel loop is split into, the calling thread included
    /// (default: online processor count).
    nonisolated(unsafe) public static var threadCount: Int = max(1, ProcessInfoCount.active)

    /// Calls `body(start, end)` on disjoint chunks covering `0..<count`, in parallel.
    /// Chunks are multiples of `granularity` (except the last) so workers never share a cache line
    /// of output or a quantization block, and hold at least `minChunk` items where the work
    /// per item is small; at most `count / minPerThread` threads take part.
    ///
    /// Chunk sizes are guided: each is 1/threads of the items not yet handed out (with two
    /// threads ½, ¼, ⅛, … down to 1/32 of the whole), so a region costs a handful of claims
    /// while its tail is still cut fine enough that a thread held up by another process delays
    /// the others little. Each claim costs an atomic exchange between cores and the restart of
    /// a weight stream (the prefetchers' ramp); fixed chunks of 1/32 (the earlier scheme) cost
    /// decode on 2 Zen 5 cores 13–27%: SmolLM2 223 → 305 tok/s, Qwen2.5-Coder-0.5B 120 → 146,
    /// 1.5B 53 → 62, eight 0.5B sequences 442 → 475; prefill within noise, and with a busy
    /// loop competing for a core decode within 5% of fixed chunks.
    /// A region started while another is running (from a second thread) runs serially on its caller.
    public static func forRanges(_ count: Int, granularity: Int = 1, minPerThread: Int = 1, minChunk: Int = 1,
                                 _ body: (Int, Int) -> Void) {
        let threads = min(threadCount, max(1, count / max(minPerThread, 1)))
        if threads <= 1 || count <= granularity {
            body(0, count)
            return
        }
        let g = max(granularity, 1)
        let units = (count + g - 1) / g
        // Guided self-scheduling: chunk k is 1/threads of what chunks 0..<k left, but at least
        // 1/(16·threads) of the whole and `minChunk` items.
        let minUnits = max(1, units / (threads * 16), (minChunk + g - 1) / g)
        withUnsafeTemporaryAllocation(of: Int.self, capacity: maxChunks + 1) { starts in
            var chunks = 0, at = 0
            while at < units {
                starts[chunks] = at
                chunks += 1
                at += chunks == maxChunks ? units - at : max(minUnits, (units - at + threads - 1) / threads)
            }
            starts[chunks] = units
            let bounds = UnsafePointer(starts.baseAddress!)
            withoutActuallyEscaping(body) { body in
                let ran = WorkerPool.shared.run(threads: threads, chunks: chunks) { c in
                    body(bounds[c] * g, min(count, bounds[c + 1] * g))
                }
                if !ran { body(0, count) }
            }
        }
    }

    /// Most chunks one region is cut into (guided chunks need ~log2(16·threads) + 16 for a
    /// few threads; past this the last chunk takes the rest).
    static let maxChunks = 256

    /// Lets the workers sleep now instead of spinning for the next region: call it when the
    /// caller is about to do work of its own that outlasts a spin (a server sampling and
    /// streaming between forward steps), so the spinning core is free for that work. The next
    /// region wakes them (one futex wake).
    public static func rest() { WorkerPool.shared.rest() }
}

/// Persistent worker threads for `Parallel.forRanges`. One region runs at a time; the caller
/// takes part as participant 0.
///
/// Chunks are claimed from `ticket`, which packs the region number with the chunk count and
/// the next chunk, so a worker that wakes late can never claim a chunk of a newer region with
/// an older region's job: a claim succeeds only for the region it names, and the caller waits
/// for every claimed chunk before the region (and its job closure) ends.
final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool()

    /// Region number; bumped to start a region (workers spin on it, then sleep).
    private let generation = Atomic<Int>(0)
    /// region (high 32 bits) | chunk count (16 bits) | next chunk (16 bits).
    private let ticket = Atomic<UInt64>(0)
    /// Chunks not yet finished in the current region.
    private let pending = Atomic<Int>(0)
    /// Threads taking part in the current region, the caller included.
    private let participants = Atomic<Int>(0)
    /// Workers asleep on `cond` (the caller signals only when this is non-zero).
    private let sleepers = Atomic<Int>(0)
    /// Held by the thread running a region; a second caller runs its loop serially.
    private let busy = Atomic<Bool>(false)
    /// Set by `rest()`: spinning workers go to sleep at once. Cleared when a region starts.
    private let resting = Atomic<Bool>(false)

    /// The current region's job, written by the caller before the region's ticket is published
    /// and read by a worker only after it has claimed a chunk of that region.
    nonisolated(unsafe) private var job: ((Int) -> Void)?

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let started = Mutex<Int>(0)  // workers started

    /// Most chunks in one region (the ticket's 16-bit fields).
    static let maxChunks = 0xFFFF
    /// Nanoseconds a worker spins on the generation counter before sleeping (default 1 ms;
    /// `SPARROW_SPIN_US` overrides it in microseconds). Between a decode step's regions the
    /// caller runs serial work (quantizing activations, norms, sampling between steps) for tens
    /// to hundreds of microseconds; a worker asleep by then costs a futex wake and the
    /// scheduler's latency to restart, so it spins through those gaps. An idle pool sleeps
    /// after one spin period.
    static let spinNanoseconds: UInt64 = {
        if let v = getenv("SPARROW_SPIN_US"), let n = UInt64(String(cString: v)) { return n * 1000 }
        return 1_000_000
    }()

    private init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
    }

    /// Runs `chunk(c)` for every c in 0..<chunks on up to `threads` threads (the caller included);
    /// returns false without running anything when another region is in progress.
    func run(threads: Int, chunks: Int, _ chunk: (Int) -> Void) -> Bool {
        precondition(chunks <= WorkerPool.maxChunks)
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        defer { busy.store(false, ordering: .releasing) }
        ensureWorkers(threads - 1)
        resting.store(false, ordering: .relaxed)
        withoutActuallyEscaping(chunk) { chunk in
            job = chunk
            let region = generation.load(ordering: .relaxed) &+ 1
            pending.store(chunks, ordering: .relaxed)
            participants.store(threads, ordering: .relaxed)
            ticket.store(UInt64(truncatingIfNeeded: region) << 32 | UInt64(chunks) << 16, ordering: .releasing)
            generation.store(region, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                pthread_mutex_lock(mutex)
                pthread_cond_broadcast(cond)
                pthread_mutex_unlock(mutex)
            }
            drain(region: region)
            // Wait for the chunks other threads claimed.
            while pending.load(ordering: .acquiring) > 0 { cpuRelax() }
            job = nil
        }
        return true
    }

    func rest() {
        resting.store(true, ordering: .relaxed)
    }

    /// Claims and runs chunks of `region` until none are left or a newer region has begun.
    private func drain(region: Int) {
        let tag = UInt64(truncatingIfNeeded: region) << 32
        var v = ticket.load(ordering: .acquiring)
        while true {
            guard v & ~0xFFFF_FFFF == tag, v & 0xFFFF < (v >> 16) & 0xFFFF else { return }
            let (exchanged, original) = ticket.compareExchange(expected: v, desired: v + 1, ordering: .acquiringAndReleasing)
            if !exchanged { v = original; continue }
            job?(Int(v & 0xFFFF))
            pending.subtract(1, ordering: .releasing)
            v = ticket.load(ordering: .acquiring)
        }
    }

    private func ensureWorkers(_ n: Int) {
        started.withLock { started in
            while started < n {
                started += 1
                let context = Unmanaged.passRetained(WorkerStart(pool: self, index: started)).toOpaque()
                var tid = pthread_t()
                let rc = pthread_create(&tid, nil, { arg in
                    #if canImport(Glibc)
                    let start = Unmanaged<WorkerStart>.fromOpaque(arg!).takeRetainedValue()
                    #else
                    let start = Unmanaged<WorkerStart>.fromOpaque(arg).takeRetainedValue()
                    #endif
                    start.pool.workerLoop(index: start.index)
                }, context)
                if rc == 0 { pthread_detach(tid) } else { Unmanaged<WorkerStart>.fromOpaque(context).release() }
            }
        }
    }

    private func workerLoop(index: Int) -> Never {
        var seen = generation.load(ordering: .acquiring)
        while true {
            // Wait for the next region: spin, then sleep.
            var spins = 0
            var spinStart: UInt64 = 0
            var current = generation.load(ordering: .acquiring)
            while current == seen {
                spins += 1
                // The clock is read every 256 spins (a spin is about a nanosecond).
                if spins & 255 != 0 {
                    cpuRelax()
                } else if spinStart == 0 {
                    spinStart = monotonicNanoseconds()
                } else if monotonicNanoseconds() - spinStart < WorkerPool.spinNanoseconds && !resting.load(ordering: .relaxed) {
                    cpuRelax()
                } else {
                    pthread_mutex_lock(mutex)
                    sleepers.add(1, ordering: .sequentiallyConsistent)
                    while generation.load(ordering: .sequentiallyConsistent) == seen {
                        pthread_cond_wait(cond, mutex)
                    }
                    sleepers.subtract(1, ordering: .relaxed)
                    pthread_mutex_unlock(mutex)
                    spins = 0
                    spinStart = 0
                }
                current = generation.load(ordering: .acquiring)
            }
            seen = current
            if index < participants.load(ordering: .relaxed) { drain(region: current) }
        }
    }
}

private final class WorkerStart {
    let pool: WorkerPool
    let index: Int
    init(pool: WorkerPool, index: Int) { self.pool = pool; self.index = index }
}

/// One spin-wait step. (x86's `pause` is a Clang builtin Swift cannot call; an opaque
/// no-op keeps the loop from being optimised into a busy re-read without a memory access.)
@inline(never)
private func cpuRelax() {}

/// CLOCK_MONOTONIC in nanoseconds (a vDSO call, no system call).
@inline(__always)
private func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
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
