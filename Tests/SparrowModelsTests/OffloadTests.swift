import Foundation
import Testing
import SparrowFormats
import SparrowEngine
@testable import SparrowModels

/// Expert offloading (`--memory-budget`): the budget parser, the expert cache's accounting and
/// eviction policy, the budget plan's errors, and tiny MoE models whose experts are paged
/// through a cache smaller than their experts, which must give exactly the unbudgeted logits.
@Suite("Expert offloading under a memory budget")
struct OffloadTests {
    // MARK: memory sizes

    @Test("memory sizes parse with binary, decimal and short units")
    func parsesSizes() throws {
        #expect(try MemorySize.parse("8GiB") == 8 << 30)
        #expect(try MemorySize.parse("512MiB") == 512 << 20)
        #expect(try MemorySize.parse("512mib") == 512 << 20)
        #expect(try MemorySize.parse("1.5G") == 3 << 29)
        #expect(try MemorySize.parse("2 GB") == 2_000_000_000)
        #expect(try MemorySize.parse(" 4096 ") == 4096)
        #expect(try MemorySize.parse("64K") == 65536)
        #expect(try MemorySize.parse("1TiB") == 1 << 40)
        #expect(MemorySize.format(8 << 30) == "8.00 GiB")
        #expect(MemorySize.format(1536 << 20) == "1.50 GiB")
        #expect(MemorySize.format(100) == "100 B")
    }

    @Test("bad memory sizes are typed errors that show the accepted forms")
    func refusesBadSizes() {
        let cases: [(String, MemorySizeError)] = [
            ("", .empty), ("   ", .empty),
            ("GiB", .notANumber("GiB")), ("-1G", .notANumber("-1G")), ("1.2.3G", .notANumber("1.2.3G")), (".G", .notANumber(".G")),
            ("8 gigs", .unknownUnit("gigs", in: "8 gigs")), ("8GiBs", .unknownUnit("GiBs", in: "8GiBs")),
            ("0", .notPositive("0")), ("0.5", .notPositive("0.5")), ("0GiB", .notPositive("0GiB")),
            ("99999999TiB", .tooLarge("99999999TiB")),
        ]
        for (text, expected) in cases {
            #expect(throws: expected) { try MemorySize.parse(text) }
        }
        #expect(MemorySizeError.unknownUnit("gigs", in: "8 gigs").description.contains("8GiB, 512MiB"))
    }

    // MARK: the cache's bookkeeping

    /// Accesses `key` at the next tick; a miss is filled at once. Returns whether it hit.
    @discardableResult
    static func use(_ c: inout ExpertCache, _ key: Int) -> Bool {
        c.advance()
        switch c.access(key) {
        case let .hit(slot):
            c.release(slot)
            return true
        case let .miss(slot, _):
            c.filled(slot)
            c.release(slot)
            return false
        case .full:
            Issue.record("cache full with nothing pinned")
            return false
        }
    }

    @Test("hits, misses and evictions are counted per access")
    func accounting() {
        var c = ExpertCache(capacity: 2, keyCount: 10, halfLife: 4)
        #expect(!Self.use(&c, 3))
        #expect(Self.use(&c, 3))
        #expect(!Self.use(&c, 5))
        #expect(Self.use(&c, 5))
        var expected = ExpertCache.Statistics()
        expected.hits = 2
        expected.misses = 2
        #expect(c.statistics == expected)
        #expect(!Self.use(&c, 7))  // a third expert in two slots: one eviction
        #expect(c.statistics.evictions == 1)
        #expect(c.statistics.misses == 3)
        #expect(c.statistics.hitRate == 2.0 / 5.0)
        #expect([3, 5, 7].filter { c.isResident($0) }.count == 2)
        #expect(c.isResident(7))
    }

    @Test("a long half-life evicts the least frequently used, a short one the least recently used")
    func frequencyAndRecency() {
        // 0 is used three times early, 1 once just before 2 arrives.
        func victim(halfLife: Double) -> Int {
            var c = ExpertCache(capacity: 2, keyCount: 3, halfLife: halfLife)
            for k in [0, 0, 0, 1, 2] { Self.use(&c, k) }
            return [0, 1].first { !c.isResident($0) } ?? -1
        }
        #expect(victim(halfLife: 1000) == 1)  // frequency wins: 1 was used once
        #expect(victim(halfLife: 0.1) == 0)   // recency wins: 0 was used longest ago
        // Scores halve every half-life.
        var c = ExpertCache(capacity: 1, keyCount: 1, halfLife: 2)
        Self.use(&c, 0)
        c.advance()
        c.advance()
        #expect(abs(c.currentScore(0) - 0.5) < 1e-12)
    }

