import SparrowModels

/// Keys and values of token blocks that sequence slots no longer hold, kept in memory so a
/// later prompt with the same prefix copies them back instead of computing them again (vLLM's
/// automatic prefix caching, SGLang's radix cache, llama-server's `--cache-ram`).
///
/// A prompt is cut into blocks of `blockTokens` tokens; block i is named by a hash of every
/// token up to its end (its parent block's hash and its own tokens), so a block matches only
/// under the same prefix. The scheduler saves a slot's full blocks when it is about to discard
/// them (a new job takes the slot, `save`), and on admission continues the prefix a slot
/// already holds with stored blocks (`extent`, `restore`). Only prompt blocks are saved, not
/// generated ones: a reply rarely comes back token for token, and keeping one-off text would
/// churn the cache (and grow the server's memory up to the limit under ordinary traffic). A
/// stored block also keeps its parent's hash and its tokens, and both are compared on lookup,
/// so a hash collision can never hand back another prefix's keys and values.
///
/// Memory is bounded by `capacityBytes`; the least recently used blocks go first, the end of a
/// chain before its start (a chain is used together, and a block without its parent is
/// unreachable). Blocks are rows exported by `KVCache.exportRows`, so a cache restored from
/// them holds exactly the bytes the prefix's own computation wrote (positions are absolute
/// and prefill is batch-invariant, `BatchInvarianceTests`). Models with a recurrent state
/// (Gated DeltaNet hybrids) cannot be restored from rows and do not use it.
///
/// Owned by the scheduler's loop thread; not thread-safe.
final class PrefixCache {
    /// Tokens per block.
    let blockTokens: Int
    /// Bytes of keys and values the store may hold.
    let capacityBytes: Int
    /// Bytes held now.
    private(set) var byteCount = 0
    /// Prompt tokens whose keys/values were copied back from the store.
    private(set) var restoredTokens = 0

    private struct Block {
        let parent: UInt64
        let index: Int
        let tokens: [Int32]
        let data: UnsafeMutableRawPointer
        let bytes: Int
        var lastUsed: UInt64
    }

    private var blocks: [UInt64: Block] = [:]
    private var clock: UInt64 = 0

    init(capacityBytes: Int, blockTokens: Int = 16) {
        precondition(blockTokens > 0)
        self.capacityBytes = capacityBytes
        self.blockTokens = blockTokens
    }

    deinit {
        for b in blocks.values { b.data.deallocate() }
    }

    /// Blocks held now.
    var blockCount: Int { blocks.count }

    /// The hash naming the prefix that ends with block `tokens` after the prefix named `parent`.
    static func hash(parent: UInt64, _ tokens: ArraySlice<Int32>) -> UInt64 {
        var h = parent ^ 0x9E37_79B9_7F4A_7C15
        for t in tokens {
            h = (h ^ UInt64(UInt32(bitPattern: t))) &* 0x0000_0100_0000_01B3
            h ^= h >> 29
        }
        // splitmix64's finaliser, so nearby prefixes land far apart.
        h = (h ^ (h >> 30)) &* 0xBF58_476D_1CE4_E5B9
        h = (h ^ (h >> 27)) &* 0x94D0_49BB_1331_11EB
        return h ^ (h >> 31)
    }

    /// Hashes of the first `count` full blocks of `tokens`: [h(block 0), h(block 1), …].
    func chain(_ tokens: [Int32], count: Int) -> [UInt64] {
        var hashes: [UInt64] = []
        hashes.reserveCapacity(count)
        var parent: UInt64 = 0
        for i in 0..<count {
            parent = Self.hash(parent: parent, tokens[(i * blockTokens)..<((i + 1) * blockTokens)])
            hashes.append(parent)
        }
        return hashes
    }

    /// The stored block `i` of `tokens` (with hashes `hashes`), if present and verified.
    private func lookup(_ tokens: [Int32], _ hashes: [UInt64], _ i: Int) -> Block? {
        guard let b = blocks[hashes[i]], b.index == i, b.parent == (i == 0 ? 0 : hashes[i - 1]),
              b.tokens.elementsEqual(tokens[(i * blockTokens)..<((i + 1) * blockTokens)]) else { return nil }
        return b
    }

