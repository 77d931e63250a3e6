import SparrowKernels

/// Sizes of a hybrid model's per-sequence recurrent state (one entry per linear-attention layer).
public struct RecurrentStateLayout: Sendable, Equatable {
    /// Linear-attention (Gated DeltaNet) layers.
    public var layerCount: Int
    /// Floats of one layer's convolution state: (conv kernel − 1) × conv channels.
    public var convSize: Int
    /// Floats of one layer's delta-rule state: value heads × value dim × key dim.
    public var ssmSize: Int
    /// Snapshots kept for going back to an earlier position (oldest dropped first). Default 2.
    /// Each costs `layerCount × (convSize + ssmSize) × 4` bytes (~63 MB for Qwen3.5-35B-A3B).
    public var maxSnapshots: Int

    public init(layerCount: Int, convSize: Int, ssmSize: Int, maxSnapshots: Int = 2) {
        self.layerCount = layerCount
        self.convSize = convSize
        self.ssmSize = ssmSize
        self.maxSnapshots = maxSnapshots
    }
}

/// The recurrent state of one sequence in a hybrid model: for every linear-attention layer
/// the causal convolution's last inputs and the delta rule's state matrices, as they stand
/// after the cache's `count` positions, plus snapshots of the same at earlier positions.
///
/// Owned by a `KVCache`; the model reads and writes the live state during `forward`, the
/// cache restores and copies it (`truncate`, `copyPrefix`).
public final class RecurrentState: @unchecked Sendable {
    public let layout: RecurrentStateLayout
    /// [layers, kernel-1, channels] f32: live convolution states.
    let conv: FloatBuffer
    /// [layers, nV, dv, dk] f32: live delta-rule states.
    let ssm: FloatBuffer
    /// Saved states, ascending by position (truncation keeps them so: later ones are dropped).
    private(set) var snapshots: [Snapshot] = []
    /// Position at which the next forward pass should save a snapshot (`KVCache.requestSnapshot`).
    var pendingSnapshot: Int?

    /// The state after `position` tokens.
    final class Snapshot {
        let position: Int
        let conv: FloatBuffer  // [layers, kernel-1, channels]
        let ssm: FloatBuffer   // [layers, nV, dv, dk]

        init(position: Int, layout: RecurrentStateLayout) {
            self.position = position
            conv = FloatBuffer(count: layout.layerCount * layout.convSize, zeroed: false)
            ssm = FloatBuffer(count: layout.layerCount * layout.ssmSize, zeroed: false)
        }
    }

    init(layout: RecurrentStateLayout) {
        self.layout = layout
        conv = FloatBuffer(count: layout.layerCount * layout.convSize)
        ssm = FloatBuffer(count: layout.layerCount * layout.ssmSize)
    }

    /// Bytes of the live state and the snapshots.
    var byteCount: Int { (1 + snapshots.count) * layout.layerCount * (layout.convSize + layout.ssmSize) * 4 }

    /// Live convolution state of linear layer `l`: [kernel-1, channels].
    func convState(_ l: Int) -> UnsafeMutablePointer<Float> { conv.pointer + l * layout.convSize }
    /// Live delta-rule state of linear layer `l`: [nV, dv, dk].
    func ssmState(_ l: Int) -> UnsafeMutablePointer<Float> { ssm.pointer + l * layout.ssmSize }

    /// The position of the latest snapshot at or before `n`, or 0 (the empty state).
    func latestSnapshot(atOrBefore n: Int) -> Int {
        snapshots.last { $0.position <= n }?.position ?? 0
    }

    /// Makes the state the one saved at `position` (zeros for 0) and drops later snapshots.
    func restore(position: Int) {
        snapshots.removeAll { $0.position > position }
        if position > 0, let s = snapshots.last, s.position == position {
            conv.pointer.update(from: s.conv.pointer, count: conv.count)
            ssm.pointer.update(from: s.ssm.pointer, count: ssm.count)
        } else {
            conv.pointer.update(repeating: 0, count: conv.count)
            ssm.pointer.update(repeating: 0, count: ssm.count)
        }
        if let p = pendingSnapshot, p < position { pendingSnapshot = nil }
    }

    /// Takes `source`'s state at `position` (its live state when `position == sourceCount`,
    /// else its snapshot there), keeping it as this state's only snapshot.
    func copyState(of source: RecurrentState, at position: Int, sourceCount: Int) {
        if position == sourceCount {
            conv.pointer.update(from: source.conv.pointer, count: conv.count)
            ssm.pointer.update(from: source.ssm.pointer, count: ssm.count)
        } else if let s = source.snapshots.last(where: { $0.position == position }) {
            conv.pointer.update(from: s.conv.pointer, count: conv.count)
            ssm.pointer.update(from: s.ssm.pointer, count: ssm.count)
        } else {
            conv.pointer.update(repeating: 0, count: conv.count)
            ssm.pointer.update(repeating: 0, count: ssm.count)
        }
        snapshots = []
        pendingSnapshot = nil
        if position > 0 { saveLive(position: position) }
    }

    /// Keeps a copy of the live state as the snapshot at `position`.
    func saveLive(position: Int) {
        let s = Snapshot(position: position, layout: layout)
        s.conv.pointer.update(from: conv.pointer, count: conv.count)
        s.ssm.pointer.update(from: ssm.pointer, count: ssm.count)
        commit(s)
    }

    /// Adds a filled snapshot (replacing one at the same position), dropping the oldest beyond the limit.
    func commit(_ s: Snapshot) {
        snapshots.removeAll { $0.position >= s.position }
        snapshots.append(s)
        if snapshots.count > max(layout.maxSnapshots, 0) { snapshots.removeFirst(snapshots.count - max(layout.maxSnapshots, 0)) }
    }

    /// Where a forward pass over positions `start ..< start + n` must save the pending snapshot:
    /// nil for none; otherwise m in 1...n, the number of this pass's tokens after which to save
    /// (m == n: after the pass, from the live state). A request at `start` is served at once
    /// and one already passed is dropped.
    func snapshotOffset(start: Int, n: Int) -> Int? {
        guard let p = pendingSnapshot else { return nil }
        if p < start { pendingSnapshot = nil; return nil }
        if p == start {
            pendingSnapshot = nil
            if p > 0 { saveLive(position: p) }
            return nil
        }
        return p <= start + n ? p - start : nil
    }
}
