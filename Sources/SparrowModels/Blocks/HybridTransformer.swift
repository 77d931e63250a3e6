import SparrowFormats
import SparrowKernels

/// One pre-norm layer of a hybrid model: x += mixer(norm(x)); x += ffn(norm(x)), where the
/// token mixer is gated full attention or Gated DeltaNet and the feed-forward is dense or sparse.
public struct HybridLayer: Sendable {
    public enum Mixer: Sendable {
        /// Full attention; `cacheLayer` is its index among the attention layers (its KV cache layer).
        case attention(AttentionBlock, cacheLayer: Int)
        /// Linear attention; `stateLayer` is its index among the linear layers (its recurrent state).
        case deltaNet(GatedDeltaNet, stateLayer: Int)
    }

    public enum FeedForward: Sendable {
        case dense(GatedMLP)
        case sparse(MoEBlock)
    }

    public let attentionNorm: FloatBuffer  // [d] (`attn_norm`)
    public let mixer: Mixer
    public let ffnNorm: FloatBuffer        // [d] (`post_attention_norm`)
    public let ffn: FeedForward

    public init(attentionNorm: FloatBuffer, mixer: Mixer, ffnNorm: FloatBuffer, ffn: FeedForward) {
        self.attentionNorm = attentionNorm
        self.mixer = mixer
        self.ffnNorm = ffnNorm
        self.ffn = ffn
    }
}

/// The decoder body of the hybrid Qwen models (qwen3next, qwen35, qwen35moe; llama.cpp's
/// `src/models/qwen3next.cpp`, `qwen35.cpp`, `qwen35moe.cpp`): embedding, layers whose token
/// mixer is either gated full attention (KV cache) or Gated DeltaNet (recurrent state), final
/// norm, output projection (tied to the embedding when the file has no `output.weight`).
///
/// Norm weights are used as stored: llama.cpp's converter has already added 1 to Hugging
/// Face's zero-centred norms (`Qwen3NextRMSNorm` applies 1 + w); `HuggingFaceCheckpoint` does the
/// same, so both sources reach this type alike.
///
/// The per-sequence state is a `KVCache` holding keys/values of the attention layers and a
/// `RecurrentState` for the linear ones. `forward` and `forwardBatch` share one path: all
/// sequences' rows go through each weight matrix together; attention, convolution and the delta
/// rule run per sequence on its own cache.
public final class HybridTransformer: LanguageModel, @unchecked Sendable {
    public let config: TransformerConfig
    public let deltaNet: DeltaNetConfig
    /// The expert configuration, when the feed-forward layers are sparse.
    public let moe: MoEConfig?
    let embedding: WeightMatrix  // [vocab ← d] rows are token vectors
    let layers: [HybridLayer]
    let outputNorm: FloatBuffer  // [d]
    let output: WeightMatrix     // [vocab ← d]
    /// Attention layers (KV cache layers).
    let attentionLayerCount: Int

    public init(config: TransformerConfig, deltaNet: DeltaNetConfig, moe: MoEConfig?, embedding: WeightMatrix,
                layers: [HybridLayer], outputNorm: FloatBuffer, output: WeightMatrix) {
        self.config = config
        self.deltaNet = deltaNet
        self.moe = moe
        self.embedding = embedding
        self.layers = layers
        self.outputNorm = outputNorm
        self.output = output
        attentionLayerCount = layers.filter { if case .attention = $0.mixer { true } else { false } }.count
    }

