#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SparrowFormats
import SparrowKernels

/// Settings of expert offloading (`--memory-budget`, `SPARROW_MEMORY_BUDGET`).
public struct OffloadConfiguration: Sendable, Equatable {
    /// Bytes the model's weights may keep resident: the dense tensors (embeddings, attention and
    /// DeltaNet, norms, routers, shared experts; always resident, counted at full size) plus the
    /// expert cache. Required; offloading is off when no budget is given.
    public var memoryBudget: Int
    /// Half-life of an expert's usage score in tokens (default 16): how fast the cache forgets
    /// that an expert was popular. Bounds: > 0 and finite. Large values tend to LFU, small to LRU.
    public var halfLifeTokens: Double
    /// Predict the next MoE layer's experts (its router applied to this layer's input) and ask
    /// the kernel to read the missing ones into the page cache while this layer computes
    /// (default false). Costs one router product per layer and the readahead of wrong guesses;
    /// it can pay off only where consecutive layers route alike and experts come from storage.
    /// On the random-weight Qwen3.6-35B-A3B file 2% of the misses had been predicted
    /// (docs/benchmarks.md), so it is off unless asked for.
    public var prefetchNextLayer: Bool

    public init(memoryBudget: Int, halfLifeTokens: Double = 16, prefetchNextLayer: Bool = false) {
        self.memoryBudget = memoryBudget
        self.halfLifeTokens = halfLifeTokens
        self.prefetchNextLayer = prefetchNextLayer
    }

    public func validate() throws(ModelError) {
        guard memoryBudget > 0 else {
            throw .invalidConfig("memory budget \(memoryBudget) bytes must be positive (e.g. --memory-budget 8GiB)")
        }
        guard halfLifeTokens.isFinite, halfLifeTokens > 0 else {
            throw .invalidConfig("expert cache half-life \(halfLifeTokens) tokens must be a positive number")
        }
    }
}

/// How a memory budget divides between the resident dense weights and the expert cache, worked
/// out from a GGUF file's tensor table before the model is built.
public struct OffloadPlan: Sendable, Equatable {
    /// The budget (bytes).
    public let budget: Int
    /// Bytes of every tensor except the routed experts (kept resident; counted at full size).
    public let denseBytes: Int
    /// Bytes of all routed experts (`blk.*.ffn_{gate,up,down}_exps.weight`).
    public let expertBytes: Int
    /// Layers with routed experts.
    public let moeLayers: Int
    /// (layer, expert) pairs.
    public let expertCount: Int
    /// Experts one token uses per layer (`{arch}.expert_used_count`; 0 for a dense model).
    public let expertsPerToken: Int
    /// Bytes of one cache slot: one expert's gate, up and down rows (each 64-byte aligned),
    /// rounded up to a page.
    public let slotBytes: Int
    /// Experts the cache holds at once.
    public let slots: Int

    /// Bytes of the expert cache.
    public var cacheBytes: Int { slots * slotBytes }
    /// Share of all experts the cache holds.
    public var cachedFraction: Double { expertCount == 0 ? 1 : Double(slots) / Double(expertCount) }

    static let page = 4096
    static func align(_ n: Int, _ a: Int) -> Int { (n + a - 1) / a * a }

