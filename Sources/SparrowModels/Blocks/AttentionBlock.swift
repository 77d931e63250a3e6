import SparrowKernels

/// Grouped-query self-attention with RoPE, as llama.cpp's `build_attn` composes it:
/// optional q/k/v biases (qwen2), optional per-head q/k RMSNorm before RoPE (qwen3), optional
/// sigmoid output gate from the q projection (qwen3next, qwen35: `attn_output_gate`).
public struct AttentionBlock: Sendable {
    /// [nHeads·headDim ← d], or with an output gate [nHeads·2·headDim ← d]: per head the query
    /// then its gate (Hugging Face's `q_proj` viewed as [nHeads, 2, headDim]).
    public let wq: WeightMatrix
    public let wk: WeightMatrix  // [nKVHeads·headDim ← d]
    public let wv: WeightMatrix  // [nKVHeads·headDim ← d]
    public let wo: WeightMatrix  // [d ← nHeads·headDim]
    public let bq: FloatBuffer?, bk: FloatBuffer?, bv: FloatBuffer?
    /// [headDim] f32, applied to each head of q / k (qwen3's attn_q_norm / attn_k_norm).
    public let qNorm: FloatBuffer?, kNorm: FloatBuffer?
    public let rope: RoPE
    public let nHeads: Int, nKVHeads: Int, headDim: Int
    public let normEpsilon: Float
    /// The attention output is multiplied by sigmoid(gate) before `wo`, the gate being the
    /// second half of each head's q projection.
    public let outputGate: Bool

    public init(wq: WeightMatrix, wk: WeightMatrix, wv: WeightMatrix, wo: WeightMatrix,
                bq: FloatBuffer? = nil, bk: FloatBuffer? = nil, bv: FloatBuffer? = nil,
                qNorm: FloatBuffer? = nil, kNorm: FloatBuffer? = nil,
                rope: RoPE, nHeads: Int, nKVHeads: Int, headDim: Int, normEpsilon: Float, outputGate: Bool = false) {
        self.wq = wq; self.wk = wk; self.wv = wv; self.wo = wo
        self.bq = bq; self.bk = bk; self.bv = bv
        self.qNorm = qNorm; self.kNorm = kNorm
        self.rope = rope
        self.nHeads = nHeads; self.nKVHeads = nKVHeads; self.headDim = headDim
        self.normEpsilon = normEpsilon
        self.outputGate = outputGate
    }

    /// The q/k/v projections of n rows (one pass over the three matrices): q [n, nHeads,
    /// headDim], k and v [n, nKVHeads, headDim], and with an output gate the gate [n, nHeads,
    /// headDim] split off the second half of each head's q projection.
    func project(_ x: UnsafePointer<Float>, n: Int) -> (q: FloatBuffer, k: FloatBuffer, v: FloatBuffer, gate: FloatBuffer?) {
        let qWidth = nHeads * headDim, kvWidth = nKVHeads * headDim
        let k = FloatBuffer(count: n * kvWidth, zeroed: false)  // [n, nKVHeads, headDim]
        let v = FloatBuffer(count: n * kvWidth, zeroed: false)  // [n, nKVHeads, headDim]
        guard outputGate else {
            let q = FloatBuffer(count: n * qWidth, zeroed: false)  // [n, nHeads, headDim]
            WeightMatrix.matmul([wq, wk, wv], x, nTokens: n, into: [q.pointer, k.pointer, v.pointer])
            return (q, k, v, nil)
        }
        let full = FloatBuffer(count: n * 2 * qWidth, zeroed: false)  // [n, nHeads, 2, headDim]
        WeightMatrix.matmul([wq, wk, wv], x, nTokens: n, into: [full.pointer, k.pointer, v.pointer])
        let q = FloatBuffer(count: n * qWidth, zeroed: false)     // [n, nHeads, headDim]
        let gate = FloatBuffer(count: n * qWidth, zeroed: false)  // [n, nHeads, headDim]
        for r in 0..<(n * nHeads) {
            (q.pointer + r * headDim).update(from: full.pointer + 2 * r * headDim, count: headDim)
            (gate.pointer + r * headDim).update(from: full.pointer + (2 * r + 1) * headDim, count: headDim)
        }
        return (q, k, v, gate)
    }

    /// - x: [n, d] f32 (normalised input); out: [n, d] f32
    /// - positions: [n]; the new keys/values are written to cache rows
    ///   `startPosition ..< startPosition + n` of `layer`.
    func forward(_ x: UnsafePointer<Float>, n: Int, positions: UnsafePointer<Int32>, startPosition: Int,
                 cache: KVCache, layer: Int, out: UnsafeMutablePointer<Float>) {
        let qWidth = nHeads * headDim, kvWidth = nKVHeads * headDim
        let (q, k, v, gate) = project(x, n: n)  // [n, nHeads | nKVHeads, headDim]; gate like q
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
        if let gate { Ops.mulSigmoid(attn.pointer, gate: gate.pointer, count: n * qWidth) }
        wo.matmul(attn.pointer, nTokens: n, into: out)
    }
}
