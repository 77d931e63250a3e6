import Foundation
import Testing
import SparrowEngine
import SparrowKernels
import SparrowModels

/// A token's logits must not depend on how its step was cut or batched: prefix reuse (a cached
/// prompt continued later) and continuous batching (several sequences in one step) then give
/// exactly what a fresh, single-sequence run gives. Qwen2.5-Coder-0.5B's file holds Q5_0, Q8_0,
/// Q4_K and Q6_K weights, so every single-token, 4-token and 8-token kernel path of those types
/// is compared here (SmolLM2, which the session and scheduler tests use, is Q4_1/Q8_0 only).
@Suite("Batch invariance on Qwen2.5-Coder-0.5B",
       .enabled(if: ProcessInfo.processInfo.environment["SPARROW_TEST_MODELS"] == "1"))
struct BatchInvarianceTests {
    @Test("one prefill, chunks, token by token and a batched step of 8 sequences give bit-identical logits")
    func invariant() throws {
        let e = try Engine(path: ModelStore().resolve("qwen2.5-coder-0.5b", pullIfMissing: false), contextLength: 64)
        let m = e.model, vocab = m.config.vocabularySize
        let tokens = e.tokenize("def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    if n < 2:")
        #expect(tokens.count >= 16)
        // [n, vocab]: the logits of every position from one prefill.
        let whole = try m.forward(tokens, cache: m.makeCache(capacity: 64), allLogits: true)
        func row(_ i: Int) -> ArraySlice<Float> { whole[(i * vocab)..<((i + 1) * vocab)] }

        // Token by token (the single-row decode kernels).
        let stepwise = m.makeCache(capacity: 64)
        for (i, t) in tokens.enumerated() {
            let l = try m.forward([t], cache: stepwise, allLogits: false)
            #expect(l[...] == row(i), "token by token differs at position \(i)")
        }
        // Chunks of 5 (4-token tiles plus a remainder).
        let chunked = m.makeCache(capacity: 64)
        var i = 0
        while i < tokens.count {
            let n = min(5, tokens.count - i)
            let l = try m.forward(Array(tokens[i..<(i + n)]), cache: chunked, allLogits: true)
            for j in 0..<n { #expect(l[(j * vocab)..<((j + 1) * vocab)] == row(i + j), "chunked differs at position \(i + j)") }
            i += n
        }
        // Eight sequences at different positions decode one token each in one batched step.
        let lengths = (0..<8).map { 3 + $0 }
        let caches = try lengths.map { n throws in
            let c = m.makeCache(capacity: 64)
            _ = try m.forward(Array(tokens[..<n]), cache: c, allLogits: false)
            return c
        }
        let batched = try m.forwardBatch(zip(lengths, caches).map { BatchSequence(tokens: [tokens[$0]], cache: $1) })
        for (n, l) in zip(lengths, batched) { #expect(l[...] == row(n), "batched step differs at position \(n)") }
    }
}