    /// Splits `configuration.memoryBudget` for the model in `gguf`. Errors name the budget, the
    /// dense bytes and the smallest budget that would work.
    public init(gguf: GGUFFile, configuration: OffloadConfiguration) throws(ModelError) {
        try configuration.validate()
        budget = configuration.memoryBudget
        var expert = 0, total = 0
        var perLayer: [Int: (experts: Int, slot: Int)] = [:]
        for t in gguf.tensors {
            total += t.byteCount
            guard let (layer, part) = Self.expertTensor(t.name) else { continue }
            guard t.shape.count == 3, t.shape[2] > 0 else {
                throw .shapeMismatch(tensor: t.name, expected: [-1, -1, -1], found: t.shape)
            }
            expert += t.byteCount
            let n = t.shape[2], each = t.byteCount / n
            var entry = perLayer[layer] ?? (n, 0)
            guard entry.experts == n else {
                throw .invalidConfig("layer \(layer) has \(entry.experts) and \(n) experts in its expert tensors (\(t.name))")
            }
            entry.slot += part == "down" ? each : Self.align(each, 64)
            perLayer[layer] = entry
        }
        denseBytes = total - expert
        expertBytes = expert
        moeLayers = perLayer.count
        expertCount = perLayer.values.reduce(0) { $0 + $1.experts }
        slotBytes = Self.align(perLayer.values.map(\.slot).max() ?? 0, Self.page)
        let arch = gguf.architecture ?? "?"
        expertsPerToken = expertCount == 0 ? 0 : max(1, gguf.metadata["\(arch).expert_used_count"]?.intValue ?? 1)

        let budgetText = MemorySize.format(budget), denseText = MemorySize.format(denseBytes)
        guard denseBytes < budget else {
            throw .invalidConfig("memory budget \(budgetText) is below the \(denseText) of dense weights that stay resident"
                + (expertCount > 0 ? " plus at least \(expertsPerToken) experts (\(MemorySize.format(expertsPerToken * slotBytes)));"
                    + " use --memory-budget \(MemorySize.format(denseBytes + expertsPerToken * slotBytes)) or more" : "; use a larger --memory-budget"))
        }
        slots = expertCount == 0 ? 0 : min(expertCount, (budget - denseBytes) / slotBytes)
        guard expertCount == 0 || slots >= expertsPerToken else {
            throw .invalidConfig("memory budget \(budgetText) leaves room for \(slots) experts after \(denseText) of dense weights;"
                + " one token uses \(expertsPerToken) per layer: use --memory-budget \(MemorySize.format(denseBytes + expertsPerToken * slotBytes)) or more")
        }
    }

    /// (layer, "gate"/"up"/"down") for `blk.N.ffn_{gate,up,down}_exps.weight`.
    static func expertTensor(_ name: String) -> (Int, String)? {
        let parts = name.split(separator: ".")
        guard parts.count == 4, parts[0] == "blk", let layer = Int(parts[1]), parts[3] == "weight" else { return nil }
        switch parts[2] {
        case "ffn_gate_exps": return (layer, "gate")
        case "ffn_up_exps": return (layer, "up")
        case "ffn_down_exps": return (layer, "down")
        default: return nil
        }
    }

    /// One line for logs: where the budget goes.
    public var summary: String {
        if expertCount == 0 { return "memory budget \(MemorySize.format(budget)): \(MemorySize.format(denseBytes)) of weights, no experts to page" }
        let pct = Int((cachedFraction * 100).rounded())
        return "memory budget \(MemorySize.format(budget)): dense weights \(MemorySize.format(denseBytes)) resident, "
            + "expert cache \(MemorySize.format(cacheBytes)) = \(slots) of \(expertCount) experts (\(pct)%), "
            + "experts on disk \(MemorySize.format(expertBytes))"
    }
}

/// Counters of an `ExpertStore` since it was created; subtract two readings for a window.
public struct ExpertStoreStatistics: Sendable, Equatable {
    /// Expert uses that found the expert in the cache.
    public var hits = 0
    /// Expert uses that paged it in.
    public var misses = 0
    /// Experts dropped from the cache to make room.
    public var evictions = 0
    /// Bytes copied from the model file into the cache.
    public var bytesPagedIn = 0
    /// Misses whose expert the previous layer had predicted and asked the kernel to read ahead.
    public var predictedMisses = 0

    public init() {}
    public var hitRate: Double { hits + misses == 0 ? 0 : Double(hits) / Double(hits + misses) }

    /// Counts between two readings.
    public static func - (a: Self, b: Self) -> Self { combine(a, b, -) }
    /// Counts of two periods together.
    public static func + (a: Self, b: Self) -> Self { combine(a, b, +) }

    private static func combine(_ a: Self, _ b: Self, _ op: (Int, Int) -> Int) -> Self {
        var d = Self()
        d.hits = op(a.hits, b.hits)
        d.misses = op(a.misses, b.misses)
        d.evictions = op(a.evictions, b.evictions)
        d.bytesPagedIn = op(a.bytesPagedIn, b.bytesPagedIn)
        d.predictedMisses = op(a.predictedMisses, b.predictedMisses)
        return d
    }
}

