#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
#if arch(x86_64)
import SparrowKernelsAVX2
#endif

/// Kernels of Gated DeltaNet linear attention (Yang, Kautz & Hatamizadeh, "Gated Delta
/// Networks: Improving Mamba2 with Delta Rule", 2024) as Qwen3-Next and Qwen3.5 use it:
/// a depthwise causal convolution with a rolling per-sequence state, L2-normalised queries and
/// keys, and the gated delta rule on a per-sequence, per-head state matrix.
///
/// The rule runs token by token (the recurrent form, Hugging Face's
/// `torch_recurrent_gated_delta_rule`), for prefill as for decode. On a CPU this costs the same
/// arithmetic per token as the chunked form (transformers' `torch_chunk_gated_delta_rule`,
/// llama.cpp's `build_delta_net_chunking`), needs no triangular solves, and makes prefill and
/// decode bit-identical, which is what lets a sequence resume from a saved state. For
/// Qwen3.5-35B-A3B it is ~4 MFLOP per token per layer, next to ~200 MFLOP of weights.
public enum DeltaNet {
    /// Which key (and query) head a value head reads when there are more value heads than key heads.
    public enum HeadGrouping: Sendable, Equatable {
        /// Value head h reads key head h / (nV / nK): Hugging Face's `repeat_interleave`, and the
        /// order llama.cpp's converter keeps for `qwen3next` files.
        case grouped
        /// Value head h reads key head h % nK: `qwen35` / `qwen35moe` files, whose value heads
        /// llama.cpp's converter reorders from grouped to tiled so that ggml can broadcast
        /// (`_LinearAttentionVReorderBase` in convert_hf_to_gguf.py).
        case tiled

        /// The key head value head `h` reads.
        @inline(__always)
        public func keyHead(_ h: Int, keyHeads: Int, valueHeads: Int) -> Int {
            switch self {
            case .grouped: return h / (valueHeads / keyHeads)
            case .tiled: return h % keyHeads
            }
        }
    }

    /// Depthwise causal convolution over time, then SiLU (transformers' `causal_conv1d_fn` /
    /// `causal_conv1d_update`; ggml's `ssm_conv` + `silu`):
    ///
    ///     xs        = state ++ x                                  // [kernel-1+n, channels]
    ///     out[t][c] = silu(Σ_j weight[c][j] · xs[t + j][c])       // j = 0 ..< kernel, summed in order
    ///     state     = xs[n ..< n + kernel - 1]
    ///
    /// - x: [n, channels] f32; out: [n, channels] f32 (must not alias x)
    /// - weight: [channels, kernel] f32, oldest tap first (GGUF `ssm_conv1d` [kernel, channels])
    /// - state: [kernel-1, channels] f32, the inputs of the kernel-1 positions before x (zeros
    ///   at the start of a sequence); replaced by the last kernel-1 inputs
    /// - snapshotAfter/snapshot: when 1 ≤ m < n, the state as it stands after the first m tokens
    ///   is also written to `snapshot` [kernel-1, channels]
    public static func causalConv1dSiLU(_ x: UnsafePointer<Float>, n: Int, channels: Int,
                                        weight: UnsafePointer<Float>, kernel: Int,
                                        state: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>,
                                        snapshotAfter m: Int = 0, snapshot: UnsafeMutablePointer<Float>? = nil) {
        let history = kernel - 1
        let xs = UnsafeMutablePointer<Float>.allocate(capacity: (history + n) * channels)  // [kernel-1+n, channels]
        defer { xs.deallocate() }
        xs.update(from: state, count: history * channels)
        (xs + history * channels).update(from: x, count: n * channels)
        Parallel.forRanges(channels, granularity: 16, minPerThread: 256) { c0, c1 in
            for t in 0..<n {
                let o = out + t * channels
                for c in c0..<c1 {
                    let w = weight + c * kernel
                    var sum: Float = 0
                    for j in 0..<kernel { sum += w[j] * xs[(t + j) * channels + c] }
                    o[c] = sum / (1 + expf(-sum))
                }
            }
        }
        if let snapshot, m > 0, m < n {
            snapshot.update(from: xs + m * channels, count: history * channels)
        }
        state.update(from: xs + n * channels, count: history * channels)
    }

