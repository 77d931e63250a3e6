import SparrowKernels

/// Keys and values of every layer for one sequence.
///
/// Rows are positions: row p of layer l holds the key (value) of token p for all KV heads.
/// `count` positions are valid; `truncate(to:)` drops a suffix so a shared prompt prefix can be
/// reused and only the new tokens recomputed.
public final class KVCache: @unchecked Sendable {
    public let layerCount: Int
    /// Positions this cache can hold.
    public let capacity: Int
    /// nKVHeads × headDim.
    public let rowWidth: Int
    /// keys[l]: [capacity, nKVHeads, headDim] f32
    public let keys: [FloatBuffer]
    /// values[l]: [capacity, nKVHeads, headDim] f32
    public let values: [FloatBuffer]
    /// Valid positions.
    public private(set) var count = 0

    public init(layerCount: Int, capacity: Int, rowWidth: Int) {
        self.layerCount = layerCount
        self.capacity = capacity
        self.rowWidth = rowWidth
        keys = (0..<layerCount).map { _ in FloatBuffer(count: capacity * rowWidth, zeroed: false) }
        values = (0..<layerCount).map { _ in FloatBuffer(count: capacity * rowWidth, zeroed: false) }
    }

    /// Bytes held by keys and values.
    public var byteCount: Int { 2 * layerCount * capacity * rowWidth * MemoryLayout<Float>.size }

    /// Forgets positions at and after `newCount`.
    public func truncate(to newCount: Int) { count = max(0, min(count, newCount)) }

    /// Marks `n` more positions valid (called by the model after a forward pass).
    func advance(by n: Int) { count += n }
}
