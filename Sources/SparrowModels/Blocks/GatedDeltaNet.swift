import SparrowKernels

/// One sequence's rows in a batched linear-attention step, with where its state lives.
struct RecurrentSegment {
    /// First row of the sequence in the batch's [nTotal, ·] buffers.
    let offset: Int
    /// Tokens of this sequence in the step.
    let count: Int
    let state: RecurrentState
    /// Save the state after this many of the step's tokens into `snapshot` (0: no snapshot
    /// inside the step; see `RecurrentState.snapshotOffset`).
    let snapshotAfter: Int
    let snapshot: RecurrentState.Snapshot?
}

/// A Gated DeltaNet token mixer (the `linear_attention` layers of Qwen3-Next and Qwen3.5), as
/// llama.cpp's `build_layer_attn_linear` and transformers' `Qwen3NextGatedDeltaNet` compute it:
///
///     qkv  = silu(causal_conv1d(attn_qkv · x))           // [n, q | k | v], per-sequence conv state
///     q, k = l2norm(q), l2norm(k);  q /= √dk
///     β    = sigmoid(ssm_beta · x);  g = softplus(ssm_alpha · x + ssm_dt) · ssm_a
///     o    = gated_delta_rule(q, k, v, g, β)               // per-sequence state S [nV, dv, dk]
///     y    = ssm_out · (rmsnorm(o) · ssm_norm · silu(attn_gate · x))   // norm per value head
///
/// The norm weight `ssm_norm` is applied as is (Hugging Face's `Qwen3NextRMSNormGated`, not
/// zero-centred).
public struct GatedDeltaNet: Sendable {
    /// How β and α are projected: two matrices (qwen35: `ssm_beta`, `ssm_alpha`, [nV ← d] each)
    /// or one (qwen3next: `ssm_ba` [2·nV ← d], per key head its r = nV/nK β rows then r α rows,
    /// Hugging Face's `in_proj_ba` kept as is by the converter).
    public enum BetaAlpha: Sendable {
        case separate(beta: WeightMatrix, alpha: WeightMatrix)
        case fused(WeightMatrix)
    }

    public let config: DeltaNetConfig
    /// [convChannels ← d] (`attn_qkv`): q (nK·dk), k (nK·dk), v (nV·dv) rows.
    public let wqkv: WeightMatrix
    /// [nV·dv ← d] (`attn_gate`, Hugging Face's z).
    public let wgate: WeightMatrix
    public let betaAlpha: BetaAlpha
    /// [convChannels, kernel] f32 (`ssm_conv1d`), oldest tap first.
    public let convWeight: FloatBuffer
    /// [nV] f32 (`ssm_dt.bias`, Hugging Face's dt_bias).
    public let dtBias: FloatBuffer
    /// [nV] f32 (`ssm_a` = −exp(A_log)).
    public let decay: FloatBuffer
    /// [dv] f32 (`ssm_norm`).
    public let norm: FloatBuffer
    /// [d ← nV·dv] (`ssm_out`).
    public let wout: WeightMatrix
    public let normEpsilon: Float

    public init(config: DeltaNetConfig, wqkv: WeightMatrix, wgate: WeightMatrix, betaAlpha: BetaAlpha,
                convWeight: FloatBuffer, dtBias: FloatBuffer, decay: FloatBuffer, norm: FloatBuffer,
                wout: WeightMatrix, normEpsilon: Float) {
        self.config = config
        self.wqkv = wqkv; self.wgate = wgate; self.betaAlpha = betaAlpha
        self.convWeight = convWeight; self.dtBias = dtBias; self.decay = decay; self.norm = norm
        self.wout = wout
        self.normEpsilon = normEpsilon
    }

    /// Binds layer `i`'s tensors by llama.cpp's names (`blk.i.attn_qkv`, `attn_gate`,
    /// `ssm_beta`/`ssm_alpha` or `ssm_ba`, `ssm_conv1d`, `ssm_dt.bias`, `ssm_a`, `ssm_norm`, `ssm_out`).
    static func load(_ w: WeightLoader, layer i: Int, config c: DeltaNetConfig, embedding d: Int,
                     normEpsilon: Float) throws(ModelError) -> GatedDeltaNet {
        let p = "blk.\(i)."
        let nV = c.valueHeads, value = nV * c.valueDim
        if w.has(p + "ssm_in.weight") {
            throw .invalidConfig("\(p)ssm_in.weight is the fused q/k/v/z projection of older qwen3next conversions; "
                                 + "convert the model again with a current convert_hf_to_gguf.py (it writes attn_qkv and attn_gate)")
        }
        let betaAlpha: BetaAlpha
        if w.has(p + "ssm_ba.weight") {
            betaAlpha = .fused(try w.matrix(p + "ssm_ba.weight", rows: 2 * nV, cols: d))
        } else {
            betaAlpha = .separate(beta: try w.matrix(p + "ssm_beta.weight", rows: nV, cols: d),
                                  alpha: try w.matrix(p + "ssm_alpha.weight", rows: nV, cols: d))
        }
        return GatedDeltaNet(
            config: c,
            wqkv: try w.matrix(p + "attn_qkv.weight", rows: c.convChannels, cols: d),
            wgate: try w.matrix(p + "attn_gate.weight", rows: value, cols: d),
            betaAlpha: betaAlpha,
            convWeight: try w.floats(p + "ssm_conv1d.weight", shape: [c.convKernel, c.convChannels]),
            dtBias: try w.vector(p + "ssm_dt.bias", count: nV),
            decay: try w.vector(p + "ssm_a", count: nV),
            norm: try w.vector(p + "ssm_norm.weight", count: c.valueDim),
            wout: try w.matrix(p + "ssm_out.weight", rows: d, cols: value),
            normEpsilon: normEpsilon)
    }

