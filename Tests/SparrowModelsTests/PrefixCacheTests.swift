import Foundation
import Testing
@testable import SparrowEngine
import SparrowModels
import SparrowKernels

/// The prefix cache's blocks: saved from one cache, restored into another byte for byte, found
/// only under the same prefix, evicted least recently used first within its byte budget.
@Suite("Prefix cache")
struct PrefixCacheTests {
    static let layers = 2, width = 8

    /// A cache holding `tokens.count` positions whose rows are a function of the prefix (as real
    /// keys and values are): row p depends on tokens[0...p].
    static func filled(_ tokens: [Int32], type: KVCacheType = .f16) -> KVCache {
        let cache = KVCache(layerCount: layers, capacity: 256, rowWidth: width, type: type)
        let bpp = cache.bytesPerPosition
        var rows = [UInt8](repeating: 0, count: tokens.count * bpp)
        var h: UInt64 = 1
        for (p, t) in tokens.enumerated() {
            h = PrefixCache.hash(parent: h, [t])
            // exportRows layout for one position at a time is per layer: keys row, values row.
            for b in 0..<bpp { rows[p * bpp + b] = UInt8(truncatingIfNeeded: h >> (UInt64(b % 8) * 8)) &+ UInt8(truncatingIfNeeded: b) }
        }
        for p in 0..<tokens.count {
            rows.withUnsafeBytes { _ = cache.importRows(start: p, count: 1, from: $0.baseAddress! + p * bpp) }
        }
        return cache
    }

    static func bytes(_ cache: KVCache, _ n: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: n * cache.bytesPerPosition)
        out.withUnsafeMutableBytes { cache.exportRows(start: 0, count: n, into: $0.baseAddress!) }
        return out
    }

    let system: [Int32] = (0..<40).map { Int32($0 * 7 % 50) }

    @Test("a saved prefix is restored byte for byte into another cache, after what that cache holds")
    func roundTrip() {
        let store = PrefixCache(capacityBytes: 1 << 20)
        let a = system + [100, 101, 102]
        let source = Self.filled(a)
        store.save(source, tokens: a, fromBlock: 0)
        #expect(store.blockCount == 2)  // 43 tokens: two full 16-token blocks
        // A prompt sharing the 40-token system prompt: blocks 0 and 1 continue it.
        let b = system + [200, 201]
        #expect(store.extent(of: b, fromBlock: 0, limit: b.count - 1) == 32)
        #expect(store.extent(of: b, fromBlock: 1, limit: b.count - 1) == 32)
        #expect(store.extent(of: b, fromBlock: 0, limit: 20) == 16)
        // The target holds the first 5 tokens already; blocks 0 and 1 are copied over them.
        let target = Self.filled(Array(b.prefix(5)))
        #expect(store.restore(into: target, prompt: b, fromBlock: 0, end: 32))
        #expect(target.count == 32)
        #expect(Self.bytes(target, 32) == Self.bytes(Self.filled(b), 32))
        #expect(store.restoredTokens == 32)
    }

    @Test("blocks match only under the same prefix and the same tokens")
    func onlySamePrefix() {
        let store = PrefixCache(capacityBytes: 1 << 20)
        let a = system + [1]
        store.save(Self.filled(a), tokens: a, fromBlock: 0)
        var other = system
        other[3] += 1  // differs in block 0: block 1's tokens are the same, its prefix is not
        #expect(store.extent(of: other + [1], fromBlock: 0, limit: 40) == 0)
        #expect(store.extent(of: other + [1], fromBlock: 1, limit: 40) == 16)
        #expect(!store.restore(into: Self.filled(Array(other.prefix(16))), prompt: other + [1], fromBlock: 1, end: 32))
        // Nothing stored for a prompt that starts differently.
        #expect(store.extent(of: [9, 9, 9] + system, fromBlock: 0, limit: 40) == 0)
    }

    @Test("saving from a block on skips blocks before it and blocks already stored")
    func saveFromBlock() {
        let store = PrefixCache(capacityBytes: 1 << 20)
        let a = system + Array(repeating: 5, count: 30)  // 70 tokens: 4 full blocks
        let cache = Self.filled(a)
        store.save(cache, tokens: a, fromBlock: 2)
        #expect(store.blockCount == 2)
        #expect(store.extent(of: a, fromBlock: 0, limit: 69) == 0)
        #expect(store.extent(of: a, fromBlock: 2, limit: 69) == 64)
        store.save(cache, tokens: a, fromBlock: 0)
        #expect(store.blockCount == 4)
        #expect(store.byteCount == 4 * 16 * cache.bytesPerPosition)
    }

    @Test("within its budget the least recently used blocks go first, a chain's end before its start")
    func eviction() {
        let blockBytes = 16 * Self.filled([1]).bytesPerPosition
        let store = PrefixCache(capacityBytes: 3 * blockBytes)
        let a = (0..<33).map { Int32($0) }, b = (0..<33).map { Int32(1000 + $0) }
        store.save(Self.filled(a), tokens: a, fromBlock: 0)  // a0, a1
        store.save(Self.filled(b), tokens: b, fromBlock: 0)  // needs 2: evicts a1, then b0, b1 fit
        #expect(store.blockCount == 3 && store.byteCount <= 3 * blockBytes)
        #expect(store.extent(of: a, fromBlock: 0, limit: 32) == 16)
        #expect(store.extent(of: b, fromBlock: 0, limit: 32) == 32)
        // A block larger than the whole budget is not stored.
        let tiny = PrefixCache(capacityBytes: blockBytes - 1)
        tiny.save(Self.filled(a), tokens: a, fromBlock: 0)
        #expect(tiny.blockCount == 0 && tiny.byteCount == 0)
    }

    @Test("f32 caches round-trip too; a cache with a recurrent state is never saved to or restored")
    func typesAndRecurrent() {
        let store = PrefixCache(capacityBytes: 1 << 20)
        let a = system
        store.save(Self.filled(a, type: .f32), tokens: a, fromBlock: 0)
        let target = KVCache(layerCount: Self.layers, capacity: 256, rowWidth: Self.width, type: .f32)
        #expect(store.restore(into: target, prompt: a, fromBlock: 0, end: 32))
        #expect(Self.bytes(target, 32) == Self.bytes(Self.filled(a, type: .f32), 32))
        // An f16 cache has other row sizes: the f32 blocks do not fit it.
        #expect(!store.restore(into: KVCache(layerCount: Self.layers, capacity: 256, rowWidth: Self.width), prompt: a, fromBlock: 0, end: 32))
        // Hybrid: rows cannot restore a recurrent state.
        let layout = RecurrentStateLayout(layerCount: 1, convSize: 4, ssmSize: 4)
        let hybrid = KVCache(layerCount: Self.layers, capacity: 256, rowWidth: Self.width, type: .f32, recurrent: layout)
        #expect(!store.restore(into: hybrid, prompt: a, fromBlock: 0, end: 32))
        #expect(hybrid.count == 0)
        let before = store.blockCount
        store.save(hybrid, tokens: a, fromBlock: 0)
        #expect(store.blockCount == before)
    }
}
