import Foundation
import Testing
import SparrowEngine
import SparrowSampling

/// Continuous batching on a real model: several concurrent jobs must produce exactly what each
/// produces alone through `Session`, and prefixes must be reused across jobs.
@Suite("Scheduler on SmolLM2", .serialized,
       .enabled(if: ProcessInfo.processInfo.environment["SPARROW_TEST_MODELS"] == "1"))
struct SchedulerTests {
    static func engine() throws -> Engine {
        try Engine(path: ModelStore().resolve("smollm2-135m", pullIfMissing: false), contextLength: 512)
    }

    static func collect(_ h: GenerationHandle) async -> (tokens: [Int32], text: String, summary: GenerationSummary?, error: EngineError?) {
        var tokens: [Int32] = [], text = ""
        var summary: GenerationSummary?, error: EngineError?
        for await e in h.events {
            switch e {
            case let .token(t): tokens.append(t.id); text += t.text
            case let .text(s): text += s
            case let .finished(s): summary = s
            case let .failed(x): error = x
            }
        }
        return (tokens, text, summary, error)
    }

    @Test("concurrent greedy jobs equal sequential sessions; prefill chunks interleave with decodes")
    func matchesSessions() async throws {
        let e = try Self.engine()
        let prompts = ["The capital of France is", "def add(a, b):", "Once upon a time, in a land far away,", "1, 2, 3, 4,"]
            .map { e.tokenize($0) }
        var p = GenerationParameters()
        p.maxTokens = 12
        p.sampling = .greedy
        let expected = try prompts.map { try e.makeSession().generate(prompt: $0, parameters: p) }

        var config = SchedulerConfiguration()
        config.maxSequences = 3  // one job waits in the queue
        config.prefillChunk = 4  // prompts take several steps, interleaved with other jobs' decoding
        let s = try Scheduler(engine: e, configuration: config)
        let handles = try prompts.map { try s.submit(GenerationJob(prompt: $0, parameters: p)) }
        var results: [(tokens: [Int32], text: String, summary: GenerationSummary?, error: EngineError?)] = []
        for h in handles { results.append(await Self.collect(h)) }
        for (r, x) in zip(results, expected) {
            #expect(r.error == nil)
            #expect(r.tokens == x.tokens)
            #expect(r.text == x.text)
            #expect(r.summary?.finishReason == x.finishReason)
            #expect(r.summary?.completionTokens == x.tokens.count)
        }
        let stats = s.snapshot()
        #expect(stats.batchedSequences > stats.steps)  // some steps served several sequences
        s.shutdown()
    }

    @Test("a shared prefix is reused, from an idle slot or copied from another")
    func prefixReuse() async throws {
        let e = try Self.engine()
        let system = String(repeating: "You are a careful assistant. ", count: 12)
        let a = e.tokenize(system + "Question one?"), b = e.tokenize(system + "Question two?")
        var p = GenerationParameters()
        p.maxTokens = 4
        p.sampling = .greedy
        var config = SchedulerConfiguration()
        config.maxSequences = 2
        config.minPrefixCopy = 8
        let s = try Scheduler(engine: e, configuration: config)
        let first = await Self.collect(try s.submit(GenerationJob(prompt: a, parameters: p)))
        #expect(first.summary?.cachedPromptTokens == 0)
        let second = await Self.collect(try s.submit(GenerationJob(prompt: b, parameters: p)))
        let shared = zip(a, b).prefix { $0 == $1 }.count
        #expect(second.summary?.cachedPromptTokens == shared)
        let alone = try e.makeSession().generate(prompt: b, parameters: p)
        #expect(second.tokens == alone.tokens)
        s.shutdown()
    }

