import Foundation
import Testing
@testable import SparrowTokenizer

/// Token ids for varied strings on the real model vocabularies (Qwen2.5-Coder: pre
/// "qwen2"; SmolLM2: pre "smollm"), recorded in Fixtures/model_references.json by
/// Fixtures/make_model_references.py. Model files come from the model store ($SPARROW_MODELS,
/// default ~/.cache/sparrow/models); tests for missing files are skipped, unless
/// SPARROW_TEST_MODELS=1 (scripts/test, CI), where a missing file fails.
@Suite("Model vocabulary references")
struct ModelReferenceTests {
    struct Case: Decodable {
        let model: String
        let text: String
        let add_special: Bool
        let parse_special: Bool
        let tokens: [Int32]
    }

    struct File: Decodable {
        let generator: String
        let cases: [Case]
    }

    static let modelsDirectory: String = {
        let env = ProcessInfo.processInfo.environment
        if let d = env["SPARROW_MODELS"], !d.isEmpty { return d }
        if let x = env["XDG_CACHE_HOME"], !x.isEmpty { return x + "/sparrow/models" }
        return NSHomeDirectory() + "/.cache/sparrow/models"
    }()

    static func load() throws -> File {
        let url = try #require(Bundle.module.url(forResource: "model_references", withExtension: "json", subdirectory: "Fixtures"))
        return try JSONDecoder().decode(File.self, from: Data(contentsOf: url))
    }

    static func modelAvailable(_ name: String) -> Bool {
        FileManager.default.fileExists(atPath: "\(modelsDirectory)/\(name)")
    }

    @Test("tokens match the recorded references", arguments: ["qwen2.5-coder-0.5b-instruct.gguf", "SmolLM2-135M-Instruct.Q4_1.gguf"])
    func references(_ model: String) throws {
        guard Self.modelAvailable(model) else {
            if ProcessInfo.processInfo.environment["SPARROW_TEST_MODELS"] == "1" {
                Issue.record("\(model) not found in \(Self.modelsDirectory) (SPARROW_TEST_MODELS=1 requires it)")
            }
            print("⚠️ \(model) not found in \(Self.modelsDirectory); skipping its reference check")
            return
        }
        let file = try Self.load()
        let tok = try VocabFiles.tokenizer(atPath: "\(Self.modelsDirectory)/\(model)")
        let cases = file.cases.filter { $0.model == model }
        #expect(cases.count >= 40)
        var passed = 0
        for c in cases {
            let got = tok.encode(c.text, addSpecial: c.add_special, parseSpecial: c.parse_special)
            if got == c.tokens {
                passed += 1
            } else {
                Issue.record("\(model) add_special=\(c.add_special) parse_special=\(c.parse_special) \(c.text.debugDescription)\n  expected \(c.tokens)\n  got      \(got)")
            }
            if c.parse_special {
                #expect(tok.decode(got) == c.text, "\(model): \(c.text.debugDescription) does not round-trip")
            }
        }
        print("\(model): \(passed)/\(cases.count) match \(file.generator)")
    }

    /// EOT and EOG as llama.cpp 0.3.36 reports them (llama_vocab_eot / llama_vocab_is_eog).
    @Test("end-of-turn and end-of-generation tokens match llama.cpp")
    func endTokens() throws {
        let expected: [(String, Int32, Set<Int32>)] = [
            ("qwen2.5-coder-0.5b-instruct.gguf", 151645, [128247, 151643, 151645, 151662, 151663, 151664]),
            ("SmolLM2-135M-Instruct.Q4_1.gguf", 0, [0, 2, 4]),
        ]
        for (model, eot, eog) in expected where Self.modelAvailable(model) {
            let tok = try VocabFiles.tokenizer(atPath: "\(Self.modelsDirectory)/\(model)")
            #expect(tok.eot == eot, "\(model)")
            #expect(tok.endOfGenerationTokens == eog, "\(model)")
        }
    }
}
