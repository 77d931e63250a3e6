import SparrowFormats
import SparrowKernels

/// One pre-norm decoder layer: x += attn(norm(x)); x += mlp(norm(x)).
public struct DecoderLayer: Sendable {
    public let attentionNorm: FloatBuffer  // [d]
    public let attention: AttentionBlock
    public let mlpNorm: FloatBuffer        // [d]
    public let mlp: GatedMLP

    public init(attentionNorm: FloatBuffer, attention: AttentionBlock, mlpNorm: FloatBuffer, mlp: GatedMLP) {
        self.attentionNorm = attentionNorm
        self.attention = attention
        self.mlpNorm = mlpNorm
        self.mlp = mlp
    }
}

/// The dense decoder body shared by llama, qwen2 and qwen3: embedding, layers, final norm,
/// output projection (tied to the embedding when the file has no `output.weight`).
public final class DenseTransformer: LanguageModel, @unchecked Sendable {
    public let config: TransformerConfig
    let embedding: WeightMatrix  // [vocab ← d] rows are token vectors
    let layers: [DecoderLayer]
    let outputNorm: FloatBuffer  // [d]
    let output: WeightMatrix     // [vocab ← d]

    public init(config: TransformerConfig, embedding: WeightMatrix, layers: [DecoderLayer], outputNorm: FloatBuffer, output: WeightMatrix) {
        self.config = config
        self.embedding = embedding
        self.layers = layers
        self.outputNorm = outputNorm
        self.output = output
    }

    /// Binds the tensors every dense llama-family file has, calling `attention(i)` for the
    /// architecture-specific attention block of layer i.
    static func load(_ gguf: GGUFFile, config c: TransformerConfig,
                     attention: (WeightLoader, Int, RoPE) throws(ModelError) -> AttentionBlock) throws(ModelError) -> DenseTransformer {
        let w = WeightLoader(gguf: gguf)
        let d = c.embeddingLength, ff = c.feedForwardLength
        let rope = RoPE(ordering: c.ropeOrdering, dimensions: c.ropeDimensions, base: c.ropeBase)
        var layers: [DecoderLayer] = []
        for i in 0..<c.blockCount {
            layers.append(DecoderLayer(
                attentionNorm: try w.vector("blk.\(i).attn_norm.weight", count: d),
                attention: try attention(w, i, rope),
                mlpNorm: try w.vector("blk.\(i).ffn_norm.weight", count: d),
                mlp: GatedMLP(gate: try w.matrix("blk.\(i).ffn_gate.weight", rows: ff, cols: d),
                              up: try w.matrix("blk.\(i).ffn_up.weight", rows: ff, cols: d),
                              down: try w.matrix("blk.\(i).ffn_down.weight", rows: d, cols: ff))))
        }
        let embedding = try w.matrix("token_embd.weight", rows: c.vocabularySize, cols: d)
        return DenseTransformer(config: c, embedding: embedding, layers: layers,
                                outputNorm: try w.vector("output_norm.weight", count: d),
                                output: try w.optionalMatrix("output.weight", rows: c.vocabularySize, cols: d) ?? embedding)
    }

    /// The standard attention block of layer i (q/k/v/o, optional biases and q/k norms).
    static func attention(_ w: WeightLoader, layer i: Int, config c: TransformerConfig, rope: RoPE,
                          biases: Bool, qkNorm: Bool) throws(ModelError) -> AttentionBlock {
        let d = c.embeddingLength, qw = c.headCount * c.headDim, kvw = c.headCountKV * c.headDim
        let p = "blk.\(i)."
        return AttentionBlock(
            wq: try w.matrix(p + "attn_q.weight", rows: qw, cols: d),
            wk: try w.matrix(p + "attn_k.weight", rows: kvw, cols: d),
            wv: try w.matrix(p + "attn_v.weight", rows: kvw, cols: d),
            wo: try w.matrix(p + "attn_output.weight", rows: d, cols: qw),
            bq: biases ? try w.optionalVector(p + "attn_q.bias", count: qw) : nil,
            bk: biases ? try w.optionalVector(p + "attn_k.bias", count: kvw) : nil,
            bv: biases ? try w.optionalVector(p + "attn_v.bias", count: kvw) : nil,
            qNorm: qkNorm ? try w.vector(p + "attn_q_norm.weight", count: c.headDim) : nil,
            kNorm: qkNorm ? try w.vector(p + "attn_k_norm.weight", count: c.headDim) : nil,
            rope: rope, nHeads: c.headCount, nKVHeads: c.headCountKV, headDim: c.headDim, normEpsilon: c.rmsEpsilon)
    }

    public func makeCache(capacity: Int, type: KVCacheType) -> KVCache {
        KVCache(layerCount: layers.count, capacity: capacity, rowWidth: config.headCountKV * config.headDim, type: type)
    }

