import Foundation
import Testing

/// With SPARROW_TEST_MODELS=1 (scripts/test and CI fetch everything first) the tests that
/// would otherwise skip for lack of files must run, so a missing file is a failure.
@Suite("Required test files")
struct RequiredFilesTests {
    @Test("llama.cpp vocabularies are present when SPARROW_TEST_MODELS=1",
          .enabled(if: ProcessInfo.processInfo.environment["SPARROW_TEST_MODELS"] == "1"))
    func vocabulariesPresent() {
        for name in ["qwen2", "qwen35", "llama-bpe", "gpt-2", "llama-spm"] {
            #expect(VocabFiles.has(name), "ggml-vocab-\(name).gguf and its .inp/.out are missing from \(VocabFiles.directory)")
        }
    }
}