    @Test("pinned experts are never evicted; a full cache refuses without counting")
    func pinning() {
        var c = ExpertCache(capacity: 2, keyCount: 4, halfLife: 8)
        guard case let .miss(a, nil) = c.access(0), case let .miss(b, nil) = c.access(1) else {
            Issue.record("expected two misses into empty slots")
            return
        }
        c.filled(a)
        c.filled(b)
        let before = c.statistics
        #expect(c.access(2) == .full)
        #expect(c.statistics == before)
        c.release(b)
        guard case let .miss(slot, evicted) = c.access(2) else {
            Issue.record("expected a miss that evicts expert 1")
            return
        }
        #expect(slot == b && evicted == 1)
        #expect(c.isResident(0) && !c.isResident(1))
        // A fill that fails gives the slot back empty.
        c.abandon(slot)
        #expect(!c.isResident(2))
        #expect(c.pinCount(slot) == 0)
        #expect(c.residentSlot(0) == a)
    }

    // MARK: budgets on tiny models

    static func fixture(_ name: String) throws -> GGUFFile {
        let url = try #require(Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: "gguf"))
        return try GGUFFile(path: url.path)
    }

    /// The smallest budget the plan accepts: dense weights plus one token's experts of a layer.
    static func smallestBudget(_ gguf: GGUFFile) throws -> Int {
        let probe = try OffloadPlan(gguf: gguf, configuration: OffloadConfiguration(memoryBudget: 1 << 40))
        return probe.denseBytes + probe.expertsPerToken * probe.slotBytes
    }

    static let sparseFixtures = ["moe/qwen2moe", "moe/qwen3moe", "moe/qwen3moe-q8_0", "hybrid/qwen35moe", "hybrid/qwen35moe-q8_0"]

