import SparrowKernels

/// Grouped-query self-attention with RoPE, as llama.cpp's `build_attn` composes it:
/// optional q/k/v biases (qwen2), optional per-head q/k RMSNorm before RoPE (qwen3).
public struct AttentionBlock: Sendable {
    public let wq: WeightMatrix  // [nHeads·headDim ← d]
    public let wk: WeightMatrix  // [nKVHeads·headDim ← d]
    public let wv: WeightMatrix  // [nKVHeads·headDim ← d]
    public let wo: WeightMatrix  // [d ← nHeads·headDim]
    public let bq: FloatBuffer?, bk: FloatBuffer?, bv: FloatBuffer?
    /// [headDim] f32, applied to each head of q / k (qwen3's attn_q_norm / attn_k_norm).
    public let qNorm: FloatBuffer?, kNorm: FloatBuffer?
    public let rope: RoPE
    public let nHeads: Int, nKVHeads: Int, headDim: Int
    public let normEpsilon: Float

    public init(wq: WeightMatrix, wk: WeightMatrix, wv: WeightMatrix, wo: WeightMatrix,
                bq: FloatBuffer? = nil, bk: FloatBuffer? = nil, bv: FloatBuffer? = nil,
                qNorm: FloatBuffer? = nil, kNorm: FloatBuffer? = nil,
                rope: RoPE, nHeads: Int, nKVHeads: Int, headDim: Int, normEpsilon: Float) {
        self.wq = wq; self.wk = wk; self.wv = wv; self.wo = wo
        self.bq = bq; self.bk = bk; self.bv = bv
        self.qNorm = qNorm; self.kNorm = kNorm
        self.rope = rope
        self.nHeads = nHeads; self.nKVHeads = nKVHeads; self.headDim = headDim
        self.normEpsilon = normEpsilon
    }

    /// - x: [n, d] f32 (normalised input); out: [n, d] f32
    /// - positions: [n]; the new keys/values are written to cache rows
    ///   `startPosition ..< startPosition + n` of `layer`.
    func forward(_ x: UnsafePointer<Float>, n: Int, positions: UnsafePointer<Int32>, startPosition: Int,
                 cache: KVCache, layer: Int, out: UnsafeMutablePointer<Float>) {
        let qWidth = nHeads * headDim, kvWidth = nKVHeads * headDim
        let q = FloatBuffer(count: n * qWidth, zeroed: false)  // [n, nHeads, headDim]
        let k = FloatBuffer(count: n * kvWidth, zeroed: false) // [n, nKVHeads, headDim]
        let v = FloatBuffer(count: n * kvWidth, zeroed: false) // [n, nKVHeads, headDim]
        WeightMatrix.matmul([wq, wk, wv], x, nTokens: n, into: [q.pointer, k.pointer, v.pointer])
        if let bq { Ops.addBias(q.pointer, bias: bq.pointer, rows: n, n: qWidth) }
        if let bk { Ops.addBias(k.pointer, bias: bk.pointer, rows: n, n: kvWidth) }
        if let bv { Ops.addBias(v.pointer, bias: bv.pointer, rows: n, n: kvWidth) }
        if let qNorm { Ops.rmsNorm(q.pointer, weight: qNorm.pointer, out: q.pointer, rows: n * nHeads, n: headDim, eps: normEpsilon) }
        if let kNorm { Ops.rmsNorm(k.pointer, weight: kNorm.pointer, out: k.pointer, rows: n * nKVHeads, n: headDim, eps: normEpsilon) }
        rope.apply(q.pointer, nTokens: n, nHeads: nHeads, headDim: headDim, positions: positions)
        rope.apply(k.pointer, nTokens: n, nHeads: nKVHeads, headDim: headDim, positions: positions)
        cache.store(layer: layer, start: startPosition, n: n, k: k.pointer, v: v.pointer)

        let attn = FloatBuffer(count: n * qWidth, zeroed: false)  // [n, nHeads, headDim]
        Attention.causal(q: q.pointer, k: cache.keys[layer], v: cache.values[layer], type: cache.type, out: attn.pointer,
                         nTokens: n, startPosition: startPosition, nHeads: nHeads, nKVHeads: nKVHeads, headDim: headDim,
                         scale: 1 / Float(headDim).squareRoot())
        wo.matmul(attn.pointer, nTokens: n, into: out)
    }
}