    /// Runs `total` rows belonging to `segments` (one per sequence, each with its own state of
    /// linear layer `stateLayer`): projections over all rows together, convolution and delta
    /// rule per sequence.
    /// - x: [total, d] f32 (normalised input); out: [total, d] f32
    func forward(_ x: UnsafePointer<Float>, total n: Int, segments: [RecurrentSegment], stateLayer l: Int,
                 out: UnsafeMutablePointer<Float>) {
        let c = config
        let nK = c.keyHeads, nV = c.valueHeads, dk = c.keyDim, dv = c.valueDim
        let channels = c.convChannels, keyWidth = nK * dk, valueWidth = nV * dv
        let mixed = FloatBuffer(count: n * channels, zeroed: false)  // [total, channels] q | k | v before the conv
        let z = FloatBuffer(count: n * valueWidth, zeroed: false)    // [total, nV, dv] output gate
        let beta = FloatBuffer(count: n * nV, zeroed: false)         // [total, nV]
        let g = FloatBuffer(count: n * nV, zeroed: false)            // [total, nV] log decay
        switch betaAlpha {
        case let .separate(wb, wa):
            WeightMatrix.matmul([wqkv, wgate, wb, wa], x, nTokens: n, into: [mixed.pointer, z.pointer, beta.pointer, g.pointer])
        case let .fused(wba):
            let ba = FloatBuffer(count: n * 2 * nV, zeroed: false)  // [total, nK, 2, nV/nK]
            WeightMatrix.matmul([wqkv, wgate, wba], x, nTokens: n, into: [mixed.pointer, z.pointer, ba.pointer])
            let r = nV / nK
            for t in 0..<n {
                for kh in 0..<nK {
                    let src = ba.pointer + t * 2 * nV + kh * 2 * r
                    (beta.pointer + t * nV + kh * r).update(from: src, count: r)
                    (g.pointer + t * nV + kh * r).update(from: src + r, count: r)
                }
            }
        }
        DeltaNet.gates(b: beta.pointer, a: g.pointer, dtBias: dtBias.pointer, decay: decay.pointer, n: n, heads: nV,
                       beta: beta.pointer, g: g.pointer)

        let conv = FloatBuffer(count: n * channels, zeroed: false)  // [total, channels] after conv + silu
        let q = FloatBuffer(count: n * keyWidth, zeroed: false)     // [total, nK, dk]
        let k = FloatBuffer(count: n * keyWidth, zeroed: false)     // [total, nK, dk]
        let v = FloatBuffer(count: n * valueWidth, zeroed: false)   // [total, nV, dv]
        let o = FloatBuffer(count: n * valueWidth, zeroed: false)   // [total, nV, dv] delta-rule output
        for seg in segments {
            let rows = seg.offset ..< seg.offset + seg.count
            DeltaNet.causalConv1dSiLU(mixed.pointer + seg.offset * channels, n: seg.count, channels: channels,
                                      weight: convWeight.pointer, kernel: c.convKernel,
                                      state: seg.state.convState(l), out: conv.pointer + seg.offset * channels,
                                      snapshotAfter: seg.snapshotAfter,
                                      snapshot: seg.snapshot.map { $0.conv.pointer + l * seg.state.layout.convSize })
            for t in rows {
                let row = conv.pointer + t * channels
                (q.pointer + t * keyWidth).update(from: row, count: keyWidth)
                (k.pointer + t * keyWidth).update(from: row + keyWidth, count: keyWidth)
                (v.pointer + t * valueWidth).update(from: row + 2 * keyWidth, count: valueWidth)
            }
        }
        DeltaNet.l2Normalize(q.pointer, rows: n * nK, n: dk, eps: normEpsilon)
        DeltaNet.l2Normalize(k.pointer, rows: n * nK, n: dk, eps: normEpsilon)
        let scale = 1 / Float(dk).squareRoot()
        for i in 0..<(n * keyWidth) { q.pointer[i] *= scale }
        for seg in segments {
            DeltaNet.gatedDeltaRule(q: q.pointer + seg.offset * keyWidth, k: k.pointer + seg.offset * keyWidth,
                                    v: v.pointer + seg.offset * valueWidth, g: g.pointer + seg.offset * nV,
                                    beta: beta.pointer + seg.offset * nV, state: seg.state.ssmState(l),
                                    out: o.pointer + seg.offset * valueWidth, n: seg.count,
                                    keyHeads: nK, valueHeads: nV, keyDim: dk, valueDim: dv, grouping: c.grouping,
                                    snapshotAfter: seg.snapshotAfter,
                                    snapshot: seg.snapshot.map { $0.ssm.pointer + l * seg.state.layout.ssmSize })
        }
        Ops.rmsNorm(o.pointer, weight: norm.pointer, out: o.pointer, rows: n * nV, n: dv, eps: normEpsilon)
        Ops.mulSiLU(o.pointer, gate: z.pointer, count: n * valueWidth)
        wout.matmul(o.pointer, nTokens: n, into: out)
    }
}