/// The routed experts of a model paged from its file into a fixed-size cache, so resident
/// weight memory stays within a budget.
///
/// Experts are never read through the file's memory map: a miss copies the expert's gate, up
/// and down rows with `pread` into a cache slot (owned anonymous memory), so the mapping's
/// expert pages are never faulted in and the process's resident set is the dense weights it
/// touches plus `plan.cacheBytes` of cache (committed at load). Which expert a slot holds is decided by
/// `ExpertCache` (frequency weighted by recency, fed by every routing decision).
///
/// One MoE layer step uses the store at a time (`withExperts` holds its lock throughout), so
/// two sequences running forward passes concurrently take turns per layer.
public final class ExpertStore: @unchecked Sendable {
    public let plan: OffloadPlan
    public let configuration: OffloadConfiguration
    private let reader: FileRangeReader
    private let mapBase: UnsafeRawPointer?
    private let slab: UnsafeMutableRawPointer  // [slots × slotBytes] owned cache memory
    private var cache: ExpertCache
    private var layers: [Layer] = []
    private var pagedIn = 0
    private var predictedMisses = 0
    /// Keys the last `prefetchNext` asked the kernel to read ahead.
    private var predicted = Set<Int>()
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    /// One registered MoE layer: where its experts are in the file and how to view them.
    struct Layer {
        let firstKey: Int
        /// [nExperts ← d] the layer's router, for predicting its experts one layer ahead.
        let router: WeightMatrix
        let gate: [WeightMatrix], up: [WeightMatrix], down: [WeightMatrix]
        /// Byte offsets inside a slot.
        let upOffset: Int, downOffset: Int
    }

