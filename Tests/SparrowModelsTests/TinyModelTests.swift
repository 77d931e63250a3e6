import Foundation
import Testing
import SparrowFormats
import SparrowKernels
@testable import SparrowModels

/// Tier 2: tiny random-weight models built in memory, checked against a naive reference
/// forward pass written out in full below, and for cache consistency.
@Suite("Tiny random models")
struct TinyModelTests {
    struct Dims {
        var vocab = 37, d = 16, layers = 2, heads = 4, kvHeads = 2, ff = 24
        var headDim: Int { d / heads }
    }

    /// A random llama/qwen2/qwen3 GGUF with F32 weights.
    static func makeModel(arch: String, dims: Dims = Dims(), seed: UInt64 = 7) throws -> GGUFFile {
        var rng = SeededRNG(seed)
        var w = GGUFWriter()
        w.set("general.architecture", .string(arch))
        w.set("\(arch).embedding_length", .uint32(UInt32(dims.d)))
        w.set("\(arch).block_count", .uint32(UInt32(dims.layers)))
        w.set("\(arch).attention.head_count", .uint32(UInt32(dims.heads)))
        w.set("\(arch).attention.head_count_kv", .uint32(UInt32(dims.kvHeads)))
        w.set("\(arch).feed_forward_length", .uint32(UInt32(dims.ff)))
        w.set("\(arch).context_length", .uint32(64))
        w.set("\(arch).rope.freq_base", .float32(10000))
        w.set("\(arch).attention.layer_norm_rms_epsilon", .float32(1e-5))
        func rand(_ n: Int, scale: Float = 0.3) -> [Float] { (0..<n).map { _ in rng.uniform() * scale } }
        func norm(_ n: Int) -> [Float] { (0..<n).map { _ in 1 + rng.uniform() * 0.1 } }
        let d = dims.d, hd = dims.headDim, q = dims.heads * hd, kv = dims.kvHeads * hd
        w.add("token_embd.weight", shape: [d, dims.vocab], values: rand(d * dims.vocab, scale: 1))
        for i in 0..<dims.layers {
            let p = "blk.\(i)."
            w.add(p + "attn_norm.weight", shape: [d], values: norm(d))
            w.add(p + "attn_q.weight", shape: [d, q], values: rand(d * q))
            w.add(p + "attn_k.weight", shape: [d, kv], values: rand(d * kv))
            w.add(p + "attn_v.weight", shape: [d, kv], values: rand(d * kv))
            w.add(p + "attn_output.weight", shape: [q, d], values: rand(q * d))
            if arch == "qwen2" {
                w.add(p + "attn_q.bias", shape: [q], values: rand(q))
                w.add(p + "attn_k.bias", shape: [kv], values: rand(kv))
                w.add(p + "attn_v.bias", shape: [kv], values: rand(kv))
            }
            if arch == "qwen3" {
                w.add(p + "attn_q_norm.weight", shape: [hd], values: norm(hd))
                w.add(p + "attn_k_norm.weight", shape: [hd], values: norm(hd))
            }
            w.add(p + "ffn_norm.weight", shape: [d], values: norm(d))
            w.add(p + "ffn_gate.weight", shape: [d, dims.ff], values: rand(d * dims.ff))
            w.add(p + "ffn_up.weight", shape: [d, dims.ff], values: rand(d * dims.ff))
            w.add(p + "ffn_down.weight", shape: [dims.ff, d], values: rand(dims.ff * d))
        }
        w.add("output_norm.weight", shape: [d], values: norm(d))
        if arch != "llama" { w.add("output.weight", shape: [d, dims.vocab], values: rand(d * dims.vocab)) }
        return try GGUFFile(file: MappedFile(copying: w.serialize()))
    }