    public func forward(_ tokens: [Int32], cache: KVCache, allLogits: Bool) throws(ModelError) -> [Float] {
        let n = tokens.count, d = config.embeddingLength, vocab = config.vocabularySize
        guard n > 0 else { return [] }
        let start = cache.count
        guard start + n <= cache.capacity else { throw .contextOverflow(needed: start + n, limit: cache.capacity) }

        let x = FloatBuffer(count: n * d, zeroed: false)  // [n, d] residual stream
        for (t, id) in tokens.enumerated() {
            guard id >= 0, Int(id) < vocab else { throw .tokenOutOfRange(id, vocabularySize: vocab) }
            do { try embedding.row(Int(id), into: x.pointer + t * d) } catch { throw .format(error) }
        }
        let positions = (0..<n).map { Int32(start + $0) }  // [n]
        let h = FloatBuffer(count: n * d, zeroed: false)    // [n, d] normalised input of a block
        let y = FloatBuffer(count: n * d, zeroed: false)    // [n, d] block output
        positions.withUnsafeBufferPointer { pos in
            for (l, layer) in layers.enumerated() {
                Ops.rmsNorm(x.pointer, weight: layer.attentionNorm.pointer, out: h.pointer, rows: n, n: d, eps: config.rmsEpsilon)
                layer.attention.forward(h.pointer, n: n, positions: pos.baseAddress!, startPosition: start,
                                        cache: cache, layer: l, out: y.pointer)
                Ops.addInPlace(x.pointer, y.pointer, count: n * d)
                Ops.rmsNorm(x.pointer, weight: layer.mlpNorm.pointer, out: h.pointer, rows: n, n: d, eps: config.rmsEpsilon)
                layer.mlp.forward(h.pointer, n: n, out: y.pointer)
                Ops.addInPlace(x.pointer, y.pointer, count: n * d)
            }
        }
        cache.advance(by: n)

        // Only the rows whose logits are wanted go through the output projection.
        let first = allLogits ? 0 : n - 1
        let rows = n - first
        Ops.rmsNorm(x.pointer + first * d, weight: outputNorm.pointer, out: h.pointer, rows: rows, n: d, eps: config.rmsEpsilon)
        var logits = [Float](repeating: 0, count: rows * vocab)  // [rows, vocab]
        logits.withUnsafeMutableBufferPointer { out in
            output.matmul(h.pointer, nTokens: rows, into: out.baseAddress!)
        }
        return logits
    }
}

// MARK: - Batched forward (continuous batching)

/// Where one sequence's tokens sit in a batched step.
struct BatchSegment {
    /// First row of the sequence in the batch's [nTotal, ·] buffers.
    let offset: Int
    /// Tokens of this sequence in the step.
    let count: Int
    /// Cache position of its first token.
    let start: Int
    let cache: KVCache
}

