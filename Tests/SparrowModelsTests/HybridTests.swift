import Foundation
import Testing
import SparrowFormats
import SparrowKernels
import SparrowEngine
import SparrowSampling
@testable import SparrowModels

/// Tier 2 for the hybrid Qwen architectures (Gated DeltaNet + gated attention): tiny
/// random-weight qwen3next / qwen35 / qwen35moe models built with Hugging Face transformers by
/// scripts/make_hybrid_fixtures.py (F32, four layers of both kinds, 2 key heads serving 4 value
/// heads, 4 experts with routing margins ≥ 2e-3), saved as a Hugging Face checkpoint and
/// converted to GGUF by llama.cpp's own convert_hf_to_gguf.py. Sparrow's logits are compared
/// with transformers' (F32, CPU, eager, chunked delta rule) and llama.cpp's (F32 KV), from the
/// GGUF and from the Hugging Face directory; decoding, batching and prefix reuse must keep the
/// recurrent state exact.
///
/// Metric (as MoETests): max |ours − ref| over all positions and vocabulary entries, divided by
/// max |ref|.
@Suite("Hybrid Qwen (Gated DeltaNet) against transformers and llama.cpp")
struct HybridTests {
    static let tolerance: Float = 1e-4
    static let architectures = ["qwen3next", "qwen35", "qwen35moe"]

    struct Fixture: Decodable {
        var architecture: String
        var tokens: [Int32]
        var min_routing_margin: Double?
        var transformers_logits: [[Float]]
        var llama_cpp_logits: [[Float]]
        /// llama.cpp on its own Q8_0 quantization of the GGUF (qwen3next, qwen35moe).
        var llama_cpp_q8_0_logits: [[Float]]?
    }

    static func path(_ name: String, _ ext: String?) throws -> String {
        try #require(Bundle.module.url(forResource: "Fixtures/hybrid/\(name)", withExtension: ext)).path
    }