    /// Straightforward forward pass over all tokens, in Double, with a full softmax.
    static func reference(_ g: GGUFFile, arch: String, tokens: [Int32], dims: Dims = Dims()) -> [[Double]] {
        func t(_ name: String) -> [Double]? {
            guard let x = g.tensorsByName[name] else { return nil }
            return (0..<x.elementCount).map { Double(x.data.load(fromByteOffset: $0 * 4, as: Float.self)) }
        }
        func matvec(_ w: [Double], rows: Int, cols: Int, _ x: [Double]) -> [Double] {
            (0..<rows).map { r in (0..<cols).reduce(0.0) { $0 + w[r * cols + $1] * x[$1] } }
        }
        func rms(_ x: [Double], _ w: [Double]) -> [Double] {
            let s = 1 / (x.reduce(0) { $0 + $1 * $1 } / Double(x.count) + 1e-5).squareRoot()
            return zip(x, w).map { $0 * s * $1 }
        }
        func rope(_ v: inout [Double], pos: Int, neox: Bool) {
            let n = v.count, half = n / 2
            for i in 0..<half {
                let theta = Double(pos) * pow(10000, -2 * Double(i) / Double(n))
                let (a, b) = neox ? (i, i + half) : (2 * i, 2 * i + 1)
                let x0 = v[a], x1 = v[b]
                v[a] = x0 * cos(theta) - x1 * sin(theta)
                v[b] = x0 * sin(theta) + x1 * cos(theta)
            }
        }
        let d = dims.d, hd = dims.headDim, nT = tokens.count, neox = arch != "llama"
        let embd = t("token_embd.weight")!
        var x = tokens.map { Array(embd[Int($0) * d..<(Int($0) + 1) * d]) }
        for l in 0..<dims.layers {
            let p = "blk.\(l)."
            var ks: [[[Double]]] = [], vs: [[[Double]]] = [], qs: [[[Double]]] = []
            for i in 0..<nT {
                let h = rms(x[i], t(p + "attn_norm.weight")!)
                var q = matvec(t(p + "attn_q.weight")!, rows: dims.heads * hd, cols: d, h)
                var k = matvec(t(p + "attn_k.weight")!, rows: dims.kvHeads * hd, cols: d, h)
                var v = matvec(t(p + "attn_v.weight")!, rows: dims.kvHeads * hd, cols: d, h)
                if let b = t(p + "attn_q.bias") { q = zip(q, b).map(+) }
                if let b = t(p + "attn_k.bias") { k = zip(k, b).map(+) }
                if let b = t(p + "attn_v.bias") { v = zip(v, b).map(+) }
                var qh = (0..<dims.heads).map { Array(q[$0 * hd..<($0 + 1) * hd]) }
                var kh = (0..<dims.kvHeads).map { Array(k[$0 * hd..<($0 + 1) * hd]) }
                if let qn = t(p + "attn_q_norm.weight") { qh = qh.map { rms($0, qn) } }
                if let kn = t(p + "attn_k_norm.weight") { kh = kh.map { rms($0, kn) } }
                for j in qh.indices { rope(&qh[j], pos: i, neox: neox) }
                for j in kh.indices { rope(&kh[j], pos: i, neox: neox) }
                qs.append(qh); ks.append(kh)
                vs.append((0..<dims.kvHeads).map { Array(v[$0 * hd..<($0 + 1) * hd]) })
            }
            var newX = x
            for i in 0..<nT {
                var attn: [Double] = []
                for h in 0..<dims.heads {
                    let kvh = h / (dims.heads / dims.kvHeads)
                    let scores = (0...i).map { j in zip(qs[i][h], ks[j][kvh]).reduce(0) { $0 + $1.0 * $1.1 } / Double(hd).squareRoot() }
                    let m = scores.max()!
                    let e = scores.map { exp($0 - m) }
                    let s = e.reduce(0, +)
                    var o = [Double](repeating: 0, count: hd)
                    for j in 0...i { for c in 0..<hd { o[c] += e[j] / s * vs[j][kvh][c] } }
                    attn += o
                }
                let out = matvec(t(p + "attn_output.weight")!, rows: d, cols: dims.heads * hd, attn)
                newX[i] = zip(x[i], out).map(+)
                let h = rms(newX[i], t(p + "ffn_norm.weight")!)
                let gate = matvec(t(p + "ffn_gate.weight")!, rows: dims.ff, cols: d, h)
                let up = matvec(t(p + "ffn_up.weight")!, rows: dims.ff, cols: d, h)
                let act = zip(gate, up).map { $0 / (1 + exp(-$0)) * $1 }
                newX[i] = zip(newX[i], matvec(t(p + "ffn_down.weight")!, rows: d, cols: dims.ff, act)).map(+)
            }
            x = newX
        }
        let out = t("output.weight") ?? embd
        return x.map { matvec(out, rows: dims.vocab, cols: d, rms($0, t("output_norm.weight")!)) }
    }

    @Test("forward pass matches a naive reference", arguments: ["llama", "qwen2", "qwen3"])
    func matchesReference(arch: String) throws {
        let g = try Self.makeModel(arch: arch)
        let model = try ModelRegistry.load(g)
        let tokens: [Int32] = [3, 17, 0, 36, 5, 5, 12]
        let cache = model.makeCache(capacity: 32, type: .f32)
        let logits = try model.forward(tokens, cache: cache, allLogits: true)
        let ref = Self.reference(g, arch: arch, tokens: tokens)
        let vocab = model.config.vocabularySize
        var maxRel = 0.0
        for i in tokens.indices {
            let scale = ref[i].map(abs).max()!
            for v in 0..<vocab { maxRel = max(maxRel, abs(Double(logits[i * vocab + v]) - ref[i][v]) / scale) }
        }
        #expect(maxRel < 1e-4, "max relative error \(maxRel)")
    }

