import Foundation
import Testing
import SparrowFormats
@testable import SparrowModels

/// `sparrow quantize` (GGUFConversion) and the Hugging Face checkpoint mapping, on the tiny MoE
/// fixtures: the Q8_0 output must equal llama.cpp's `llama_model_quantize` byte for byte, and a
/// converted HF checkpoint must equal the GGUF written by scripts/make_moe_fixtures.py and give
/// transformers' logits.
@Suite("GGUF conversion and quantization of the tiny MoE models")
struct MoEConversionTests {
    static let architectures = MoETests.architectures

    static func temporaryPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("sparrow-\(ProcessInfo.processInfo.processIdentifier)-\(name)").path
    }

    /// Every tensor of `ours` has the same type, shape and bytes as in `theirs`, and no tensor is missing.
    static func expectSameTensors(_ ours: GGUFFile, _ theirs: GGUFFile, _ label: String) {
        #expect(Set(ours.tensorsByName.keys) == Set(theirs.tensorsByName.keys), "\(label): tensor names")
        for t in theirs.tensors {
            guard let o = ours.tensorsByName[t.name] else { continue }
            #expect(o.type == t.type && o.shape == t.shape, "\(label) \(t.name): \(o.type) \(o.shape) vs \(t.type) \(t.shape)")
            let same = o.byteCount == t.byteCount && memcmp(o.data, t.data, t.byteCount) == 0
            #expect(same, "\(label) \(t.name): bytes differ")
        }
    }

    static func fixture(_ name: String, _ ext: String) throws -> String {
        try #require(Bundle.module.url(forResource: "Fixtures/moe/\(name)", withExtension: ext)).path
    }

    @Test("Q8_0 quantization of a GGUF equals llama.cpp's llama-quantize byte for byte", arguments: architectures)
    func q8_0MatchesLlamaCpp(arch: String) throws {
        let source = GGUFConversion.source(try GGUFFile(path: try Self.fixture(arch, "gguf")))
        let out = Self.temporaryPath("\(arch)-q8_0.gguf")
        defer { try? FileManager.default.removeItem(atPath: out) }
        var steps = 0
        let plan = try GGUFConversion.write(path: out, metadata: source.metadata, tensors: source.tensors, target: .q8_0) { done, count, bytes, total, _ in
            steps += 1
            #expect(done == steps && done <= count && bytes <= total)
        }
        #expect(steps == plan.count)
        let ours = try GGUFFile(path: out)
        Self.expectSameTensors(ours, try GGUFFile(path: try Self.fixture("\(arch)-q8_0", "gguf")), arch)
        #expect(ours.metadata["general.file_type"]?.intValue == 7)
        #expect(ours.metadata["\(arch).expert_count"] == (try GGUFFile(path: try Self.fixture(arch, "gguf"))).metadata["\(arch).expert_count"])
        // The quantized model still runs: its logits stay near transformers' F32 ones.
        let f = try MoETests.fixture(arch).1
        let model = try ModelRegistry.load(ours)
        let logits = try model.forward(f.tokens, cache: model.makeCache(capacity: 32, type: .f32), allLogits: true)
        let error = MoETests.relativeError(logits, f.transformers_logits)
        print("\(arch): Q8_0 vs transformers F32 relative error \(error)")
        #expect(error < 0.1)  // a sanity bound for 8-bit weights and activations on a random model; exactness is the byte comparison above
    }

    @Test("a Hugging Face checkpoint converts to the GGUF llama.cpp's converter layout gives, with transformers' logits", arguments: architectures)
    func huggingFaceToGGUF(arch: String) throws {
        let hf = try HuggingFaceCheckpoint(directory: try #require(Bundle.module.url(forResource: "Fixtures/moe/\(arch)-hf", withExtension: nil)).path)
        #expect(hf.architecture == arch)
        let out = Self.temporaryPath("\(arch)-hf.gguf")
        defer { try? FileManager.default.removeItem(atPath: out) }
        try GGUFConversion.write(path: out, metadata: hf.metadata, tensors: hf.tensors, target: .f32)
        let ours = try GGUFFile(path: out)
        Self.expectSameTensors(ours, try GGUFFile(path: try Self.fixture(arch, "gguf")), "\(arch) from HF")
        let (_, f) = try MoETests.fixture(arch)
        let model = try ModelRegistry.load(ours)
        let logits = try model.forward(f.tokens, cache: model.makeCache(capacity: 32, type: .f32), allLogits: true)
        let error = MoETests.relativeError(logits, f.transformers_logits)
        print("\(arch): converted from safetensors vs transformers relative error \(error)")
        #expect(error < MoETests.tolerance)

        // Straight from safetensors to Q8_0 gives llama.cpp's Q8_0 file's tensors too.
        let q8 = Self.temporaryPath("\(arch)-hf-q8_0.gguf")
        defer { try? FileManager.default.removeItem(atPath: q8) }
        try GGUFConversion.write(path: q8, metadata: hf.metadata, tensors: hf.tensors, target: .q8_0)
        Self.expectSameTensors(try GGUFFile(path: q8), try GGUFFile(path: try Self.fixture("\(arch)-q8_0", "gguf")), "\(arch) HF → Q8_0")
    }

    @Test("types without an encoder are refused by name")
    func unsupportedTarget() throws {
        let source = GGUFConversion.source(try GGUFFile(path: try Self.fixture("qwen2moe", "gguf")))
        #expect(throws: ModelError.invalidConfig("--type Q4_K is not supported (supported: BF16, F16, F32, Q8_0)")) {
            try GGUFConversion.write(path: Self.temporaryPath("never.gguf"), metadata: source.metadata, tensors: source.tensors, target: .q4_K)
        }
    }
}
