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
    /// - positions: [n]; the new keys/values are written to cache rows positions[0]..., which
    ///   must be `startPosition ..< startPosition + n`.
    func forward(_ x: UnsafePointer<Float>, n: Int, positions: UnsafePointer<Int32>, startPosition: Int,
                 keys: FloatBuffer, values: FloatBuffer, out: UnsafeMutablePointer<Float>) {
        let qWidth = nHeads * headDim, kvWidth = nKVHeads * headDim
        let q = FloatBuffer(count: n * qWidth, zeroed: false)  // [n, nHeads, headDim]
        wq.matmul(x, nTokens: n, into: q.pointer)
        // k, v go straight into the cache rows of these positions.
        let k = keys.pointer + startPosition * kvWidth          // [n, nKVHeads, headDim]
        let v = values.pointer + startPosition * kvWidth        // [n, nKVHeads, headDim]
        wk.matmul(x, nTokens: n, into: k)
        wv.matmul(x, nTokens: n, into: v)
        if let bq { Ops.addBias(q.pointer, bias: bq.pointer, rows: n, n: qWidth) }
        if let bk { Ops.addBias(k, bias: bk.pointer, rows: n, n: kvWidth) }
        if let bv { Ops.addBias(v, bias: bv.pointer, rows: n, n: kvWidth) }
        if let qNorm { Ops.rmsNorm(q.pointer, weight: qNorm.pointer, out: q.pointer, rows: n * nHeads, n: headDim, eps: normEpsilon) }
        if let kNorm { Ops.rmsNorm(k, weight: kNorm.pointer, out: k, rows: n * nKVHeads, n: headDim, eps: normEpsilon) }
        rope.apply(q.pointer, nTokens: n, nHeads: nHeads, headDim: headDim, positions: positions)
        rope.apply(k, nTokens: n, nHeads: nKVHeads, headDim: headDim, positions: positions)

        let attn = FloatBuffer(count: n * qWidth, zeroed: false)  // [n, nHeads, headDim]
        Attention.causal(q: q.pointer, k: keys.pointer, v: values.pointer, out: attn.pointer, nTokens: n,
                         startPosition: startPosition, nHeads: nHeads, nKVHeads: nKVHeads, headDim: headDim,
                         scale: 1 / Float(headDim).squareRoot())
        wo.matmul(attn.pointer, nTokens: n, into: out)
    }
}