    /// Stores the full blocks from `firstBlock` on of what `cache` holds (`tokens` are its
    /// positions' tokens) that are not stored yet, evicting older blocks to make room. A
    /// block that cannot fit is not stored (nor any after it).
    func save(_ cache: KVCache, tokens: [Int32], fromBlock firstBlock: Int) {
        guard capacityBytes > 0, cache.recurrent == nil else { return }
        let full = min(tokens.count, cache.count) / blockTokens
        guard firstBlock < full else { return }
        let hashes = chain(tokens, count: full)
        let bytes = blockTokens * cache.bytesPerPosition
        clock += 1
        for i in firstBlock..<full {
            if var b = lookup(tokens, hashes, i) {
                b.lastUsed = clock
                blocks[hashes[i]] = b
                continue
            }
            guard bytes <= capacityBytes, makeRoom(bytes, keeping: clock) else { return }
            let data = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            cache.exportRows(start: i * blockTokens, count: blockTokens, into: data)
            if let old = blocks[hashes[i]] { release(old, hashes[i]) }  // a collision: the newer prefix wins
            blocks[hashes[i]] = Block(parent: i == 0 ? 0 : hashes[i - 1], index: i,
                                      tokens: Array(tokens[(i * blockTokens)..<((i + 1) * blockTokens)]),
                                      data: data, bytes: bytes, lastUsed: clock)
            byteCount += bytes
        }
    }

    /// How far stored blocks continue `prompt` from block `firstBlock`: the end, in tokens, of
    /// the longest run of consecutive stored blocks, at most `limit`; `firstBlock × blockTokens`
    /// when block `firstBlock` is not stored.
    func extent(of prompt: [Int32], fromBlock firstBlock: Int, limit: Int) -> Int {
        let full = min(prompt.count, limit) / blockTokens
        guard firstBlock < full else { return firstBlock * blockTokens }
        let hashes = chain(prompt, count: full)
        var i = firstBlock
        while i < full, lookup(prompt, hashes, i) != nil { i += 1 }
        return i * blockTokens
    }

    /// Copies stored blocks `firstBlock ..< end / blockTokens` of `prompt` into `cache`, which
    /// must hold at least the `firstBlock × blockTokens` positions before them; afterwards it
    /// holds `end`. Returns false (cache unchanged) if a block is missing or does not fit.
    func restore(into cache: KVCache, prompt: [Int32], fromBlock firstBlock: Int, end: Int) -> Bool {
        let last = end / blockTokens
        guard end % blockTokens == 0, firstBlock < last, end <= prompt.count, cache.recurrent == nil,
              cache.count >= firstBlock * blockTokens, end <= cache.capacity else { return false }
        let hashes = chain(prompt, count: last)
        var found: [Block] = []
        for i in firstBlock..<last {
            guard let b = lookup(prompt, hashes, i), b.bytes == blockTokens * cache.bytesPerPosition else { return false }
            found.append(b)
        }
        clock += 1
        for (i, b) in zip(firstBlock..<last, found) {
            cache.importRows(start: i * blockTokens, count: blockTokens, from: b.data)
            blocks[hashes[i]]?.lastUsed = clock
        }
        restoredTokens += end - firstBlock * blockTokens
        return true
    }

    /// Evicts least recently used blocks (never those used at `keeping`) until `bytes` more fit.
    private func makeRoom(_ bytes: Int, keeping: UInt64) -> Bool {
        while byteCount + bytes > capacityBytes {
            // Least recently used first; within one use, the end of a chain before its start.
            guard let (key, victim) = blocks.lazy.filter({ $0.value.lastUsed != keeping }).min(by: {
                ($0.value.lastUsed, -$0.value.index) < ($1.value.lastUsed, -$1.value.index)
            }) else { return false }
            release(victim, key)
        }
        return true
    }

    private func release(_ b: Block, _ key: UInt64) {
        b.data.deallocate()
        byteCount -= b.bytes
        blocks[key] = nil
    }
}