    /// Scales each row to unit Euclidean length: x / sqrt(Σx² + eps) (transformers' `l2norm`;
    /// ggml's `rms_norm(x, eps/n) / sqrt(n)` in `build_gdn_l2_norm`). The sum is accumulated in
    /// Double as ggml's norms do.
    /// - x: [rows, n] f32, in place
    public static func l2Normalize(_ x: UnsafeMutablePointer<Float>, rows: Int, n: Int, eps: Float) {
        for r in 0..<rows {
            let v = x + r * n
            var sum = 0.0
            for i in 0..<n { sum += Double(v[i] * v[i]) }
            let scale = 1 / sqrtf(Float(sum) + eps)
            for i in 0..<n { v[i] *= scale }
        }
    }

    /// The per-token, per-head write strength and decay:
    ///
    ///     beta[t][h] = sigmoid(b[t][h])
    ///     g[t][h]    = softplus(a[t][h] + dtBias[h]) · decay[h]      // log of the decay, ≤ 0
    ///
    /// where `decay` is GGUF's `ssm_a` = −exp(A_log) (llama.cpp's converter stores it negated
    /// and exponentiated). softplus(x) = x above 20, else log1p(exp(x)), as torch computes it.
    /// - b, a: [n, heads] f32 (projections of the input); dtBias, decay: [heads]
    /// - beta, g: [n, heads] f32 out (may alias b and a)
    public static func gates(b: UnsafePointer<Float>, a: UnsafePointer<Float>, dtBias: UnsafePointer<Float>,
                             decay: UnsafePointer<Float>, n: Int, heads: Int,
                             beta: UnsafeMutablePointer<Float>, g: UnsafeMutablePointer<Float>) {
        for t in 0..<n {
            for h in 0..<heads {
                let i = t * heads + h
                let x = a[i] + dtBias[h]
                let softplus = x > 20 ? x : log1pf(expf(x))
                beta[i] = 1 / (1 + expf(-b[i]))
                g[i] = softplus * decay[h]
            }
        }
    }

    /// The gated delta rule over n tokens, one token at a time. For every value head h (reading
    /// key head kh = grouping.keyHead(h)), with its state S_h [dv, dk]:
    ///
    ///     S   ← exp(g[t][h]) · S
    ///     S[j] ← S[j] + beta[t][h] · (v[t][h][j] − S[j]·k[t][kh]) · k[t][kh]    // for each row j
    ///     out[t][h][j] = S[j] · q[t][kh]
    ///
    /// Each row of S is read once per token (decay, dot, update and output in one pass).
    /// - q, k: [n, nK, dk] f32, L2-normalised, q also scaled by 1/√dk
    /// - v: [n, nV, dv] f32; g, beta: [n, nV] f32 (from `gates`)
    /// - state: [nV, dv, dk] f32, updated in place (zeros at the start of a sequence)
    /// - out: [n, nV, dv] f32
    /// - snapshotAfter/snapshot: when 1 ≤ m < n, the state after the first m tokens is also
    ///   written to `snapshot` [nV, dv, dk]
    public static func gatedDeltaRule(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                      g: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                                      state: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>,
                                      n: Int, keyHeads nK: Int, valueHeads nV: Int, keyDim dk: Int, valueDim dv: Int,
                                      grouping: HeadGrouping,
                                      snapshotAfter m: Int = 0, snapshot: UnsafeMutablePointer<Float>? = nil) {
        Parallel.forRanges(nV) { h0, h1 in
            for h in h0..<h1 {
                let kh = grouping.keyHead(h, keyHeads: nK, valueHeads: nV)
                let s = state + h * dv * dk  // [dv, dk]
                for t in 0..<n {
                    let qt = q + (t * nK + kh) * dk, kt = k + (t * nK + kh) * dk
                    let vt = v + (t * nV + h) * dv, ot = out + (t * nV + h) * dv
                    let decay = expf(g[t * nV + h]), b = beta[t * nV + h]
                    for j in 0..<dv {
                        let row = s + j * dk
                        for i in 0..<dk { row[i] *= decay }
                        let delta = b * (vt[j] - dot(row, kt, dk))
                        axpy(delta, kt, row, dk)
                        ot[j] = dot(row, qt, dk)
                    }
                    if let snapshot, t + 1 == m, m < n {
                        (snapshot + h * dv * dk).update(from: s, count: dv * dk)
                    }
                }
            }
        }
    }

    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Float {
        #if arch(x86_64)
        if QuantKernels.useAVX2 { return AVX2Vector.dotF32(a, b, count: count) }
        #endif
        var sum: Float = 0
        for i in 0..<count { sum += a[i] * b[i] }
        return sum
    }

    @inline(__always)
    static func axpy(_ w: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ count: Int) {
        #if arch(x86_64)
        if QuantKernels.useAVX2 { AVX2Vector.axpyF32(w, x, y, count: count); return }
        #endif
        for i in 0..<count { y[i] += w * x[i] }
    }
}
