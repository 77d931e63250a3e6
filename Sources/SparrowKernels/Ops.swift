#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
#if arch(x86_64)
import SparrowKernelsAVX2
#endif

/// Element-wise and row-wise f32 operations of a transformer forward pass, written to give
/// the same results as ggml's CPU ops (`ggml_compute_forward_*` in ggml-cpu/ops.cpp).
public enum Ops {
    /// RMSNorm of each row, then multiplied by `weight` (ggml's `rms_norm` followed by `mul`).
    /// The sum of squares is accumulated in Double as ggml does (`ggml_float`).
    /// - x: [rows, n] f32 (read), out: [rows, n] f32 (may alias x), weight: [n] f32
    public static func rmsNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>,
                               rows: Int, n: Int, eps: Float) {
        // Rows split across the workers when there are enough of them (a prefill, a batched step).
        Parallel.forRanges(rows, minPerThread: 4, minChunk: max(1, 8192 / max(n, 1))) { r0, r1 in
            for r in r0..<r1 {
                let xr = x + r * n, yr = out + r * n
                var sum = 0.0
                for i in 0..<n { sum += Double(xr[i] * xr[i]) }
                let mean = Float(sum / Double(n))
                let scale = 1 / sqrtf(mean + eps)
                if let weight {
                    for i in 0..<n { yr[i] = (xr[i] * scale) * weight[i] }
                } else {
                    for i in 0..<n { yr[i] = xr[i] * scale }
                }
            }
        }
    }

    /// out[i] += x[i]
    public static func addInPlace(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { out[i] += x[i] }
    }

    /// Adds a bias vector to every row. x: [rows, n], bias: [n]
    public static func addBias(_ x: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, rows: Int, n: Int) {
        for r in 0..<rows {
            let xr = x + r * n
            for i in 0..<n { xr[i] += bias[i] }
        }
    }

    /// SwiGLU: gate[i] = silu(gate[i]) * up[i]  (ggml's `swiglu` / `silu` then `mul`). With
    /// AVX2, e^x is the vector polynomial ggml's AVX2 `swiglu` uses, bit for bit (within a few
    /// ulp of `expf`); elsewhere `expf`.
    /// Element-wise, so the split across workers (above 16k elements, in multiples of 64)
    /// does not change any result.
    public static func siluMul(gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int) {
        Parallel.forRanges(count, granularity: 64, minPerThread: 8192, minChunk: 4096) { i0, i1 in
            #if arch(x86_64)
            if QuantKernels.useAVX2 {
                AVX2Vector.siluMul(gate: gate + i0, up: up + i0, count: i1 - i0)
                return
            }
            #endif
            for i in i0..<i1 {
                let g = gate[i]
                gate[i] = g / (1 + expf(-g)) * up[i]
            }
        }
    }

    /// Output gate: x[i] *= sigmoid(gate[i]) (the gated attention of Qwen3-Next / Qwen3.5:
    /// ggml's `sigmoid` then `mul`).
    public static func mulSigmoid(_ x: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { x[i] *= 1 / (1 + expf(-gate[i])) }
    }

    /// SiLU gate: x[i] *= silu(gate[i]) (the gated RMSNorm of Gated DeltaNet: ggml's `silu` then `mul`).
    public static func mulSiLU(_ x: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>, count: Int) {
        for i in 0..<count {
            let g = gate[i]
            x[i] *= g / (1 + expf(-g))
        }
    }

    /// In-place numerically stable softmax of one row.
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
        guard count > 0 else { return }
        var m = -Float.infinity
        for i in 0..<count { m = max(m, x[i]) }
        var sum = 0.0
        for i in 0..<count {
            let e = expf(x[i] - m)
            x[i] = e
            sum += Double(e)
        }
        let inv = Float(1 / sum)
        for i in 0..<count { x[i] *= inv }
    }
}