    /// Binds the tensors of a hybrid file. Attention layers are qwen3's attention (no biases,
    /// per-head q/k RMSNorm, NeoX RoPE on `rope.dimension_count` dims) with the sigmoid output
    /// gate; feed-forward layers are `ffn_{gate,up,down}` when `moe` is nil, else
    /// `MoETransformer`'s expert tensors with a shared expert.
    static func load(_ gguf: GGUFFile, config c: TransformerConfig, deltaNet dn: DeltaNetConfig,
                     moe m: MoEConfig?, options: LoadOptions) throws(ModelError) -> HybridTransformer {
        let w = WeightLoader(gguf: gguf, offload: options.experts)
        let d = c.embeddingLength
        let rope = RoPE(ordering: c.ropeOrdering, dimensions: c.ropeDimensions, base: c.ropeBase)
        var layers: [HybridLayer] = []
        var attentionLayers = 0, linearLayers = 0
        for i in 0..<c.blockCount {
            let p = "blk.\(i)."
            let mixer: HybridLayer.Mixer
            if dn.recurrentLayers[i] {
                mixer = .deltaNet(try GatedDeltaNet.load(w, layer: i, config: dn, embedding: d, normEpsilon: c.rmsEpsilon),
                                  stateLayer: linearLayers)
                linearLayers += 1
            } else {
                let qw = c.headCount * c.headDim, kvw = c.headCountKV * c.headDim
                let block = AttentionBlock(
                    wq: try w.matrix(p + "attn_q.weight", rows: 2 * qw, cols: d),
                    wk: try w.matrix(p + "attn_k.weight", rows: kvw, cols: d),
                    wv: try w.matrix(p + "attn_v.weight", rows: kvw, cols: d),
                    wo: try w.matrix(p + "attn_output.weight", rows: d, cols: qw),
                    qNorm: try w.vector(p + "attn_q_norm.weight", count: c.headDim),
                    kNorm: try w.vector(p + "attn_k_norm.weight", count: c.headDim),
                    rope: rope, nHeads: c.headCount, nKVHeads: c.headCountKV, headDim: c.headDim,
                    normEpsilon: c.rmsEpsilon, outputGate: true)
                mixer = .attention(block, cacheLayer: attentionLayers)
                attentionLayers += 1
            }
            let ffn: HybridLayer.FeedForward
            if let m {
                ffn = .sparse(try MoETransformer.moeBlock(w, layer: i, embedding: d, moe: m))
            } else {
                ffn = .dense(GatedMLP(gate: try w.matrix(p + "ffn_gate.weight", rows: c.feedForwardLength, cols: d),
                                      up: try w.matrix(p + "ffn_up.weight", rows: c.feedForwardLength, cols: d),
                                      down: try w.matrix(p + "ffn_down.weight", rows: d, cols: c.feedForwardLength)))
            }
            layers.append(HybridLayer(attentionNorm: try w.vector(p + "attn_norm.weight", count: d), mixer: mixer,
                                      ffnNorm: try w.vector(p + "post_attention_norm.weight", count: d), ffn: ffn))
        }
        let embedding = try w.matrix("token_embd.weight", rows: c.vocabularySize, cols: d)
        return HybridTransformer(config: c, deltaNet: dn, moe: m, embedding: embedding, layers: layers,
                                 outputNorm: try w.vector("output_norm.weight", count: d),
                                 output: try w.optionalMatrix("output.weight", rows: c.vocabularySize, cols: d) ?? embedding)
    }

    /// `config` without the multi-token-prediction layers a file may append after the trunk
    /// (`{arch}.nextn_predict_layers`, counted in `block_count`): Sparrow runs the trunk only.
    static func trunkConfig(_ config: TransformerConfig, gguf: GGUFFile) throws(ModelError) -> TransformerConfig {
        var c = config
        let nextN = gguf.metadata["\(c.architecture).nextn_predict_layers"]?.intValue ?? 0
        guard nextN >= 0, nextN < c.blockCount else {
            throw .invalidConfig("\(c.architecture).nextn_predict_layers \(nextN) must be below block_count \(c.blockCount)")
        }
        c.blockCount -= nextN
        return c
    }

    /// A cache with keys/values for the attention layers and a recurrent state for the linear ones.
    public func makeCache(capacity: Int, type: KVCacheType) -> KVCache {
        KVCache(layerCount: attentionLayerCount, capacity: capacity, rowWidth: config.headCountKV * config.headDim,
                type: type, recurrent: deltaNet.stateLayout)
    }

    public func forward(_ tokens: [Int32], cache: KVCache, allLogits: Bool) throws(ModelError) -> [Float] {
        guard !tokens.isEmpty else { return [] }
        return try run([BatchSequence(tokens: tokens, cache: cache)], allLogits: allLogits)[0]
    }

    public func forwardBatch(_ sequences: [BatchSequence]) throws(ModelError) -> [[Float]] {
        try run(sequences, allLogits: false)
    }

