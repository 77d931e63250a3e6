import Testing
import SparrowFormats
@testable import SparrowModels

/// Rule 10 of ../shared/STYLE.md: every `ModelRegistry` entry is proven to load, from the tiny
/// models the architecture tests build or commit.
@Suite("Model registry")
struct RegistryTests {
    @Test("every registered architecture loads from a test model and runs a token")
    func everyEntryLoads() throws {
        var files: [String: GGUFFile] = [:]
        for arch in ["llama", "qwen2", "qwen3"] { files[arch] = try TinyModelTests.makeModel(arch: arch) }
        for arch in MoETests.architectures { files[arch] = try MoETests.fixture(arch).0 }
        for arch in HybridTests.architectures { files[arch] = try HybridTests.fixture(arch).0 }
        #expect(Set(files.keys) == Set(ModelRegistry.loaders.keys), "a registry entry without a test model, or the reverse")
        for (arch, gguf) in files.sorted(by: { $0.key < $1.key }) {
            let model = try ModelRegistry.load(gguf)
            #expect(model.config.architecture == arch)
            let logits = try model.forward([1, 2], cache: model.makeCache(capacity: 4), allLogits: false)
            #expect(logits.count == model.config.vocabularySize && logits.allSatisfy(\.isFinite), "\(arch)")
        }
    }
}
