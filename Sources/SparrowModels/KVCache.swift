import SparrowKernels

/// Keys and values of every layer for one sequence.
///
/// Rows are positions: row p of layer l holds the key (value) of token p for all KV heads, in
/// `type` (f16 by default, like llama.cpp). `count` positions are valid; `truncate(to:)` drops
/// a suffix so a shared prompt prefix can be reused and only the new tokens recomputed.
public final class KVCache: @unchecked Sendable {
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
    /// Valid positions.
    public private(set) var count = 0

    public init(layerCount: Int, capacity: Int, rowWidth: Int, type: KVCacheType = .f16) {
        self.layerCount = layerCount
        self.capacity = capacity
        self.rowWidth = rowWidth
        self.type = type
        let bytes = max(capacity * rowWidth * type.byteSize, 1)
        keys = (0..<layerCount).map { _ in .allocate(byteCount: bytes, alignment: 64) }
        values = (0..<layerCount).map { _ in .allocate(byteCount: bytes, alignment: 64) }
    }

    deinit {
        for p in keys { p.deallocate() }
        for p in values { p.deallocate() }
    }

    /// Bytes held by keys and values.
    public var byteCount: Int { 2 * layerCount * capacity * rowWidth * type.byteSize }

    /// Forgets positions at and after `newCount`.
    public func truncate(to newCount: Int) { count = max(0, min(count, newCount)) }

    /// Replaces this cache's contents with the first `count` positions of `source` (a prompt
    /// prefix another sequence already computed). Both caches must have the same layout.
    /// - Returns: false (and leaves this cache unchanged) when layouts differ or `count` exceeds
    ///   what `source` holds or this cache can hold.
    @discardableResult
    public func copyPrefix(from source: KVCache, count n: Int) -> Bool {
        guard source !== self, source.layerCount == layerCount, source.rowWidth == rowWidth, source.type == type,
              n >= 0, n <= source.count, n <= capacity else { return false }
        let bytes = n * rowWidth * type.byteSize
        for l in 0..<layerCount {
            keys[l].copyMemory(from: source.keys[l], byteCount: bytes)
            values[l].copyMemory(from: source.values[l], byteCount: bytes)
        }
        count = n
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
