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