    @Test("a prefix no slot holds any more is copied back from the prefix cache, with bit-identical results")
    func prefixCacheRestores() async throws {
        let e = try Self.engine()
        let system = String(repeating: "You are a careful assistant. ", count: 12)
        let a = e.tokenize(system + "Question one?"), b = e.tokenize(system + "Question two?")
        let other = e.tokenize("Something else entirely, with no shared prefix at all.")
        var p = GenerationParameters()
        p.maxTokens = 6
        p.sampling = .greedy
        func run(cacheBytes: Int) async throws -> (tokens: [Int32], logprobs: [Float], cached: Int?, stats: SchedulerStats) {
            var config = SchedulerConfiguration()
            config.maxSequences = 1  // one slot: each job evicts the previous one's prefix
            config.minPrefixCopy = 8
            config.prefixCacheBytes = cacheBytes
            let s = try Scheduler(engine: e, configuration: config)
            defer { s.shutdown() }
            _ = await Self.collect(try s.submit(GenerationJob(prompt: a, parameters: p)))
            _ = await Self.collect(try s.submit(GenerationJob(prompt: other, parameters: p)))
            var tokens: [Int32] = [], logprobs: [Float] = []
            var cached: Int?
            for await ev in try s.submit(GenerationJob(prompt: b, parameters: p, topLogprobs: 0)).events {
                if case let .token(t) = ev { tokens.append(t.id); logprobs.append(t.logprob?.logprob ?? .nan) }
                if case let .finished(sum) = ev { cached = sum.cachedPromptTokens }
            }
            return (tokens, logprobs, cached, s.snapshot())
        }
        let with = try await run(cacheBytes: 64 << 20), without = try await run(cacheBytes: 0)
        let shared = zip(a, b).prefix { $0 == $1 }.count
        #expect(without.cached == 0)
        #expect(with.cached == shared / 16 * 16)
        #expect(with.stats.prefixCacheRestoredTokens == shared / 16 * 16)
        #expect(with.stats.prefixCacheBlocks > 0 && with.stats.prefixCacheBytes > 0)
        #expect(with.tokens == without.tokens)
        #expect(with.logprobs.map(\.bitPattern) == without.logprobs.map(\.bitPattern))
    }

    @Test("jobs arriving together with a shared prefix compute it once: the others wait for it and copy it")
    func sharedPrefixComputedOnce() async throws {
        let e = try Self.engine()
        let system = String(repeating: "You are a careful assistant. ", count: 12)
        let prompts = ["Question one?", "Question two?", "Question three?", "Question four?"].map { e.tokenize(system + $0) }
        var p = GenerationParameters()
        p.maxTokens = 4
        p.sampling = .greedy
        var config = SchedulerConfiguration()
        config.maxSequences = 5
        let s = try Scheduler(engine: e, configuration: config)
        // A long unrelated prompt keeps the loop busy while the four arrive, so they reach
        // admission in the same step (without waiting, all four would compute the prefix).
        let busy = try s.submit(GenerationJob(prompt: e.tokenize(String(repeating: "Lorem ipsum dolor sit amet. ", count: 35)), parameters: p))
        let handles = try prompts.map { try s.submit(GenerationJob(prompt: $0, parameters: p)) }
        _ = await Self.collect(busy)
        var results: [(tokens: [Int32], text: String, summary: GenerationSummary?, error: EngineError?)] = []
        for h in handles { results.append(await Self.collect(h)) }
        let shared = zip(prompts[0], prompts[1]).prefix { $0 == $1 }.count
        #expect(shared > config.minPrefixCopy)
        #expect(results[0].summary?.cachedPromptTokens == 0)
        for (r, prompt) in zip(results, prompts).dropFirst() {
            #expect(r.summary?.cachedPromptTokens == shared)
            #expect(r.tokens == (try e.makeSession().generate(prompt: prompt, parameters: p)).tokens)
        }
        #expect(s.snapshot().cachedPromptTokens == 3 * shared)
        s.shutdown()
    }

    @Test("queue limit, timeout, cancellation and bad prompts")
    func limits() async throws {
        let e = try Self.engine()
        var config = SchedulerConfiguration()
        config.maxSequences = 1
        config.queueCapacity = 0
        let s = try Scheduler(engine: e, configuration: config)
        var long = GenerationParameters()
        long.maxTokens = 400
        long.ignoreEndOfGeneration = true
        let h = try s.submit(GenerationJob(prompt: e.tokenize("Tell me a story."), parameters: long, timeout: 0.5))
        #expect(throws: EngineError.self) { _ = try s.submit(GenerationJob(prompt: e.tokenize("x"), parameters: long)) }
        let r = await Self.collect(h)
        if case .timedOut? = r.error {} else { Issue.record("expected a timeout, got \(String(describing: r.error))") }
        let c = try s.submit(GenerationJob(prompt: e.tokenize("Tell me a story."), parameters: long))
        c.cancel()
        let rc = await Self.collect(c)
        #expect(rc.summary == nil && rc.tokens.count < 400)
        #expect(throws: EngineError.self) { _ = try s.submit(GenerationJob(prompt: [], parameters: long)) }
        #expect(throws: EngineError.self) { _ = try s.submit(GenerationJob(prompt: Array(repeating: 1, count: 600), parameters: long)) }
        s.shutdown()
    }
}
