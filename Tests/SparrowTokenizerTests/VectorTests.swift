import Testing
@testable import SparrowTokenizer

/// llama.cpp's tokenizer test vectors (tests/test-tokenizer-0: add_special = false,
/// parse_special = false), run against the ggml-vocab-*.gguf files they come with.
@Suite("llama.cpp tokenizer test vectors")
struct VectorTests {
    /// Vocabularies that must match llama.cpp on every vector.
    static let required = ["qwen2", "qwen35", "llama-bpe", "gpt-2", "llama-spm", "starcoder", "falcon",
                           "deepseek-coder", "deepseek-llm", "refact", "command-r", "mpt", "phi-3", "gemma-4"]

    @Test("tokenization matches llama.cpp on every test vector", .enabled(if: VocabFiles.available), arguments: required)
    func vectors(_ name: String) throws {
        try #require(VocabFiles.has(name), "missing ggml-vocab-\(name).gguf")
        let tok = try VocabFiles.tokenizer(name)
        let cases = try VocabFiles.cases(name)
        var failures = 0
        for c in cases {
            let got = tok.encode(c.input, addSpecial: false, parseSpecial: false)
            if got != c.expected {
                failures += 1
                Issue.record("\(name): \(c.input.debugDescription)\n  expected \(c.expected)\n  got      \(got)")
            }
        }
        print("\(name): \(cases.count - failures)/\(cases.count) vectors pass")
    }
}
