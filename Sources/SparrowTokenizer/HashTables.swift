/// Small open-addressing hash tables keyed by raw bytes. Tokenizer lookups must compare
/// byte strings exactly: Swift `String` equality uses canonical equivalence, which would
/// merge distinct vocabulary entries such as "é" and "e\u{301}".

@inline(__always)
func hashBytes(_ p: UnsafePointer<UInt8>, _ count: Int) -> UInt64 {
    var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(truncatingIfNeeded: count)
    var i = 0
    let raw = UnsafeRawPointer(p)
    while i + 8 <= count {
        let v = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
        h = (h ^ v) &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 31
        i += 8
    }
    if i < count {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while i < count {
            v |= UInt64(p[i]) << shift
            shift += 8
            i += 1
        }
        h = (h ^ v) &* 0x94D0_49BB_1331_11EB
    }
    h ^= h >> 29
    h = h &* 0xBF58_476D_1CE4_E5B9
    h ^= h >> 32
    return h
}

/// Map from byte strings to `Int32`, keys stored back to back in one pool. Each slot holds
/// the upper hash bits next to the entry index, so probing rarely touches the entries.
struct ByteStringMap: Sendable {
    private(set) var pool: [UInt8] = []
    private var keyStart: [Int32] = []
    private var keyLength: [Int32] = []
    private(set) var values: [Int32] = []
    /// `hash >> 32 << 32 | entry + 1`, or 0 for an empty slot.
    private var slots: [UInt64]
    private var mask: Int

    var count: Int { values.count }

    init(capacity: Int = 16, poolCapacity: Int = 0) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = [UInt64](repeating: 0, count: size)
        mask = size - 1
        keyStart.reserveCapacity(capacity)
        keyLength.reserveCapacity(capacity)
        values.reserveCapacity(capacity)
        pool.reserveCapacity(max(poolCapacity, capacity * 4))
    }

    /// Where entry `index`'s bytes sit in `pool`.
    func keyRange(at index: Int) -> Range<Int> {
        let s = Int(keyStart[index])
        return s..<(s + Int(keyLength[index]))
    }

    /// Bytes of entry `index`.
    func key(at index: Int) -> ArraySlice<UInt8> {
        pool[keyRange(at: index)]
    }

    @inline(__always)
    private func findSlot(_ p: UnsafePointer<UInt8>, _ n: Int, _ h: UInt64) -> (slot: Int, entry: Int) {
        var slot = Int(truncatingIfNeeded: h) & mask
        let tag = h & 0xFFFF_FFFF_0000_0000
        return pool.withUnsafeBufferPointer { poolPtr in
            while true {
                let v = slots[slot]
                if v == 0 { return (slot, -1) }
                if v & 0xFFFF_FFFF_0000_0000 == tag {
                    let e = Int(v & 0xFFFF_FFFF) - 1
                    if Int(keyLength[e]) == n {
                        let s = Int(keyStart[e])
                        var same = true
                        if let base = poolPtr.baseAddress {
                            var i = 0
                            while i < n {
                                if base[s + i] != p[i] { same = false; break }
                                i += 1
                            }
                        } else {
                            same = n == 0
                        }
                        if same { return (slot, e) }
                    }
                }
                slot = (slot + 1) & mask
            }
        }
    }

    /// Index of the entry for `key`, or nil.
    @inline(__always)
    func index(of p: UnsafePointer<UInt8>, count n: Int) -> Int? {
        let r = findSlot(p, n, hashBytes(p, n))
        return r.entry >= 0 ? r.entry : nil
    }

    /// The value stored for `key`, or nil.
    @inline(__always)
    func find(_ p: UnsafePointer<UInt8>, count n: Int) -> Int32? {
        guard let e = index(of: p, count: n) else { return nil }
        return values[e]
    }

    func find(_ key: [UInt8]) -> Int32? {
        key.withUnsafeBufferPointer { b in
            guard let p = b.baseAddress else {
                var zero: UInt8 = 0
                return find(&zero, count: 0)
            }
            return find(p, count: b.count)
        }
    }

    /// Inserts `key` → `value`. When the key exists, replaces the value if `overwrite`.
    /// Returns the entry index.
    @discardableResult
    mutating func insert(_ p: UnsafePointer<UInt8>, count n: Int, value: Int32, overwrite: Bool) -> Int {
        let h = hashBytes(p, n)
        let r = findSlot(p, n, h)
        if r.entry >= 0 {
            if overwrite { values[r.entry] = value }
            return r.entry
        }
        let e = values.count
        keyStart.append(Int32(pool.count))
        keyLength.append(Int32(n))
        pool.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
        values.append(value)
        slots[r.slot] = h & 0xFFFF_FFFF_0000_0000 | UInt64(e + 1)
        if values.count * 2 > slots.count { grow() }
        return e
    }

    @discardableResult
    mutating func insert(_ key: [UInt8], value: Int32, overwrite: Bool) -> Int {
        key.withUnsafeBufferPointer { b in
            if let p = b.baseAddress { return insert(p, count: b.count, value: value, overwrite: overwrite) }
            var zero: UInt8 = 0
            return insert(&zero, count: 0, value: value, overwrite: overwrite)
        }
    }

    private mutating func grow() {
        let size = slots.count * 2
        var newSlots = [UInt64](repeating: 0, count: size)
        let newMask = size - 1
        pool.withUnsafeBufferPointer { poolPtr in
            for e in 0..<values.count {
                let s = Int(keyStart[e]), n = Int(keyLength[e])
                let h: UInt64
                if let base = poolPtr.baseAddress { h = hashBytes(base + s, n) } else { var z: UInt8 = 0; h = hashBytes(&z, 0) }
                var slot = Int(truncatingIfNeeded: h) & newMask
                while newSlots[slot] != 0 { slot = (slot + 1) & newMask }
                newSlots[slot] = h & 0xFFFF_FFFF_0000_0000 | UInt64(e + 1)
            }
        }
        slots = newSlots
        mask = newMask
    }
}

