import Foundation
import Testing
@testable import SparrowEngine
import SparrowSampling

/// Generation behaviour on a real (small) model: seeds, stop strings, prefix reuse, errors.
@Suite("Sessions on SmolLM2", .serialized, .enabled(if: GoldenTests.enabled))
struct SessionTests {
    static func engine(context: Int = 512) throws -> Engine {
        try Engine(path: ModelStore().resolve("smollm2-135m", pullIfMissing: false), contextLength: context)
    }

    func sampled(seed: UInt64) -> GenerationParameters {
        var p = GenerationParameters()
        p.maxTokens = 24
        p.sampling.temperature = 1.0
        p.sampling.seed = seed
        return p
    }

    @Test("the same seed gives the same output; another seed another")
    func seeds() throws {
        let e = try Self.engine()
        let prompt = e.tokenize("Write a sentence about the sea.")
        let a = try e.makeSession().generate(prompt: prompt, parameters: sampled(seed: 1))
        let b = try e.makeSession().generate(prompt: prompt, parameters: sampled(seed: 1))
        let c = try e.makeSession().generate(prompt: prompt, parameters: sampled(seed: 2))
        #expect(a.tokens == b.tokens)
        #expect(a.tokens != c.tokens)
    }

    @Test("a stop string ends generation and is not part of the text")
    func stopString() throws {
        let e = try Self.engine()
        var p = GenerationParameters()
        p.maxTokens = 64
        p.sampling = .greedy
        let prompt = e.tokenize("The capital of France is")
        let free = try e.makeSession().generate(prompt: prompt, parameters: p)
        #expect(free.text.contains("\n"))
        p.stop = ["\n"]
        var streamed = ""
        let stopped = try e.makeSession().generate(prompt: prompt, parameters: p) { streamed += $0; return true }
        #expect(stopped.finishReason == .stop)
        #expect(!stopped.text.contains("\n"))
        #expect(free.text.hasPrefix(stopped.text))
        #expect(streamed == stopped.text)
    }

    @Test("max tokens ends with finish reason length")
    func length() throws {
        let e = try Self.engine()
        var p = GenerationParameters()
        p.maxTokens = 5
        p.sampling = .greedy
        let r = try e.makeSession().generate(prompt: e.tokenize("Once upon a time"), parameters: p)
        #expect(r.tokens.count == 5 && r.finishReason == .length)
    }

    @Test("a second turn reuses the cached prefix and equals a fresh run")
    func prefixReuse() throws {
        let e = try Self.engine()
        var p = GenerationParameters()
        p.maxTokens = 8
        p.sampling = .greedy
        let session = e.makeSession()
        let first = e.tokenize("One, two, three,")
        _ = try session.generate(prompt: first, parameters: p)
        let second = e.tokenize("One, two, three, four, five,")
        let reused = try session.generate(prompt: second, parameters: p)
        let fresh = try e.makeSession().generate(prompt: second, parameters: p)
        #expect(reused.cachedPromptTokens > 0)
        #expect(reused.tokens == fresh.tokens)
    }

    @Test("a prompt longer than the context is a typed error and the engine keeps working")
    func tooLong() throws {
        let e = try Self.engine(context: 32)
        let long = e.tokenize(String(repeating: "word ", count: 100))
        #expect(throws: EngineError.self) { try e.makeSession().generate(prompt: long, parameters: GenerationParameters()) }
        var p = GenerationParameters()
        p.maxTokens = 3
        #expect(try e.makeSession().generate(prompt: e.tokenize("Hi"), parameters: p).tokens.count <= 3)
    }

    @Test("invalid sampling parameters are rejected with the parameter's name")
    func invalidParameters() throws {
        let e = try Self.engine()
        var p = GenerationParameters()
        p.sampling.topP = 1.5
        do {
            _ = try e.makeSession().generate(prompt: e.tokenize("Hi"), parameters: p)
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("top_p"))
        }
    }
}