    @Test("an f16 KV cache stays close to the f32 one", arguments: ["llama", "qwen2", "qwen3"])
    func halfCache(arch: String) throws {
        let model = try ModelRegistry.load(try Self.makeModel(arch: arch))
        let tokens: [Int32] = [3, 17, 0, 36, 5, 5, 12]
        let a = try model.forward(tokens, cache: model.makeCache(capacity: 16, type: .f32), allLogits: true)
        let b = try model.forward(tokens, cache: model.makeCache(capacity: 16, type: .f16), allLogits: true)
        let scale = a.map(abs).max() ?? 1
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        #expect(worst / scale < 1e-2, "f16 cache differs by \(worst) (scale \(scale))")
        #expect(worst > 0, "an f16 cache that changes nothing is not storing f16")
    }

    @Test("decoding token by token equals one prefill", arguments: ["llama", "qwen2", "qwen3"])
    func incrementalEqualsBatch(arch: String) throws {
        let model = try ModelRegistry.load(try Self.makeModel(arch: arch))
        let tokens: [Int32] = [1, 2, 30, 4, 22, 9]
        let full = try model.forward(tokens, cache: model.makeCache(capacity: 16), allLogits: false)
        let cache = model.makeCache(capacity: 16)
        _ = try model.forward(Array(tokens.prefix(3)), cache: cache, allLogits: false)
        var last: [Float] = []
        for t in tokens.dropFirst(3) { last = try model.forward([t], cache: cache, allLogits: false) }
        #expect(cache.count == tokens.count)
        for (a, b) in zip(full, last) { #expect(abs(a - b) <= 1e-4 * max(1, abs(a))) }
    }

    @Test("context overflow and bad token ids are typed errors")
    func errors() throws {
        let model = try ModelRegistry.load(try Self.makeModel(arch: "llama"))
        let cache = model.makeCache(capacity: 4)
        #expect(throws: ModelError.contextOverflow(needed: 5, limit: 4)) {
            try model.forward([1, 2, 3, 4, 5], cache: cache, allLogits: false)
        }
        #expect(throws: ModelError.tokenOutOfRange(99, vocabularySize: 37)) {
            try model.forward([99], cache: cache, allLogits: false)
        }
    }

    @Test("fuzz: mutated model files load with typed errors or run without crashing")
    func fuzzLoader() throws {
        let base = try Self.makeModel(arch: "qwen2", dims: Dims(vocab: 11, d: 8, layers: 1, heads: 2, kvHeads: 1, ff: 8))
        let bytes = Array(base.file.bytes)
        var rng = SeededRNG(11)
        var loaded = 0, rejected = 0
        for i in 0..<3000 {
            var b = bytes
            if i % 3 == 0 {
                b = Array(b.prefix(Int(rng.next() % UInt64(b.count))))
            } else {
                // Mutate the header region (metadata and tensor infos) where structure lives.
                let header = min(b.count, base.dataOffset)
                for _ in 0..<(1 + Int(rng.next() % 4)) { b[Int(rng.next() % UInt64(header))] = UInt8(truncatingIfNeeded: rng.next()) }
            }
            do {
                let model = try ModelRegistry.load(GGUFFile(file: MappedFile(copying: b)))
                _ = try model.forward([0, 1], cache: model.makeCache(capacity: 4), allLogits: false)
                loaded += 1
            } catch {
                rejected += 1
            }
        }
        #expect(loaded + rejected == 3000 && rejected > 500)
    }

    @Test("missing tensors and unknown architectures are typed errors")
    func loadErrors() throws {
        var w = GGUFWriter()
        w.set("general.architecture", .string("mamba9"))
        #expect(throws: ModelError.self) { try ModelRegistry.load(GGUFFile(file: MappedFile(copying: w.serialize()))) }
        let g = try Self.makeModel(arch: "qwen3")
        // Rebuild without one tensor.
        var w2 = GGUFWriter()
        for k in g.metadataKeys { w2.set(k, g.metadata[k]!) }
        for t in g.tensors where t.name != "blk.1.attn_k_norm.weight" {
            w2.tensors.append(.init(name: t.name, type: t.type, shape: t.shape,
                                    bytes: Array(UnsafeRawBufferPointer(start: t.data, count: t.byteCount))))
        }
        #expect(throws: ModelError.missingTensor("blk.1.attn_k_norm.weight")) {
            try ModelRegistry.load(GGUFFile(file: MappedFile(copying: w2.serialize())))
        }
    }
}

struct SeededRNG {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    mutating func uniform() -> Float { Float(Double(next() >> 11) * 0x1.0p-53 * 2 - 1) }
}