extension DenseTransformer {
    /// All sequences' tokens go through every weight matrix together (`WeightMatrix.matmul`
    /// reads each weight row once for the whole batch, which is what makes batched decode
    /// cheaper than one pass per sequence on bandwidth-bound hardware); attention runs per
    /// sequence on its own cache. Each token's arithmetic is the same as in `forward`, so the
    /// logits equal the per-sequence ones.
    public func forwardBatch(_ sequences: [BatchSequence]) throws(ModelError) -> [[Float]] {
        if sequences.count <= 1 {
            return try sequences.map { s throws(ModelError) in try forward(s.tokens, cache: s.cache, allLogits: false) }
        }
        let d = config.embeddingLength, vocab = config.vocabularySize
        var segments: [BatchSegment] = []
        var seen = Set<ObjectIdentifier>()
        var total = 0
        for s in sequences {
            guard seen.insert(ObjectIdentifier(s.cache)).inserted else {
                throw .invalidConfig("a batched step lists the same cache twice")
            }
            guard !s.tokens.isEmpty else { throw .invalidConfig("a batched step has a sequence with no tokens") }
            let start = s.cache.count
            guard start + s.tokens.count <= s.cache.capacity else {
                throw .contextOverflow(needed: start + s.tokens.count, limit: s.cache.capacity)
            }
            for id in s.tokens where id < 0 || Int(id) >= vocab { throw .tokenOutOfRange(id, vocabularySize: vocab) }
            segments.append(BatchSegment(offset: total, count: s.tokens.count, start: start, cache: s.cache))
            total += s.tokens.count
        }

        let x = FloatBuffer(count: total * d, zeroed: false)  // [total, d] residual stream of every sequence
        var positions = [Int32](repeating: 0, count: total)   // [total]
        for (s, seg) in zip(sequences, segments) {
            for (t, id) in s.tokens.enumerated() {
                do { try embedding.row(Int(id), into: x.pointer + (seg.offset + t) * d) } catch { throw .format(error) }
                positions[seg.offset + t] = Int32(seg.start + t)
            }
        }
        let h = FloatBuffer(count: total * d, zeroed: false)  // [total, d] normalised input of a block
        let y = FloatBuffer(count: total * d, zeroed: false)  // [total, d] block output
        positions.withUnsafeBufferPointer { pos in
            for (l, layer) in layers.enumerated() {
                Ops.rmsNorm(x.pointer, weight: layer.attentionNorm.pointer, out: h.pointer, rows: total, n: d, eps: config.rmsEpsilon)
                layer.attention.forwardBatch(h.pointer, total: total, positions: pos.baseAddress!, segments: segments,
                                             layer: l, out: y.pointer)
                Ops.addInPlace(x.pointer, y.pointer, count: total * d)
                Ops.rmsNorm(x.pointer, weight: layer.mlpNorm.pointer, out: h.pointer, rows: total, n: d, eps: config.rmsEpsilon)
                layer.mlp.forward(h.pointer, n: total, out: y.pointer)
                Ops.addInPlace(x.pointer, y.pointer, count: total * d)
            }
        }
        for seg in segments { seg.cache.advance(by: seg.count) }

        // The last row of each sequence goes through the output projection, all in one product.
        let last = FloatBuffer(count: segments.count * d, zeroed: false)  // [nSeq, d]
        for (i, seg) in segments.enumerated() {
            (last.pointer + i * d).update(from: x.pointer + (seg.offset + seg.count - 1) * d, count: d)
        }
        Ops.rmsNorm(last.pointer, weight: outputNorm.pointer, out: last.pointer, rows: segments.count, n: d, eps: config.rmsEpsilon)
        let logits = FloatBuffer(count: segments.count * vocab, zeroed: false)  // [nSeq, vocab]
        output.matmul(last.pointer, nTokens: segments.count, into: logits.pointer)
        return (0..<segments.count).map { i in Array(UnsafeBufferPointer(start: logits.pointer + i * vocab, count: vocab)) }
    }
}

extension AttentionBlock {
    /// `forward` for a batch of sequences: projections over all `total` rows at once, RoPE at
    /// each row's own position, then per sequence: store its keys/values in its cache and
    /// attend over that cache.
    /// - x: [total, d] f32; out: [total, d] f32; positions: [total]
    func forwardBatch(_ x: UnsafePointer<Float>, total n: Int, positions: UnsafePointer<Int32>, segments: [BatchSegment],
                      layer: Int, out: UnsafeMutablePointer<Float>) {
        let qWidth = nHeads * headDim, kvWidth = nKVHeads * headDim
        let (q, k, v, gate) = project(x, n: n)  // [total, nHeads | nKVHeads, headDim]; gate like q
        if let bq { Ops.addBias(q.pointer, bias: bq.pointer, rows: n, n: qWidth) }
        if let bk { Ops.addBias(k.pointer, bias: bk.pointer, rows: n, n: kvWidth) }
        if let bv { Ops.addBias(v.pointer, bias: bv.pointer, rows: n, n: kvWidth) }
        if let qNorm { Ops.rmsNorm(q.pointer, weight: qNorm.pointer, out: q.pointer, rows: n * nHeads, n: headDim, eps: normEpsilon) }
        if let kNorm { Ops.rmsNorm(k.pointer, weight: kNorm.pointer, out: k.pointer, rows: n * nKVHeads, n: headDim, eps: normEpsilon) }
        rope.apply(q.pointer, nTokens: n, nHeads: nHeads, headDim: headDim, positions: positions)
        rope.apply(k.pointer, nTokens: n, nHeads: nKVHeads, headDim: headDim, positions: positions)

        let attn = FloatBuffer(count: n * qWidth, zeroed: false)  // [total, nHeads, headDim]
        for seg in segments {
            seg.cache.store(layer: layer, start: seg.start, n: seg.count,
                            k: k.pointer + seg.offset * kvWidth, v: v.pointer + seg.offset * kvWidth)
        }
        // Every sequence's attention in one parallel region.
        let parts = segments.map { seg in
            Attention.Segment(q: q.pointer + seg.offset * qWidth, k: seg.cache.keys[layer], v: seg.cache.values[layer],
                              type: seg.cache.type, out: attn.pointer + seg.offset * qWidth, nTokens: seg.count,
                              startPosition: seg.start)
        }
        Attention.causal(segments: parts, nHeads: nHeads, nKVHeads: nKVHeads, headDim: headDim, scale: 1 / Float(headDim).squareRoot())
        if let gate { Ops.mulSigmoid(attn.pointer, gate: gate.pointer, count: n * qWidth) }
        wo.matmul(attn.pointer, nTokens: n, into: out)
    }
}