    /// The forward pass of every sequence in one step. Everything a caller can get wrong is
    /// checked before any cache changes.
    /// - Returns: per sequence, [vocab] f32 for its last token, or [tokens, vocab] when `allLogits`.
    func run(_ sequences: [BatchSequence], allLogits: Bool) throws(ModelError) -> [[Float]] {
        let d = config.embeddingLength, vocab = config.vocabularySize
        var segments: [BatchSegment] = []
        var seen = Set<ObjectIdentifier>()
        var total = 0
        for s in sequences {
            guard seen.insert(ObjectIdentifier(s.cache)).inserted else {
                throw .invalidConfig("a batched step lists the same cache twice")
            }
            guard !s.tokens.isEmpty else { throw .invalidConfig("a batched step has a sequence with no tokens") }
            guard s.cache.recurrent?.layout == deltaNet.stateLayout, s.cache.layerCount == attentionLayerCount,
                  s.cache.rowWidth == config.headCountKV * config.headDim else {
                throw .invalidConfig("the cache was not made by this model's makeCache (hybrid models keep a recurrent state per sequence)")
            }
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
        // Where each sequence saves the snapshot its cache asked for (RecurrentState.snapshotOffset).
        var recurrentSegments: [RecurrentSegment] = []
        var saveAfter: [(RecurrentState, Int)] = []  // snapshots taken from the live state after the step
        for seg in segments {
            guard let state = seg.cache.recurrent else { continue }
            var after = 0, inside: RecurrentState.Snapshot?
            switch state.snapshotOffset(start: seg.start, n: seg.count) {
            case let m? where m < seg.count:
                after = m
                inside = RecurrentState.Snapshot(position: seg.start + m, layout: state.layout)
            case let m?:
                saveAfter.append((state, seg.start + m))
            case nil:
                break
            }
            recurrentSegments.append(RecurrentSegment(offset: seg.offset, count: seg.count, state: state,
                                                      snapshotAfter: after, snapshot: inside))
        }

        let h = FloatBuffer(count: total * d, zeroed: false)  // [total, d] normalised input of a block
        let y = FloatBuffer(count: total * d, zeroed: false)  // [total, d] block output
        try positions.withUnsafeBufferPointer { pos throws(ModelError) in
            for layer in layers {
                Ops.rmsNorm(x.pointer, weight: layer.attentionNorm.pointer, out: h.pointer, rows: total, n: d, eps: config.rmsEpsilon)
                switch layer.mixer {
                case let .attention(block, cacheLayer):
                    block.forwardBatch(h.pointer, total: total, positions: pos.baseAddress!, segments: segments,
                                       layer: cacheLayer, out: y.pointer)
                case let .deltaNet(block, stateLayer):
                    block.forward(h.pointer, total: total, segments: recurrentSegments, stateLayer: stateLayer, out: y.pointer)
                }
                Ops.addInPlace(x.pointer, y.pointer, count: total * d)
                Ops.rmsNorm(x.pointer, weight: layer.ffnNorm.pointer, out: h.pointer, rows: total, n: d, eps: config.rmsEpsilon)
                switch layer.ffn {
                case let .dense(mlp): mlp.forward(h.pointer, n: total, out: y.pointer)
                case let .sparse(moe): try moe.forward(h.pointer, n: total, out: y.pointer)
                }
                Ops.addInPlace(x.pointer, y.pointer, count: total * d)
            }
        }
        for seg in segments { seg.cache.advance(by: seg.count) }
        for rs in recurrentSegments {
            if let s = rs.snapshot { rs.state.commit(s); rs.state.pendingSnapshot = nil }
        }
        for (state, position) in saveAfter {
            state.saveLive(position: position)
            state.pendingSnapshot = nil
        }

        // Only the rows whose logits are wanted go through the output projection, all in one product.
        var wanted: [(segment: Int, first: Int, rows: Int)] = []
        var rowCount = 0
        for (i, seg) in segments.enumerated() {
            let rows = allLogits ? seg.count : 1
            wanted.append((i, rowCount, rows))
            rowCount += rows
        }
        let last = FloatBuffer(count: rowCount * d, zeroed: false)  // [rowCount, d]
        for (i, first, rows) in wanted {
            let seg = segments[i]
            (last.pointer + first * d).update(from: x.pointer + (seg.offset + seg.count - rows) * d, count: rows * d)
        }
        Ops.rmsNorm(last.pointer, weight: outputNorm.pointer, out: last.pointer, rows: rowCount, n: d, eps: config.rmsEpsilon)
        let logits = FloatBuffer(count: rowCount * vocab, zeroed: false)  // [rowCount, vocab]
        output.matmul(last.pointer, nTokens: rowCount, into: logits.pointer)
        return wanted.map { _, first, rows in
            Array(UnsafeBufferPointer(start: logits.pointer + first * vocab, count: rows * vocab))
        }
    }
}
