#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The bookkeeping of an expert cache: which expert occupies each of `capacity` slots, which
/// slots are in use (pinned), which expert to evict, and the hit/miss counts. It holds no
/// weights and does no I/O; `ExpertStore` owns the memory and calls it under its lock.
///
/// Policy: frequency weighted by recency (LRFU with exponential decay). Every access to an
/// expert, resident or not, adds 1 to its score after decaying the old score by
/// 2^-(elapsed / halfLife), with time counted in `tick`s (one per MoE layer step). The victim is
/// the unpinned resident expert with the lowest decayed score. Comparing decayed scores at
/// the same moment is comparing `log2(score) + lastAccess / halfLife`, which does not change
/// between accesses, so each expert keeps one number (`priority`). A large half-life tends to
/// LFU, a small one to LRU. Scores are kept for experts not in the cache too, so an expert the
/// router keeps choosing regains its place quickly after an eviction.
public struct ExpertCache: Sendable {
    /// Slots (experts the cache can hold at once).
    public let capacity: Int
    /// Expert keys are `0..<keyCount` (layer × experts per layer + expert).
    public let keyCount: Int
    /// Decay half-life in ticks.
    public let halfLife: Double

    /// Hit/miss/eviction counts since creation.
    public struct Statistics: Sendable, Equatable {
        /// Accesses that found the expert resident.
        public var hits = 0
        /// Accesses that had to page the expert in.
        public var misses = 0
        /// Residents dropped to make room.
        public var evictions = 0
        public init() {}
        /// hits / (hits + misses), or 0 before any access.
        public var hitRate: Double { hits + misses == 0 ? 0 : Double(hits) / Double(hits + misses) }
    }
    public private(set) var statistics = Statistics()

    /// The result of looking an expert up.
    public enum Lookup: Equatable, Sendable {
        /// Resident in this slot (now pinned).
        case hit(slot: Int)
        /// Not resident; a slot was claimed (pinned) and the caller must fill it, then call
        /// `filled` (or `abandon` if filling failed). `evicted` is the key that slot held.
        case miss(slot: Int, evicted: Int?)
        /// Not resident and every slot is pinned: nothing changed (not even the statistics);
        /// try again after a `release`.
        case full
    }

    private var slotKey: [Int]     // [capacity] key in the slot, -1 = empty
    private var pins: [Int]        // [capacity] users of the slot
    private var filledSlot: [Bool] // [capacity] data present (false while being filled)
    private var slotOfKey: [Int]   // [keyCount] slot holding the key, -1 = none
    private var priority: [Double] // [keyCount] log2(score) + last / halfLife
    private var lastTick: [Int]    // [keyCount]
    private var score: [Double]    // [keyCount] score at lastTick
    /// [keyCount] accesses of each expert since creation (router statistics for reports).
    public private(set) var accessCounts: [Int]
    /// Time: one tick per `advance()`.
    public private(set) var tick = 0
    private var nextEmpty = 0      // slots below this have been used at least once

    public init(capacity: Int, keyCount: Int, halfLife: Double) {
        precondition(capacity > 0 && keyCount > 0 && halfLife > 0, "validated by OffloadConfiguration")
        self.capacity = capacity
        self.keyCount = keyCount
        self.halfLife = halfLife
        slotKey = [Int](repeating: -1, count: capacity)
        pins = [Int](repeating: 0, count: capacity)
        filledSlot = [Bool](repeating: false, count: capacity)
        slotOfKey = [Int](repeating: -1, count: keyCount)
        priority = [Double](repeating: -.infinity, count: keyCount)
        lastTick = [Int](repeating: 0, count: keyCount)
        score = [Double](repeating: 0, count: keyCount)
        accessCounts = [Int](repeating: 0, count: keyCount)
    }

    /// Moves time on by one step (the store calls it once per MoE layer step).
    public mutating func advance() { tick += 1 }

    /// The slot holding `key` with its data present, if any (no side effects).
    public func residentSlot(_ key: Int) -> Int? {
        let s = slotOfKey[key]
        return s >= 0 && filledSlot[s] ? s : nil
    }

    /// Whether `key` is resident or being filled.
    public func isResident(_ key: Int) -> Bool { slotOfKey[key] >= 0 }

    /// Users of `slot` (for tests and assertions).
    public func pinCount(_ slot: Int) -> Int { pins[slot] }

    /// Looks `key` up for use: counts a hit or a miss, records the access in the score, and
    /// pins the slot it returns. A slot being filled by another caller counts as a hit (its
    /// data will be there once `filled` is called; `ExpertStore` waits for it).
    public mutating func access(_ key: Int) -> Lookup {
        let s = slotOfKey[key]
        if s >= 0 {
            touch(key)
            pins[s] += 1
            statistics.hits += 1
            return .hit(slot: s)
        }
        guard let v = victim() else { return .full }
        touch(key)
        statistics.misses += 1
        let old = slotKey[v]
        if old >= 0 {
            slotOfKey[old] = -1
            statistics.evictions += 1
        }
        slotKey[v] = key
        slotOfKey[key] = v
        filledSlot[v] = false
        pins[v] = 1
        return .miss(slot: v, evicted: old >= 0 ? old : nil)
    }

    /// Whether the data of `slot` is present (false between a miss and `filled`).
    public func isFilled(_ slot: Int) -> Bool { filledSlot[slot] }

    /// The slot claimed by a miss now holds its expert's data.
    public mutating func filled(_ slot: Int) { filledSlot[slot] = true }

    /// Filling the slot failed: it becomes empty again (the pin is dropped).
    public mutating func abandon(_ slot: Int) {
        let key = slotKey[slot]
        if key >= 0 { slotOfKey[key] = -1 }
        slotKey[slot] = -1
        filledSlot[slot] = false
        pins[slot] = 0
    }

    /// One user of `slot` is done with it.
    public mutating func release(_ slot: Int) {
        precondition(pins[slot] > 0, "release of an unpinned expert slot")
        pins[slot] -= 1
    }

    /// The decayed score of `key` now (for tests and reports).
    public func currentScore(_ key: Int) -> Double {
        score[key] * exp2(-Double(tick - lastTick[key]) / halfLife)
    }

    private mutating func touch(_ key: Int) {
        accessCounts[key] += 1
        let s = currentScore(key) + 1
        score[key] = s
        lastTick[key] = tick
        priority[key] = log2(s) + Double(tick) / halfLife
    }

    /// An empty slot, else the unpinned filled slot of lowest priority (ties: lowest slot).
    private mutating func victim() -> Int? {
        if nextEmpty < capacity {
            nextEmpty += 1
            return nextEmpty - 1
        }
        var best = -1
        var bestPriority = Double.infinity
        for s in 0..<capacity where pins[s] == 0 {
            let key = slotKey[s]
            if key < 0 { return s }  // abandoned
            if filledSlot[s], priority[key] < bestPriority {
                best = s
                bestPriority = priority[key]
            }
        }
        return best >= 0 ? best : nil
    }
}
