import Foundation
import Testing
@testable import SparrowEngine
import SparrowModels
import SparrowSampling

/// Tier 3: greedy generations from real GGUF files against llama.cpp's (fixtures made by
/// scripts/make_reference_fixtures.py with llama-cpp-python). Runs when SPARROW_TEST_MODELS=1
/// (scripts/test sets it and pulls the models); fails, never skips, if a model is then missing.
@Suite("Real models against llama.cpp", .serialized)
struct GoldenTests {
    /// |logit − llama.cpp's| allowed on the first step's top-64 logits. Both quantize activations
    /// to 8 bits the same way, but accumulate in different orders (ggml's AVX2 kernels vs our
    /// portable ones) and llama.cpp keeps K/V in f16.
    static let logitTolerance: Float = 0.1
    /// A divergence is accepted only where llama.cpp's own top-2 log-probabilities are this close.
    static let nearTie = 0.25

    static var enabled: Bool { ProcessInfo.processInfo.environment["SPARROW_TEST_MODELS"] == "1" }

    struct Fixture: Decodable {
        struct Case: Decodable {
            struct Logits: Decodable { var ids: [Int32]; var values: [Float] }
            var kind: String
            var rendered: String
            var messages: [[String: String]]?
            var prompt_tokens: [Int32]
            var tokens: [Int32]
            var top2: [[[Double]]]
            var first_logits: Logits
        }
        var model: String
        var cases: [Case]
    }

    @Test("greedy tokens match llama.cpp", .enabled(if: enabled), arguments: ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
    func greedy(model name: String) throws {
        let url = try #require(Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: "json"))
        let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
        let path = try ModelStore().resolve(name, pullIfMissing: false)
        let engine = try Engine(path: path, contextLength: 1024)
        var exact = 0, nearTies: [String] = [], maxLogitError: Float = 0
        var generated = 0
        let start = Date()
        for (index, c) in fixture.cases.enumerated() {
            if c.kind == "chat", let messages = c.messages {
                let json = "{\"messages\":[" + messages.map { m in
                    "{\"role\":\(quote(m["role"] ?? "")),\"content\":\(quote(m["content"] ?? ""))}"
                }.joined(separator: ",") + "],\"add_generation_prompt\":true}"
                #expect(try engine.renderChat(requestJSON: json) == c.rendered, "case \(index): rendered chat prompt differs")
            }
            let prompt = engine.tokenize(c.rendered)
            #expect(prompt == c.prompt_tokens, "case \(index): prompt tokens differ")
            let cache = engine.model.makeCache(capacity: 1024)
            var logits = try engine.model.forward(c.prompt_tokens, cache: cache, allLogits: false)
            for (id, v) in zip(c.first_logits.ids, c.first_logits.values) {
                maxLogitError = max(maxLogitError, abs(logits[Int(id)] - v))
            }
            var ours: [Int32] = []
            for step in 0..<c.tokens.count {
                let t = Sampler.argmax(logits)
                ours.append(t)
                if t != c.tokens[step] {
                    let margin = c.top2[step][0][1] - c.top2[step][1][1]
                    if margin < Self.nearTie {
                        nearTies.append("case \(index) step \(step): ours \(t), llama.cpp \(c.tokens[step]) (top-2 margin \(String(format: "%.3f", margin)))")
                    } else {
                        Issue.record("case \(index) (\(c.kind)): token \(step) is \(t), llama.cpp has \(c.tokens[step]) with a clear top-2 margin \(margin)\nours:  \(ours)\ntheirs: \(c.tokens)")
                    }
                    break
                }
                if step == c.tokens.count - 1 { exact += 1; break }
                logits = try engine.model.forward([t], cache: cache, allLogits: false)
                generated += 1
            }
        }
        let seconds = Date().timeIntervalSince(start)
        print("[\(name)] \(exact)/\(fixture.cases.count) cases token-identical; near ties: \(nearTies.isEmpty ? "none" : nearTies.joined(separator: "; ")); max first-step logit error \(maxLogitError); \(generated) decode steps in \(String(format: "%.1f", seconds)) s")
        #expect(maxLogitError <= Self.logitTolerance, "first-step logits differ by up to \(maxLogitError)")
        #expect(fixture.cases.count >= 10)
    }
}

func quote(_ s: String) -> String {
    let data = try? JSONSerialization.data(withJSONObject: [s], options: [])
    let text = data.map { String(decoding: $0, as: UTF8.self) } ?? "[\"\"]"
    return String(text.dropFirst().dropLast())
}
