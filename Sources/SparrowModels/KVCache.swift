import SparrowKernels

/// Keys and values of every attention layer for one sequence, and, for a hybrid model, the
/// recurrent state of its linear-attention layers.
///
/// Rows are positions: row p of layer l holds the key (value) of token p for all KV heads, in
/// `type` (f16 by default, like llama.cpp). `count` positions are valid; `truncate(to:)` drops
/// a suffix so a shared prompt prefix can be reused and only the new tokens recomputed.
///
/// A recurrent state summarises every position seen and cannot be cut back to a prefix. It
/// keeps a few snapshots of itself (`requestSnapshot(at:)`), and `truncate(to:)` goes back to
/// the latest snapshot at or before the requested position, or to the empty state: never to a
/// state that does not belong to the kept prefix. `restorablePrefix(_:)` says beforehand where
/// that will be, so callers count reused tokens correctly.
public final class KVCache: @unchecked Sendable {
    /// Attention layers (a hybrid model's linear-attention layers have no keys/values).
    public let layerCount: Int
    /// Positions this cache can hold.
    public let capacity: Int
    /// nKVHeads × headDim.
    public let rowWidth: Int
    public let type: KVCacheType
    /// keys[l]: [capacity, nKVHeads, headDim] of `type`
    public let keys: [UnsafeMutableRawPointer]
    /// values[l]: [capacity, nKVHeads, headDim] of `type`
    public let values: [UnsafeMutableRawPointer]
    /// The linear-attention layers' state (hybrid models only).
    public let recurrent: RecurrentState?
    /// Valid positions.
    public private(set) var count = 0

    public init(layerCount: Int, capacity: Int, rowWidth: Int, type: KVCacheType = .f16,
                recurrent layout: RecurrentStateLayout? = nil) {
        self.layerCount = layerCount
        self.capacity = capacity
        self.rowWidth = rowWidth
        self.type = type
        let bytes = max(capacity * rowWidth * type.byteSize, 1)
        keys = (0..<layerCount).map { _ in .allocate(byteCount: bytes, alignment: 64) }
        values = (0..<layerCount).map { _ in .allocate(byteCount: bytes, alignment: 64) }
        recurrent = layout.map(RecurrentState.init)
    }

    deinit {
        for p in keys { p.deallocate() }
        for p in values { p.deallocate() }
    }

    /// Bytes held by keys and values and the recurrent state with its snapshots.
    public var byteCount: Int { 2 * layerCount * capacity * rowWidth * type.byteSize + (recurrent?.byteCount ?? 0) }

    /// The longest prefix of at most `n` positions this cache can go back to: min(n, count)
    /// without a recurrent state; with one, `count` itself, or else the latest snapshot at or
    /// before n (0, the empty state, when there is none).
    public func restorablePrefix(_ n: Int) -> Int {
        let n = max(0, min(n, count))
        guard let recurrent, n < count else { return n }
        return recurrent.latestSnapshot(atOrBefore: n)
    }

    /// Forgets positions at and after `restorablePrefix(newCount)` (restoring the recurrent
    /// state saved there) and returns the positions kept, which can be fewer than asked for.
    @discardableResult
    public func truncate(to newCount: Int) -> Int {
        let kept = restorablePrefix(newCount)
        if let recurrent, kept < count || kept == 0 { recurrent.restore(position: kept) }
        count = kept
        return kept
    }

    /// Asks that the recurrent state be saved when a forward pass reaches `position` tokens
    /// (including one that starts or ends there), so the cache can later go back to it. Session
    /// and Scheduler ask for the position before a prompt's last token: the same prompt again,
    /// or any prompt extending it, then recomputes only what follows. No effect without a
    /// recurrent state; a newer request replaces an older one.
    public func requestSnapshot(at position: Int) {
        recurrent?.pendingSnapshot = position
    }