    static func fixture(_ arch: String) throws -> (GGUFFile, Fixture) {
        let f = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: URL(fileURLWithPath: try path(arch, "json"))))
        return (try GGUFFile(path: try path(arch, "gguf")), f)
    }

    static func model(_ arch: String) throws -> (any LanguageModel, Fixture) {
        let (gguf, f) = try fixture(arch)
        return (try ModelRegistry.load(gguf), f)
    }

    static func relativeError(_ ours: [Float], _ ref: [[Float]], firstRow: Int = 0) -> Float {
        MoETests.relativeError(ours, ref, firstRow: firstRow)
    }

    /// max |a − b| / max |b|
    static func relativeDifference(_ a: [Float], _ b: [Float]) -> Float {
        let diff = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        return diff / max(b.map(abs).max() ?? 0, .leastNormalMagnitude)
    }

    @Test("the registry loads each hybrid architecture with its layer pattern and head grouping", arguments: architectures)
    func loads(arch: String) throws {
        let (model, _) = try Self.model(arch)
        let hybrid = try #require(model as? HybridTransformer)
        #expect(hybrid.config.architecture == arch)
        #expect(hybrid.deltaNet.recurrentLayers == (arch == "qwen35" ? [true, true, false, true] : [true, false, true, false]))
        #expect(hybrid.deltaNet.grouping == (arch == "qwen3next" ? .grouped : .tiled))
        #expect(hybrid.deltaNet.keyHeads == 2 && hybrid.deltaNet.valueHeads == 4)
        #expect(hybrid.deltaNet.keyDim == 8 && hybrid.deltaNet.valueDim == 8 && hybrid.deltaNet.convKernel == 4)
        #expect(hybrid.config.ropeDimensions == (arch == "qwen35" ? 8 : 4))
        if arch == "qwen35" {
            #expect(hybrid.moe == nil)
        } else {
            let moe = try #require(hybrid.moe)
            #expect(moe.expertCount == 4 && moe.expertUsedCount == 2 && moe.normalizeTopK)
            #expect(moe.sharedFeedForwardLength == 24)
        }
        let cache = model.makeCache(capacity: 8, type: .f32)
        #expect(cache.layerCount == (arch == "qwen35" ? 1 : 2))
        #expect(cache.recurrent?.layout == hybrid.deltaNet.stateLayout)
    }

    @Test("GGUF: prefill logits of every position match transformers and llama.cpp within 1e-4 relative", arguments: architectures)
    func prefillMatchesReferences(arch: String) throws {
        let (model, f) = try Self.model(arch)
        let logits = try model.forward(f.tokens, cache: model.makeCache(capacity: 32, type: .f32), allLogits: true)
        #expect(logits.count == f.tokens.count * model.config.vocabularySize)
        let hf = Self.relativeError(logits, f.transformers_logits)
        let lc = Self.relativeError(logits, f.llama_cpp_logits)
        print("\(arch) GGUF: prefill vs transformers \(hf), vs llama.cpp \(lc)")
        #expect(hf < Self.tolerance)
        #expect(lc < Self.tolerance)
        if let margin = f.min_routing_margin { #expect(margin >= 2e-3) }
    }

    @Test("Hugging Face directory: converts to llama.cpp's converter output and gives transformers' logits", arguments: architectures)
    func huggingFaceDirectory(arch: String) throws {
        let hf = try HuggingFaceCheckpoint(directory: try Self.path("\(arch)-hf", nil))
        #expect(hf.architecture == arch)
        let out = MoEConversionTests.temporaryPath("\(arch)-hybrid-hf.gguf")
        defer { try? FileManager.default.removeItem(atPath: out) }
        try GGUFConversion.write(path: out, metadata: hf.metadata, tensors: hf.tensors, target: .f32)
        let ours = try GGUFFile(path: out), theirs = try Self.fixture(arch).0
        Self.expectConverterTensors(ours, theirs, "\(arch) from HF")
        for key in ["\(arch).ssm.conv_kernel", "\(arch).ssm.state_size", "\(arch).ssm.group_count", "\(arch).ssm.time_step_rank",
                    "\(arch).ssm.inner_size", "\(arch).rope.dimension_count", "\(arch).attention.key_length",
                    "\(arch).expert_count", "\(arch).expert_shared_feed_forward_length", "\(arch).feed_forward_length"] {
            #expect(ours.metadata[key]?.intValue == theirs.metadata[key]?.intValue, "\(key)")
        }
        #expect(ours.metadata["\(arch).attention.recurrent_layers"] == theirs.metadata["\(arch).attention.recurrent_layers"])
        let f = try Self.fixture(arch).1
        let model = try ModelRegistry.load(ours)
        let logits = try model.forward(f.tokens, cache: model.makeCache(capacity: 32, type: .f32), allLogits: true)
        let error = Self.relativeError(logits, f.transformers_logits)
        print("\(arch) HF directory: prefill vs transformers \(error)")
        #expect(error < Self.tolerance)
    }

    /// Every tensor of `theirs` (llama.cpp's converter output) is in `ours` with the same type,
    /// shape and bytes, except `ssm_a` = −exp(A_log), allowed 1 ulp (glibc's expf and torch's exp
    /// may round the last bit differently). Shapes compare as ggml sees them: the Python
    /// converter writes the shared-expert gate as [d, 1], Sparrow (like llama-quantize) as [d].
    static func expectConverterTensors(_ ours: GGUFFile, _ theirs: GGUFFile, _ label: String) {
        func ggmlShape(_ s: [Int]) -> [Int] {
            var s = s
            while s.count > 1, s.last == 1 { s.removeLast() }
            return s
        }
        #expect(Set(ours.tensorsByName.keys) == Set(theirs.tensorsByName.keys), "\(label): tensor names")
        for t in theirs.tensors {
            guard let o = ours.tensorsByName[t.name] else { continue }
            #expect(o.type == t.type && ggmlShape(o.shape) == ggmlShape(t.shape),
                    "\(label) \(t.name): \(o.type) \(o.shape) vs \(t.type) \(t.shape)")
            guard o.byteCount == t.byteCount else { continue }
            if t.name.hasSuffix("ssm_a"), t.type == .f32 {
                let a = o.data.assumingMemoryBound(to: UInt32.self), b = t.data.assumingMemoryBound(to: UInt32.self)
                let ulps = (0..<t.elementCount).map { abs(Int64(a[$0]) - Int64(b[$0])) }.max() ?? 0
                #expect(ulps <= 1, "\(label) \(t.name): \(ulps) ulps from the converter's")
            } else {
                #expect(memcmp(o.data, t.data, t.byteCount) == 0, "\(label) \(t.name): bytes differ from the converter's")
            }
        }
    }

    /// A safetensors file of F32 tensors (header JSON padded to 8 bytes, then the data).
    static func writeSafetensors(_ tensors: [(name: String, shape: [Int], values: [Float])], to path: String) throws {
        var entries: [String] = [], offset = 0
        for t in tensors {
            let bytes = t.values.count * 4
            entries.append("\"\(t.name)\":{\"dtype\":\"F32\",\"shape\":\(t.shape),\"data_offsets\":[\(offset),\(offset + bytes)]}")
            offset += bytes
        }
        var header = Array(("{" + entries.joined(separator: ",") + "}").utf8)
        while header.count % 8 != 0 { header.append(UInt8(ascii: " ")) }
        var data = Data()
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: header)
        for t in tensors { t.values.withUnsafeBytes { data.append(contentsOf: $0) } }
        try data.write(to: URL(fileURLWithPath: path))
    }

    @Test("a Qwen3_5MoeForConditionalGeneration checkpoint (text_config, language_model prefix, fused experts) gives the same text model")
    func visionLanguageLayout() throws {
        // The layout scripts/make_hybrid_fixtures.py checks llama.cpp's converter against.
        let source = try SafetensorsFile(path: try Self.path("qwen35moe-hf", nil) + "/model.safetensors")
        func values(_ t: SafetensorsTensor) -> [Float] {
            Array(UnsafeBufferPointer(start: t.data.assumingMemoryBound(to: Float.self), count: t.elementCount))
        }
        var tensors: [(name: String, shape: [Int], values: [Float])] = []
        var experts: [Int: [Int: [String: SafetensorsTensor]]] = [:]  // layer → expert → projection
        for t in source.tensors {
            let p = t.name.split(separator: ".").map(String.init)
            if p.count == 8, p[3] == "mlp", p[4] == "experts", let layer = Int(p[2]), let e = Int(p[5]) {
                experts[layer, default: [:]][e, default: [:]][p[6]] = t
            } else {
                tensors.append((t.name.hasPrefix("model.") ? "model.language_model." + t.name.dropFirst(6) : t.name, t.shape, values(t)))
            }
        }
        for (layer, byExpert) in experts {
            let n = byExpert.count
            let gateUp = try (0..<n).flatMap { e throws in
                try values(#require(byExpert[e]?["gate_proj"])) + values(#require(byExpert[e]?["up_proj"]))
            }
            let down = try (0..<n).flatMap { e throws in try values(#require(byExpert[e]?["down_proj"])) }
            let g = try #require(byExpert[0]?["gate_proj"]), dn = try #require(byExpert[0]?["down_proj"])
            tensors.append(("model.language_model.layers.\(layer).mlp.experts.gate_up_proj", [n, 2 * g.shape[0], g.shape[1]], gateUp))
            tensors.append(("model.language_model.layers.\(layer).mlp.experts.down_proj", [n] + dn.shape, down))
        }
        tensors.append(("model.visual.patch_embed.proj.weight", [4, 3], [Float](repeating: 0, count: 12)))
        tensors.append(("mtp.fc.weight", [4, 4], [Float](repeating: 0, count: 16)))

        let dir = MoEConversionTests.temporaryPath("qwen35moe-vl")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.writeSafetensors(tensors, to: dir + "/model.safetensors")
        var text = try #require(JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: try Self.path("qwen35moe-hf", nil) + "/config.json"))) as? [String: Any])
        text["architectures"] = nil
        let config: [String: Any] = ["architectures": ["Qwen3_5MoeForConditionalGeneration"], "model_type": "qwen3_5_moe",
                                     "tie_word_embeddings": false, "text_config": text,
                                     "vision_config": ["depth": 1, "hidden_size": 4]]
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: dir + "/config.json"))

        let hf = try HuggingFaceCheckpoint(directory: dir)
        #expect(hf.architecture == "qwen35moe")
        let out = dir + "/converted.gguf"
        try GGUFConversion.write(path: out, metadata: hf.metadata, tensors: hf.tensors, target: .f32)
        Self.expectConverterTensors(try GGUFFile(path: out), try Self.fixture("qwen35moe").0, "qwen35moe VL layout")
    }

    @Test("Q8_0 quantization equals llama.cpp's llama-quantize byte for byte and still runs", arguments: ["qwen3next", "qwen35moe"])
    func q8_0MatchesLlamaCpp(arch: String) throws {
        let (gguf, f) = try Self.fixture(arch)
        let source = GGUFConversion.source(gguf)
        let out = MoEConversionTests.temporaryPath("\(arch)-hybrid-q8_0.gguf")
        defer { try? FileManager.default.removeItem(atPath: out) }
        try GGUFConversion.write(path: out, metadata: source.metadata, tensors: source.tensors, target: .q8_0)
        let ours = try GGUFFile(path: out)
        MoEConversionTests.expectSameTensors(ours, try GGUFFile(path: try Self.path("\(arch)-q8_0", "gguf")), arch)
        #expect(ours.tensorsByName["blk.0.ssm_conv1d.weight"]?.type == .f32)
        // 8-bit weights and activations move these tiny random models' logits by tens of percent
        // from F32 (llama.cpp's own Q8_0 logits too), so the quantized path is checked against
        // llama.cpp running the same file.
        let model = try ModelRegistry.load(ours)
        let logits = try model.forward(f.tokens, cache: model.makeCache(capacity: 32, type: .f32), allLogits: true)
        let error = Self.relativeError(logits, try #require(f.llama_cpp_q8_0_logits))
        print("\(arch): Q8_0 vs llama.cpp on its Q8_0 file: relative error \(error); vs transformers F32 \(Self.relativeError(logits, f.transformers_logits))")
        #expect(error < 1e-3)
    }

    @Test("decoding token by token after a prefill gives the full prefill's logits", arguments: architectures, [KVCacheType.f32, .f16])
    func decodeMatchesPrefill(arch: String, kv: KVCacheType) throws {
        let (model, f) = try Self.model(arch)
        let full = try model.forward(f.tokens, cache: model.makeCache(capacity: 32, type: kv), allLogits: true)
        let vocab = model.config.vocabularySize
        let cache = model.makeCache(capacity: 32, type: kv)
        let prefix = 7
        var stepwise = try model.forward(Array(f.tokens[..<prefix]), cache: cache, allLogits: true)
        for t in f.tokens[prefix...] { stepwise += try model.forward([t], cache: cache, allLogits: false) }
        #expect(cache.count == f.tokens.count)
        let selfError = Self.relativeDifference(stepwise, full)
        let hfError = Self.relativeError(stepwise, f.transformers_logits)
        print("\(arch) \(kv): prefill+decode vs one prefill \(selfError), vs transformers \(hfError)")
        #expect(selfError < 1e-5)
        #expect(hfError < (kv == .f32 ? Self.tolerance : 2e-3))
        #expect(stepwise.count == f.tokens.count * vocab)
    }

    @Test("a batched step equals each sequence run alone", arguments: architectures)
    func batchMatchesSequential(arch: String) throws {
        let (model, f) = try Self.model(arch)
        let t = f.tokens
        // A fresh prefill, a decode step after a cached prefix, a prefill chunk on a cached prefix.
        let histories: [[Int32]] = [[], Array(t[..<9]), Array(t[3..<6])]
        let steps: [[Int32]] = [Array(t[..<6]), [t[9]], Array(t[10..<15])]
        func prepared() throws -> [KVCache] {
            try histories.map { h throws in
                let c = model.makeCache(capacity: 32, type: .f32)
                if !h.isEmpty { _ = try model.forward(h, cache: c, allLogits: false) }
                return c
            }
        }
        let alone = try prepared()
        var expected: [[Float]] = []
        for (c, s) in zip(alone, steps) { expected.append(try model.forward(s, cache: c, allLogits: false)) }
        let batched = try prepared()
        let got = try model.forwardBatch(zip(steps, batched).map { BatchSequence(tokens: $0, cache: $1) })
        for (g, e) in zip(got, expected) { #expect(Self.relativeDifference(g, e) < 1e-5) }
        #expect(batched.map(\.count) == alone.map(\.count))
        // Their states advanced alike: one more batched decode step agrees with decoding alone.
        let next = try model.forwardBatch(batched.map { BatchSequence(tokens: [t[16]], cache: $0) })
        for (c, g) in zip(alone, next) {
            #expect(Self.relativeDifference(g, try model.forward([t[16]], cache: c, allLogits: false)) < 1e-5)
        }
        // The second sequence's batched decode is still transformers' position 9.
        #expect(Self.relativeError(got[1], f.transformers_logits, firstRow: 9) < Self.tolerance)
    }

    @Test("going back to a prefix restores a saved state or recomputes, never keeps a wrong state", arguments: architectures)
    func prefixReuse(arch: String) throws {
        let (model, f) = try Self.model(arch)
        let t = f.tokens, n = t.count
        let a = model.makeCache(capacity: 32, type: .f32)
        a.requestSnapshot(at: 8)
        _ = try model.forward(Array(t[..<12]), cache: a, allLogits: false)  // saves the state after 8 tokens mid-pass
        for x in t[12..<15] { _ = try model.forward([x], cache: a, allLogits: false) }
        #expect(a.count == 15)
        #expect(a.restorablePrefix(15) == 15 && a.restorablePrefix(20) == 15)
        #expect(a.restorablePrefix(14) == 8 && a.restorablePrefix(8) == 8)
        #expect(a.restorablePrefix(7) == 0)

        // A second cache copies the prefix at the snapshot; an unsaved position is refused.
        let b = model.makeCache(capacity: 32, type: .f32)
        #expect(!b.copyPrefix(from: a, count: 10))
        #expect(b.count == 0)
        #expect(b.copyPrefix(from: a, count: 8))
        #expect(b.count == 8)
        let fromCopy = try model.forward(Array(t[8...]), cache: b, allLogits: true)
        #expect(Self.relativeError(fromCopy, f.transformers_logits, firstRow: 8) < Self.tolerance)

        // Truncating to 11 goes back to 8; the continuation is transformers' again.
        #expect(a.truncate(to: 11) == 8)
        #expect(a.count == 8)
        let resumed = try model.forward(Array(t[8...]), cache: a, allLogits: true)
        #expect(Self.relativeError(resumed, f.transformers_logits, firstRow: 8) < Self.tolerance)
        #expect(Self.relativeDifference(resumed, fromCopy) < 1e-6)

        // Before any snapshot: back to the empty state, and a full recompute.
        #expect(a.truncate(to: 5) == 0)
        let again = try model.forward(t, cache: a, allLogits: true)
        #expect(Self.relativeError(again, f.transformers_logits) < Self.tolerance)
        #expect(a.count == n)

        // A snapshot at the start or the end of a pass is taken from the live state.
        let c = model.makeCache(capacity: 32, type: .f32)
        c.requestSnapshot(at: 6)
        _ = try model.forward(Array(t[..<6]), cache: c, allLogits: false)
        _ = try model.forward(Array(t[6..<10]), cache: c, allLogits: false)
        #expect(c.truncate(to: 9) == 6)
        let tail = try model.forward(Array(t[6...]), cache: c, allLogits: true)
        #expect(Self.relativeError(tail, f.transformers_logits, firstRow: 6) < Self.tolerance)
        // A failed step (a token out of range) changes nothing.
        #expect(throws: ModelError.self) { _ = try model.forward([Int32(model.config.vocabularySize)], cache: c, allLogits: false) }
        #expect(c.count == n)
    }

    static func engine(_ arch: String) throws -> Engine {
        try Engine(path: try path(arch, "gguf"), contextLength: 64, kvCacheType: .f32)
    }

    static func greedy(_ tokens: Int) -> GenerationParameters {
        var p = GenerationParameters()
        p.maxTokens = tokens
        p.sampling = .greedy
        p.ignoreEndOfGeneration = true
        return p
    }

    @Test("Session: a follow-up turn and a repeated prompt reuse saved states and generate what a fresh session does")
    func sessionReuse() throws {
        let e = try Self.engine("qwen35moe")
        let (_, f) = try Self.fixture("qwen35moe")
        let prompt = Array(f.tokens[..<12])
        let session = e.makeSession()
        let first = try session.generate(prompt: prompt, parameters: Self.greedy(4))
        #expect(first.cachedPromptTokens == 0)

        // The next turn extends everything computed so far: all of it is reused.
        let turn = prompt + first.tokens + [5, 9, 2]
        let second = try session.generate(prompt: turn, parameters: Self.greedy(4))
        #expect(second.cachedPromptTokens == prompt.count + first.tokens.count - 1)
        #expect(second.tokens == (try e.makeSession().generate(prompt: turn, parameters: Self.greedy(4))).tokens)

        // The first prompt again: the state saved before its last token is restored.
        let repeated = try session.generate(prompt: prompt, parameters: Self.greedy(4))
        #expect(repeated.cachedPromptTokens == prompt.count - 1)
        #expect(repeated.tokens == first.tokens)

        // A prompt diverging before any saved state is recomputed from the start.
        let other = Array(prompt[..<5]) + [1, 2, 3, 4, 5, 6]
        let diverged = try session.generate(prompt: other, parameters: Self.greedy(4))
        #expect(diverged.cachedPromptTokens == 0)
        #expect(diverged.tokens == (try e.makeSession().generate(prompt: other, parameters: Self.greedy(4))).tokens)
    }

    static func collect(_ h: GenerationHandle) async -> (tokens: [Int32], summary: GenerationSummary?) {
        var tokens: [Int32] = [], summary: GenerationSummary?
        for await e in h.events {
            switch e {
            case let .token(t): tokens.append(t.id)
            case let .finished(s): summary = s
            default: break
            }
        }
        return (tokens, summary)
    }

    @Test("Scheduler: batched jobs and prefix reuse across jobs equal fresh sessions")
    func schedulerReuse() async throws {
        let e = try Self.engine("qwen3next")
        let (_, f) = try Self.fixture("qwen3next")
        let a = Array(f.tokens[..<14]), b = Array(f.tokens[..<10]) + [1, 2, 3, 4]
        let p = Self.greedy(5)
        let expected = try [a, b].map { try e.makeSession().generate(prompt: $0, parameters: p).tokens }

        var config = SchedulerConfiguration()
        config.maxSequences = 2
        config.prefillChunk = 4  // prompts take several steps, batched with each other
        config.minPrefixCopy = 1
        let s = try Scheduler(engine: e, configuration: config)
        let together = try [a, b].map { try s.submit(GenerationJob(prompt: $0, parameters: p)) }
        var results: [(tokens: [Int32], summary: GenerationSummary?)] = []
        for h in together { results.append(await Self.collect(h)) }
        #expect(results.map(\.tokens) == expected)

        // The same prompt again resumes from the state saved before its last token ...
        let repeated = await Self.collect(try s.submit(GenerationJob(prompt: a, parameters: p)))
        #expect(repeated.summary?.cachedPromptTokens == a.count - 1)
        #expect(repeated.tokens == expected[0])
        // ... while a prompt sharing tokens no saved state fully covers resumes from an earlier
        // saved state or from nothing: b's slot holds a state at 4 only when b was admitted
        // after a's first 4-token chunk (then it copied a's state there, keeping it as a
        // snapshot), which depends on how the scheduler thread met the two submissions.
        let c = Array(f.tokens[..<6]) + [7, 7, 7]
        let other = await Self.collect(try s.submit(GenerationJob(prompt: c, parameters: p)))
        #expect([0, 4].contains(other.summary?.cachedPromptTokens ?? -1))
        #expect(other.tokens == (try e.makeSession().generate(prompt: c, parameters: p)).tokens)
        s.shutdown()
    }
}
