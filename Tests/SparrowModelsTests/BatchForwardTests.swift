import Testing
import SparrowFormats
import SparrowKernels
@testable import SparrowModels

/// `forwardBatch` (one step serving several sequences, as the server's scheduler runs it) must
/// give each sequence the logits and cache contents that `forward` alone gives it.
@Suite("Batched forward")
struct BatchForwardTests {
    /// Three sequences in different states: a fresh prefill, a decode step after a cached
    /// prefix, and a prefill chunk on top of a cached prefix.
    static let histories: [[Int32]] = [[], [3, 9, 27, 1, 5], [30, 2]]
    static let steps: [[Int32]] = [[4, 8, 15, 16, 23], [11], [7, 7, 36]]

    @Test("batched logits equal per-sequence logits", arguments: ["llama", "qwen2", "qwen3"], [KVCacheType.f16, .f32])
    func matchesSequential(arch: String, kv: KVCacheType) throws {
        let model = try ModelRegistry.load(try TinyModelTests.makeModel(arch: arch))
        func prepared() throws -> [KVCache] {
            try Self.histories.map { h throws in
                let c = model.makeCache(capacity: 32, type: kv)
                if !h.isEmpty { _ = try model.forward(h, cache: c, allLogits: false) }
                return c
            }
        }
        let alone = try prepared()
        var expected: [[Float]] = []
        for (c, s) in zip(alone, Self.steps) { expected.append(try model.forward(s, cache: c, allLogits: false)) }

        let batched = try prepared()
        let got = try model.forwardBatch(zip(Self.steps, batched).map { BatchSequence(tokens: $0, cache: $1) })
        #expect(got.count == expected.count)
        for (g, e) in zip(got, expected) {
            #expect(g.count == e.count)
            let worst = zip(g, e).map { abs($0 - $1) }.max() ?? 0
            #expect(worst <= 1e-5, "max |batched - sequential| = \(worst)")
        }
        // The caches advanced alike, and a further decode step agrees too.
        #expect(alone.map(\.count) == batched.map(\.count))
        let next = try model.forwardBatch(batched.map { BatchSequence(tokens: [2], cache: $0) })
        for (c, g) in zip(alone, next) {
            let e = try model.forward([2], cache: c, allLogits: false)
            #expect(zip(g, e).map { abs($0 - $1) }.max() ?? 0 <= 1e-5)
        }
    }

    @Test("a batch that overflows a cache or repeats a cache is an error")
    func errors() throws {
        let model = try ModelRegistry.load(try TinyModelTests.makeModel(arch: "qwen2"))
        let a = model.makeCache(capacity: 4), b = model.makeCache(capacity: 4)
        #expect(throws: ModelError.self) {
            _ = try model.forwardBatch([BatchSequence(tokens: [1], cache: a), BatchSequence(tokens: [1, 2, 3, 4, 5], cache: b)])
        }
        #expect(throws: ModelError.self) {
            _ = try model.forwardBatch([BatchSequence(tokens: [1], cache: a), BatchSequence(tokens: [2], cache: a)])
        }
        #expect(a.count == 0 && b.count == 0)
    }

    @Test("copyPrefix gives a second cache the same continuation")
    func copyPrefix() throws {
        let model = try ModelRegistry.load(try TinyModelTests.makeModel(arch: "qwen3"))
        let a = model.makeCache(capacity: 16), b = model.makeCache(capacity: 16)
        _ = try model.forward([1, 2, 3, 4, 5, 6], cache: a, allLogits: false)
        #expect(b.copyPrefix(from: a, count: 4))
        #expect(b.count == 4)
        a.truncate(to: 4)
        let ea = try model.forward([9], cache: a, allLogits: false)
        let eb = try model.forward([9], cache: b, allLogits: false)
        #expect(ea == eb)
        #expect(!b.copyPrefix(from: a, count: 9))
    }
}