    @Test("experts paged through a cache smaller than the experts give exactly the unbudgeted logits",
          arguments: sparseFixtures, [0, 2])
    func budgetedEqualsUnbudgeted(name: String, extraSlotsPerLayer: Int) throws {
        let gguf = try Self.fixture(name)
        let reference = try ModelRegistry.load(gguf)
        // The smallest budget (one token's experts of one layer), or a few more slots per layer.
        let probe = try OffloadPlan(gguf: gguf, configuration: OffloadConfiguration(memoryBudget: 1 << 40))
        let budget = try Self.smallestBudget(gguf) + extraSlotsPerLayer * probe.moeLayers * probe.slotBytes
        // The larger budget also reads ahead the next layer's predicted experts (no effect on results).
        let config = OffloadConfiguration(memoryBudget: budget, halfLifeTokens: 2, prefetchNextLayer: extraSlotsPerLayer > 0)
        let plan = try OffloadPlan(gguf: gguf, configuration: config)
        #expect(plan.slots == plan.expertsPerToken + extraSlotsPerLayer * plan.moeLayers)
        #expect(plan.slots < plan.expertCount)
        #expect(plan.denseBytes + plan.cacheBytes <= plan.budget)
        let store = try ExpertStore(gguf: gguf, plan: plan, configuration: config)
        let model = try ModelRegistry.load(gguf, options: LoadOptions(experts: store))
        #expect(store.registeredExperts == plan.expertCount)

        let vocab = model.config.vocabularySize
        let prompt: [Int32] = (0..<9).map { Int32(($0 * 37 + 11) % vocab) }
        let c0 = reference.makeCache(capacity: 32, type: .f32), c1 = model.makeCache(capacity: 32, type: .f32)
        // Prefill: every position's logits.
        let want = try reference.forward(prompt, cache: c0, allLogits: true)
        let got = try model.forward(prompt, cache: c1, allLogits: true)
        #expect(got == want)
        // Decode token by token, feeding the reference's greedy choice to both.
        func argmax(_ l: ArraySlice<Float>) -> Int32 { Int32(l.indices.max { l[$0] < l[$1] }.map { $0 - l.startIndex } ?? 0) }
        var token = argmax(want[(want.count - vocab)...])
        for _ in 0..<6 {
            let w = try reference.forward([token], cache: c0, allLogits: false)
            let g = try model.forward([token], cache: c1, allLogits: false)
            #expect(g == w)
            token = argmax(w[...])
        }
        let s = store.statistics()
        #expect(s.misses > 0 && s.evictions > 0, "the cache must actually page: \(s)")
        if extraSlotsPerLayer > 0 { #expect(s.hits > 0, "a cache holding more than one layer's experts must hit: \(s)") }
        #expect(s.bytesPagedIn >= s.misses * (plan.slotBytes / 2))
        print("\(name): \(plan.summary); hits \(s.hits), misses \(s.misses), evictions \(s.evictions)")
    }

    @Test("a batched step of a budgeted hybrid MoE model equals the unbudgeted one")
    func batchedHybrid() throws {
        let gguf = try Self.fixture("hybrid/qwen35moe")
        let reference = try ModelRegistry.load(gguf)
        let config = OffloadConfiguration(memoryBudget: try Self.smallestBudget(gguf))
        let store = try ExpertStore(gguf: gguf, plan: try OffloadPlan(gguf: gguf, configuration: config), configuration: config)
        let model = try ModelRegistry.load(gguf, options: LoadOptions(experts: store))
        func step(_ m: any LanguageModel) throws -> [[Float]] {
            let a = m.makeCache(capacity: 16, type: .f32), b = m.makeCache(capacity: 16, type: .f32)
            return try m.forwardBatch([BatchSequence(tokens: [1, 2, 3, 4], cache: a), BatchSequence(tokens: [5, 6], cache: b)])
        }
        #expect(try step(model) == step(reference))
    }

    @Test("budgets too small for the dense weights or one token's experts are refused with the smallest that works")
    func refusesSmallBudgets() throws {
        let gguf = try Self.fixture("hybrid/qwen35moe")
        let smallest = try Self.smallestBudget(gguf)
        for budget in [1024, smallest - 1] {
            let error = #expect(throws: ModelError.self) {
                try OffloadPlan(gguf: gguf, configuration: OffloadConfiguration(memoryBudget: budget))
            }
            #expect(error?.description.contains("--memory-budget \(MemorySize.format(smallest)) or more") == true, "\(String(describing: error))")
        }
        #expect(throws: ModelError.self) { try OffloadConfiguration(memoryBudget: 0).validate() }
        #expect(throws: ModelError.self) { try OffloadConfiguration(memoryBudget: 1 << 30, halfLifeTokens: .nan).validate() }
        // A generous budget holds every expert.
        let all = try OffloadPlan(gguf: gguf, configuration: OffloadConfiguration(memoryBudget: 1 << 30))
        #expect(all.slots == all.expertCount)
    }

    @Test("a dense model fits its budget or is refused; there are no experts to page")
    func denseModel() throws {
        let gguf = try Self.fixture("hybrid/qwen35")
        let plan = try OffloadPlan(gguf: gguf, configuration: OffloadConfiguration(memoryBudget: 1 << 30))
        #expect(plan.expertCount == 0 && plan.slots == 0)
        #expect(throws: ModelError.self) {
            try ExpertStore(gguf: gguf, plan: plan, configuration: OffloadConfiguration(memoryBudget: 1 << 30))
        }
        #expect(throws: ModelError.self) {
            try OffloadPlan(gguf: gguf, configuration: OffloadConfiguration(memoryBudget: plan.denseBytes - 1))
        }
    }

    @Test("the engine runs a sparse model under a budget and generates what it generates without one")
    func engineUnderBudget() throws {
        let url = try #require(Bundle.module.url(forResource: "Fixtures/hybrid/qwen35moe", withExtension: "gguf"))
        let budget = try Self.smallestBudget(try GGUFFile(path: url.path))
        let e = try Engine(path: url.path, contextLength: 64, offload: OffloadConfiguration(memoryBudget: budget))
        let plain = try Engine(path: url.path, contextLength: 64)
        let store = try #require(e.expertStore)
        #expect(e.offloadPlan?.budget == budget)
        var p = GenerationParameters()
        p.maxTokens = 5
        p.sampling = .greedy
        p.ignoreEndOfGeneration = true
        let prompt: [Int32] = [3, 1, 4, 1, 5]
        let budgeted = try e.makeSession().generate(prompt: prompt, parameters: p).tokens
        let unbudgeted = try plain.makeSession().generate(prompt: prompt, parameters: p).tokens
        #expect(budgeted == unbudgeted)
        #expect(store.statistics().misses > 0)
    }
}