    /// Replaces this cache's contents with the first `count` positions of `source` (a prompt
    /// prefix another sequence already computed). Both caches must have the same layout, and
    /// with a recurrent state `count` must be a position `source` can restore.
    /// - Returns: false (and leaves this cache unchanged) when layouts differ or `count` exceeds
    ///   what `source` holds or this cache can hold, or is not `source.restorablePrefix(count)`.
    @discardableResult
    public func copyPrefix(from source: KVCache, count n: Int) -> Bool {
        guard source !== self, source.layerCount == layerCount, source.rowWidth == rowWidth, source.type == type,
              source.recurrent?.layout == recurrent?.layout,
              n >= 0, n <= source.count, n <= capacity, source.restorablePrefix(n) == n else { return false }
        let bytes = n * rowWidth * type.byteSize
        for l in 0..<layerCount {
            keys[l].copyMemory(from: source.keys[l], byteCount: bytes)
            values[l].copyMemory(from: source.values[l], byteCount: bytes)
        }
        if let recurrent, let theirs = source.recurrent {
            recurrent.copyState(of: theirs, at: n, sourceCount: source.count)
        }
        count = n
        return true
    }

    /// Bytes one position takes in every layer, keys and values: the size of a row exported by
    /// `exportRows`.
    public var bytesPerPosition: Int { 2 * layerCount * rowWidth * type.byteSize }

    /// Copies positions `start ..< start + n` (all valid) into `out`, `n × bytesPerPosition`
    /// bytes: for each layer its keys, then its values.
    public func exportRows(start: Int, count n: Int, into out: UnsafeMutableRawPointer) {
        precondition(start >= 0 && n >= 0 && start + n <= count, "rows \(start)..<\(start + n) outside the \(count) held")
        let rowBytes = rowWidth * type.byteSize, bytes = n * rowBytes
        var o = out
        for l in 0..<layerCount {
            o.copyMemory(from: keys[l] + start * rowBytes, byteCount: bytes)
            (o + bytes).copyMemory(from: values[l] + start * rowBytes, byteCount: bytes)
            o += 2 * bytes
        }
    }

    /// Writes rows made by `exportRows` (of a cache with the same layout) at positions
    /// `start ..< start + n`; the cache then holds `start + n` positions. The rows before
    /// `start` must be the same prefix the rows continue. Not for a recurrent state, which
    /// rows cannot restore.
    /// - Returns: false (nothing changed) with a recurrent state, when `start` is beyond the
    ///   positions held, or when the rows do not fit.
    @discardableResult
    public func importRows(start: Int, count n: Int, from data: UnsafeRawPointer) -> Bool {
        guard recurrent == nil, start >= 0, n >= 0, start <= count, start + n <= capacity else { return false }
        let rowBytes = rowWidth * type.byteSize, bytes = n * rowBytes
        var d = data
        for l in 0..<layerCount {
            (keys[l] + start * rowBytes).copyMemory(from: d, byteCount: bytes)
            (values[l] + start * rowBytes).copyMemory(from: d + bytes, byteCount: bytes)
            d += 2 * bytes
        }
        count = start + n
        return true
    }

    /// Marks `n` more positions valid (called by the model after a forward pass).
    func advance(by n: Int) { count += n }

    /// Stores rows for positions `start ..< start + n` of layer `layer`.
    /// - k, v: [n, rowWidth] f32 (rounded to f16 when the cache is f16, as ggml_cpy does)
    func store(layer: Int, start: Int, n: Int, k: UnsafePointer<Float>, v: UnsafePointer<Float>) {
        let offset = start * rowWidth * type.byteSize
        switch type {
        case .f32:
            (keys[layer] + offset).copyMemory(from: k, byteCount: n * rowWidth * 4)
            (values[layer] + offset).copyMemory(from: v, byteCount: n * rowWidth * 4)
        case .f16:
            HalfRows.toF16(k, count: n * rowWidth, into: keys[layer] + offset)
            HalfRows.toF16(v, count: n * rowWidth, into: values[layer] + offset)
        }
    }
}