    /// Reserves and commits the cache memory of `plan`, made for `gguf` (resident from here on).
    /// A plan without experts (a dense model) has nothing to page and is refused; check
    /// `plan.expertCount` first.
    public init(gguf: GGUFFile, plan: OffloadPlan, configuration: OffloadConfiguration) throws(ModelError) {
        guard plan.expertCount > 0, plan.slots > 0 else {
            throw .invalidConfig("the model has no routed experts to page; its \(MemorySize.format(plan.denseBytes)) of weights stay resident")
        }
        self.plan = plan
        self.configuration = configuration
        do { reader = try FileRangeReader(path: gguf.file.path) } catch { throw .format(error) }
        guard reader.size == gguf.file.bytes.count else {
            throw .format(.io(path: gguf.file.path, reason: "the file changed size since it was mapped"))
        }
        mapBase = gguf.file.bytes.baseAddress
        let p = mmap(nil, plan.cacheBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let p, p != MAP_FAILED else {
            throw .invalidConfig("cannot reserve \(MemorySize.format(plan.cacheBytes)) for the expert cache: \(String(cString: strerror(errno)))")
        }
        #if os(Linux)
        // Transparent huge pages where the system allows them on request: a slot (~1.8 MB for
        // Qwen3.6-35B-A3B) is then filled with one or two page faults instead of ~430, and the
        // kernels' reads of cached experts miss the TLB less.
        _ = madvise(p, plan.cacheBytes, MADV_HUGEPAGE)
        #endif
        // Commit the whole cache now: a page first written during decoding costs a fault, page
        // zeroing and, under memory pressure, reclaim and huge-page compaction on the token's
        // critical path (measured: decode at a 16 GiB budget ran at half the speed of 4 GiB while
        // its cache was still filling). The budget is reserved up front instead.
        let stride = 4096
        var offset = 0
        while offset < plan.cacheBytes {
            p.storeBytes(of: 0, toByteOffset: offset, as: UInt8.self)
            offset += stride
        }
        slab = p
        cache = ExpertCache(capacity: plan.slots, keyCount: plan.expertCount,
                            halfLife: configuration.halfLifeTokens * Double(max(plan.moeLayers, 1)))
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        munmap(slab, plan.cacheBytes)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Experts of registered layers (the model's loader registers every MoE layer).
    public var registeredExperts: Int { layers.last.map { $0.firstKey + $0.gate.count } ?? 0 }

    /// Counters since creation.
    public func statistics() -> ExpertStoreStatistics {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        var s = ExpertStoreStatistics()
        s.hits = cache.statistics.hits
        s.misses = cache.statistics.misses
        s.evictions = cache.statistics.evictions
        s.bytesPagedIn = pagedIn
        s.predictedMisses = predictedMisses
        return s
    }

    /// How often the router picked each expert since creation, [layer][expert] in registration
    /// order (the routing's skew decides how much any cache can hit).
    public func usage() -> [[Int]] {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return layers.map { Array(cache.accessCounts[$0.firstKey..<($0.firstKey + $0.gate.count)]) }
    }

    /// Called by a model loader for each MoE layer, in any order, with the layer's experts as
    /// views into the mapping (`WeightLoader.experts`); returns the handle `MoEBlock` uses.
    /// The views are used only for their file offsets and shapes; their bytes are never read.
    func register(router: WeightMatrix, gate: [WeightMatrix], up: [WeightMatrix], down: [WeightMatrix]) throws(ModelError) -> ExpertOffload {
        guard gate.count == up.count, gate.count == down.count, !gate.isEmpty, router.rows == gate.count else {
            throw .invalidConfig("an expert layer needs as many gate, up and down matrices (\(gate.count), \(up.count), \(down.count))")
        }
        let g = gate[0].rows * gate[0].rowBytes, u = up[0].rows * up[0].rowBytes, d = down[0].rows * down[0].rowBytes
        let upOffset = OffloadPlan.align(g, 64), downOffset = upOffset + OffloadPlan.align(u, 64)
        guard downOffset + d <= plan.slotBytes, registeredExperts + gate.count <= plan.expertCount else {
            throw .invalidConfig("the expert tensors the model binds do not match the offload plan of this file")
        }
        layers.append(Layer(firstKey: registeredExperts, router: router, gate: gate, up: up, down: down,
                            upOffset: upOffset, downOffset: downOffset))
        return ExpertOffload(store: self, layer: layers.count - 1)
    }

    /// Runs `body(expert, mlp)` once for each of `experts` (distinct indices into the layer's
    /// experts) with `mlp` viewing that expert's weights in the cache. The MoE block calls it
    /// once per layer step with the experts its router picked.
    ///
    /// Order: experts already resident run first, pinned so the misses cannot evict them;
    /// then the misses are paged in, all of a batch together (a readahead hint for every range
    /// first, then the copies split over the worker threads). When a step needs more experts
    /// than the cache holds, it runs in batches that each fit. Results do not depend on the
    /// order, since the caller keeps each expert's output apart.
    func withExperts(layer l: Int, experts: [Int], _ body: (Int, GatedMLP) -> Void) throws(ModelError) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        let layer = layers[l]
        cache.advance()
        var remaining = experts
        while !remaining.isEmpty {
            // Residents first, then as many misses as there are unpinned slots.
            var batch: [(expert: Int, slot: Int)] = [], fills: [(expert: Int, slot: Int)] = []
            var left: [Int] = []
            for e in remaining where cache.isResident(layer.firstKey + e) {
                if case let .hit(slot) = cache.access(layer.firstKey + e) { batch.append((e, slot)) }
            }
            for e in remaining where !batch.contains(where: { $0.expert == e }) {
                if !left.isEmpty { left.append(e); continue }
                switch cache.access(layer.firstKey + e) {
                case let .miss(slot, _):
                    fills.append((e, slot))
                    if predicted.contains(layer.firstKey + e) { predictedMisses += 1 }
                case .hit(let slot): batch.append((e, slot))  // unreachable: residents were taken above
                case .full: left.append(e)
                }
            }
            do {
                try fill(fills, layer: layer)
            } catch {
                for (_, s) in batch { cache.release(s) }
                for (_, s) in fills { cache.abandon(s) }
                throw error
            }
            for (_, s) in fills { cache.filled(s) }
            for (e, s) in batch + fills {
                body(e, mlp(layer, e, slab + s * plan.slotBytes))
                cache.release(s)
            }
            remaining = left
        }
    }

    /// Predicts which experts the MoE layer after `l` will pick for the tokens `x` (that layer's
    /// router on this layer's input, top `k` per token) and asks the kernel to start reading the
    /// ones not in the cache (`POSIX_FADV_WILLNEED`), so they come from the page cache, not
    /// storage, when that layer needs them. The MoE block calls it before running its experts,
    /// so the reads overlap this layer's experts and the next layer's attention. A wrong guess
    /// costs only a readahead. Changes no cache state.
    /// - x: [n, d] f32
    func prefetchNext(after l: Int, x: UnsafePointer<Float>, n: Int, k: Int) {
        guard configuration.prefetchNextLayer, l + 1 < layers.count, let mapBase else { return }
        let next = layers[l + 1], nExperts = next.router.rows
        let logits = FloatBuffer(count: n * nExperts, zeroed: false)  // [n, nExperts]
        next.router.matmul(x, nTokens: n, into: logits.pointer)
        var wanted = Set<Int>()
        for t in 0..<n {
            let row = logits.pointer + t * nExperts
            // The top k of the logits are the top k of their softmax.
            var top: [Int] = []
            for e in 0..<nExperts {
                if top.count < k {
                    top.append(e)
                } else if let m = top.indices.min(by: { row[top[$0]] < row[top[$1]] }), row[e] > row[top[m]] {
                    top[m] = e
                }
            }
            wanted.formUnion(top)
        }
        pthread_mutex_lock(mutex)
        let missing = wanted.filter { !cache.isResident(next.firstKey + $0) }
        predicted = Set(missing.map { next.firstKey + $0 })
        pthread_mutex_unlock(mutex)
        for e in missing {
            for m in [next.gate[e], next.up[e], next.down[e]] { reader.prefetch(offset: m.data - mapBase, count: m.rows * m.rowBytes) }
        }
    }

    /// Copies the experts of `fills` from the file into their slots.
    private func fill(_ fills: [(expert: Int, slot: Int)], layer: Layer) throws(ModelError) {
        guard !fills.isEmpty, let mapBase else { return }
        // [fills × 3] (file offset, bytes, destination)
        var pieces: [(offset: Int, count: Int, to: UnsafeMutableRawPointer)] = []
        for (e, s) in fills {
            let dst = slab + s * plan.slotBytes
            for (m, at) in [(layer.gate[e], 0), (layer.up[e], layer.upOffset), (layer.down[e], layer.downOffset)] {
                pieces.append((m.data - mapBase, m.rows * m.rowBytes, dst + at))
            }
        }
        for p in pieces { reader.prefetch(offset: p.offset, count: p.count) }
        let failures = UnsafeMutableBufferPointer<FormatError?>.allocate(capacity: pieces.count)
        failures.initialize(repeating: nil)
        defer { failures.deinitialize(); failures.deallocate() }
        let reader = self.reader
        pieces.withUnsafeBufferPointer { pieces in
            Parallel.forRanges(pieces.count) { start, end in
                for i in start..<end {
                    do throws(FormatError) {
                        try reader.read(offset: pieces[i].offset, count: pieces[i].count, into: pieces[i].to)
                    } catch {
                        failures[i] = error
                    }
                }
            }
        }
        if let failure = failures.lazy.compactMap({ $0 }).first { throw .format(failure) }
        pagedIn += pieces.reduce(0) { $0 + $1.count }
    }

    /// Expert `e` of `layer` viewed in the slot at `base`.
    private func mlp(_ layer: Layer, _ e: Int, _ base: UnsafeMutableRawPointer) -> GatedMLP {
        GatedMLP(gate: layer.gate[e].rebased(to: base, owner: self),
                 up: layer.up[e].rebased(to: base + layer.upOffset, owner: self),
                 down: layer.down[e].rebased(to: base + layer.downOffset, owner: self))
    }
}

/// A MoE layer's handle on the `ExpertStore` that pages its experts.
public struct ExpertOffload: Sendable {
    let store: ExpertStore
    let layer: Int
}