/// Map from a pair of 32-bit ids to a 64-bit payload (BPE merges: rank and result).
struct PairTable: Sendable {
    private var keys: [UInt64]
    private var vals: [UInt64]
    private var mask: Int
    private(set) var count = 0
    private static let empty = UInt64.max

    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        keys = [UInt64](repeating: PairTable.empty, count: size)
        vals = [UInt64](repeating: 0, count: size)
        mask = size - 1
    }

    @inline(__always)
    private static func mix(_ k: UInt64) -> Int {
        var h = k &* 0x9E37_79B9_7F4A_7C15
        h ^= h >> 29
        return Int(truncatingIfNeeded: h)
    }

    @inline(__always)
    func find(_ a: Int32, _ b: Int32) -> UInt64? {
        let k = UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
        var slot = PairTable.mix(k) & mask
        while true {
            let cur = keys[slot]
            if cur == k { return vals[slot] }
            if cur == PairTable.empty { return nil }
            slot = (slot + 1) & mask
        }
    }

    /// Inserts unless the pair is present (first insertion wins, as `emplace`).
    mutating func insertIfAbsent(_ a: Int32, _ b: Int32, _ v: UInt64) {
        let k = UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
        var slot = PairTable.mix(k) & mask
        while true {
            let cur = keys[slot]
            if cur == k { return }
            if cur == PairTable.empty { break }
            slot = (slot + 1) & mask
        }
        keys[slot] = k
        vals[slot] = v
        count += 1
        if count * 2 > keys.count { grow() }
    }

    private mutating func grow() {
        let oldKeys = keys, oldVals = vals
        let size = keys.count * 2
        keys = [UInt64](repeating: PairTable.empty, count: size)
        vals = [UInt64](repeating: 0, count: size)
        mask = size - 1
        for i in 0..<oldKeys.count where oldKeys[i] != PairTable.empty {
            var slot = PairTable.mix(oldKeys[i]) & mask
            while keys[slot] != PairTable.empty { slot = (slot + 1) & mask }
            keys[slot] = oldKeys[i]
            vals[slot] = oldVals[i]
        }
    }
}
