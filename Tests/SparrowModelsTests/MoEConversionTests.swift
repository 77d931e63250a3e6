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
        #expect(throws: ModelError.invalidConfig("--type Q4_1 is not supported (supported: BF16, F16, F32, Q4_K, Q5_0, Q6_K, Q8_0)")) {
            try GGUFConversion.write(path: Self.temporaryPath("never.gguf"), metadata: source.metadata, tensors: source.tensors, target: .q4_1)
        }
    }

    /// SplitMix64 values as scripts/make_quantize_fixtures.py draws them (exact in f32).
    static func splitMixValues(seed: UInt64, count: Int) -> [Float] {
        var state = seed
        return (0..<count).map { _ in
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            return Float(z >> 40) / Float(1 << 24) * 2 - 1
        }
    }

    @Test("Q4_K, Q6_K, Q5_0 and Q8_0 encoders give llama.cpp's Q4_K_M file byte for byte")
    func kQuantEncodersMatchLlamaCpp() throws {
        let theirs = try GGUFFile(path: try #require(Bundle.module.url(forResource: "Fixtures/quantize/q4_k_m", withExtension: "gguf")).path)
        let names = theirs.tensors.map(\.name).sorted()
        var seen = Set<GGMLType>()
        for (i, name) in names.enumerated() {
            let t = try #require(theirs.tensorsByName[name])
            var values = Self.splitMixValues(seed: 1000 + UInt64(i), count: t.elementCount)
            if name.hasSuffix("norm.weight") { values = values.map { 1 + $0 / 8 } }
            let bytes = values.withUnsafeBytes { Array($0) }
            let planned = try bytes.withUnsafeBytes { raw in
                let source = SourceTensor(name: name, shape: t.shape, type: .f32, parts: [raw], owner: theirs)
                return try GGUFConversion.convert(.init(source: source, type: t.type, note: nil))
            }
            let same = planned.count == t.byteCount && planned.withUnsafeBytes { memcmp($0.baseAddress!, t.data, t.byteCount) == 0 }
            #expect(same, "\(name) as \(t.type) differs from llama.cpp's")
            seen.insert(t.type)
        }
        #expect(seen == [.q4_K, .q6_K, .q5_0, .q8_0, .f32])
    }
}
