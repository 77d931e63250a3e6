import SparrowFormats
import SparrowKernels

/// One pre-norm decoder layer with a mixture-of-experts feed-forward:
/// x += attn(norm(x)); x += moe(norm(x)).
public struct SparseDecoderLayer: Sendable {
    public let attentionNorm: FloatBuffer  // [d]
    public let attention: AttentionBlock
    public let ffnNorm: FloatBuffer        // [d]
    public let moe: MoEBlock

    public init(attentionNorm: FloatBuffer, attention: AttentionBlock, ffnNorm: FloatBuffer, moe: MoEBlock) {
        self.attentionNorm = attentionNorm
        self.attention = attention
        self.ffnNorm = ffnNorm
        self.moe = moe
    }
}

/// The decoder body of the sparse Qwen models (qwen2moe, qwen3moe): embedding, layers of
/// attention + mixture-of-experts, final norm, output projection (tied to the embedding when
/// the file has no `output.weight`). The layer loop is DenseTransformer's with `MoEBlock` in
/// place of `GatedMLP`.
public final class MoETransformer: LanguageModel, @unchecked Sendable {
    public let config: TransformerConfig
    public let moe: MoEConfig
    let embedding: WeightMatrix  // [vocab ← d] rows are token vectors
    let layers: [SparseDecoderLayer]
    let outputNorm: FloatBuffer  // [d]
    let output: WeightMatrix     // [vocab ← d]

    public init(config: TransformerConfig, moe: MoEConfig, embedding: WeightMatrix, layers: [SparseDecoderLayer],
                outputNorm: FloatBuffer, output: WeightMatrix) {
        self.config = config
        self.moe = moe
        self.embedding = embedding
        self.layers = layers
        self.outputNorm = outputNorm
        self.output = output
    }

    /// Binds every layer's mixture of experts by llama.cpp's tensor names: router
    /// `ffn_gate_inp` [d, nExperts], stacked experts `ffn_{gate,up}_exps` [d, ffExp, nExperts]
    /// and `ffn_down_exps` [ffExp, d, nExperts], and, when `moe.sharedFeedForwardLength > 0`,
    /// the shared expert `ffn_{gate,up,down}_shexp` with its gate `ffn_gate_inp_shexp` [d].
    /// `attention(i)` builds the architecture-specific attention block of layer i.
    /// Experts are paged through `options.experts` when it is set.
    static func load(_ gguf: GGUFFile, config c: TransformerConfig, moe m: MoEConfig, options: LoadOptions,
                     attention: (WeightLoader, Int, RoPE) throws(ModelError) -> AttentionBlock) throws(ModelError) -> MoETransformer {
        let w = WeightLoader(gguf: gguf, offload: options.experts)
        let d = c.embeddingLength
        let rope = RoPE(ordering: c.ropeOrdering, dimensions: c.ropeDimensions, base: c.ropeBase)
        var layers: [SparseDecoderLayer] = []
        for i in 0..<c.blockCount {
            let p = "blk.\(i)."
            layers.append(SparseDecoderLayer(
                attentionNorm: try w.vector(p + "attn_norm.weight", count: d),
                attention: try attention(w, i, rope),
                ffnNorm: try w.vector(p + "ffn_norm.weight", count: d),
                moe: try moeBlock(w, layer: i, embedding: d, moe: m)))
        }
        let embedding = try w.matrix("token_embd.weight", rows: c.vocabularySize, cols: d)
        return MoETransformer(config: c, moe: m, embedding: embedding, layers: layers,
                              outputNorm: try w.vector("output_norm.weight", count: d),
                              output: try w.optionalMatrix("output.weight", rows: c.vocabularySize, cols: d) ?? embedding)
    }

    /// The mixture of experts of layer i, bound by llama.cpp's names (see `load`).
    static func moeBlock(_ w: WeightLoader, layer i: Int, embedding d: Int, moe m: MoEConfig) throws(ModelError) -> MoEBlock {
        let p = "blk.\(i)."
        let ffe = m.expertFeedForwardLength, ffs = m.sharedFeedForwardLength
        let gates = try w.experts(p + "ffn_gate_exps.weight", count: m.expertCount, rows: ffe, cols: d)
        let ups = try w.experts(p + "ffn_up_exps.weight", count: m.expertCount, rows: ffe, cols: d)
        let downs = try w.experts(p + "ffn_down_exps.weight", count: m.expertCount, rows: d, cols: ffe)
        var shared: GatedMLP?, sharedGate: FloatBuffer?
        if ffs > 0 {
            shared = GatedMLP(gate: try w.matrix(p + "ffn_gate_shexp.weight", rows: ffs, cols: d),
                              up: try w.matrix(p + "ffn_up_shexp.weight", rows: ffs, cols: d),
                              down: try w.matrix(p + "ffn_down_shexp.weight", rows: d, cols: ffs))
            // [d] or, as convert_hf_to_gguf.py writes Hugging Face's [1, d] gate, [d, 1].
            sharedGate = try w.vector(p + "ffn_gate_inp_shexp.weight", count: d)
        }
        let router = try w.matrix(p + "ffn_gate_inp.weight", rows: m.expertCount, cols: d)
        return MoEBlock(
            router: router,
            experts: (0..<m.expertCount).map { GatedMLP(gate: gates[$0], up: ups[$0], down: downs[$0]) },
            shared: shared, sharedGate: sharedGate,
            expertUsedCount: m.expertUsedCount, normalizeTopK: m.normalizeTopK, weightsScale: m.weightsScale,
            offload: try w.offload?.register(router: router, gate: gates, up: ups, down: downs))
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
        try positions.withUnsafeBufferPointer { pos throws(ModelError) in
            for (l, layer) in layers.enumerated() {
                Ops.rmsNorm(x.pointer, weight: layer.attentionNorm.pointer, out: h.pointer, rows: n, n: d, eps: config.rmsEpsilon)
                layer.attention.forward(h.pointer, n: n, positions: pos.baseAddress!, startPosition: start,
                                        cache: cache, layer: l, out: y.pointer)
                Ops.addInPlace(x.pointer, y.pointer, count: n * d)
                Ops.rmsNorm(x.pointer, weight: layer.ffnNorm.pointer, out: h.pointer, rows: n, n: d, eps: config.rmsEpsilon)
                try layer.moe.forward(h.pointer, n: n, out: y.pointer)
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
