#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SparrowFormats
#if arch(x86_64)
import SparrowKernelsAVX2
#endif

/// Element type of a KV cache.
public enum KVCacheType: String, Sendable, CaseIterable {
    /// 32-bit floats: exact, twice the memory.
    case f32
    /// IEEE half floats, llama.cpp's default (`type_k = type_v = GGML_TYPE_F16`).
    case f16

    public var byteSize: Int { self == .f32 ? 4 : 2 }
}

/// Causal grouped-query attention over a KV cache.
///
/// Follows llama.cpp's default (non-flash) CPU graph so results track it: scores
/// `K·Q` (Q rounded to f16 when K is f16, as ggml's mul_mat converts src1 to the
/// `vec_dot_type` of F16), softmax with the scale folded in and the sum in Double
/// (`ggml_compute_forward_soft_max_f32`), then `V·P` (P rounded to f16 when V is f16).
/// Each worker holds one row of scores, O(context) memory, never a [tokens × context] matrix.
/// With AVX2 the score dot products run 8 lanes wide in ggml's summation order and the V
/// updates as 8-lane FMAs (`AVX2Vector`).
public enum Attention {
    /// Computes attention for `nTokens` queries at positions `startPosition ..< startPosition + nTokens`
    /// against cache rows `0 ..< startPosition + nTokens` (the new keys/values must already be stored).
    /// - q:   [nTokens, nHeads, headDim] f32
    /// - k,v: [contextRows, nKVHeads, headDim] of `type` (one layer of the cache)
    /// - out: [nTokens, nHeads, headDim] f32
    public static func causal(q: UnsafePointer<Float>, k: UnsafeRawPointer, v: UnsafeRawPointer, type: KVCacheType,
                              out: UnsafeMutablePointer<Float>, nTokens: Int, startPosition: Int,
                              nHeads: Int, nKVHeads: Int, headDim: Int, scale: Float) {
        let group = nHeads / nKVHeads
        let kvStride = nKVHeads * headDim
        let maxLength = startPosition + nTokens
        Parallel.forRanges(nTokens * nHeads) { start, end in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: maxLength)  // [positions]
            let qh = UnsafeMutablePointer<Float>.allocate(capacity: headDim)          // [headDim]
            let vrow = UnsafeMutablePointer<Float>.allocate(capacity: headDim)        // [headDim]
            defer { scores.deallocate(); qh.deallocate(); vrow.deallocate() }
            for job in start..<end {
                let t = job / nHeads, h = job % nHeads
                let kvh = h / group
                let qv = q + (t * nHeads + h) * headDim
                let o = out + (t * nHeads + h) * headDim
                let length = startPosition + t + 1
                switch type {
                case .f32:
                    qh.update(from: qv, count: headDim)
                    let kf = k.assumingMemoryBound(to: Float.self)
                    #if arch(x86_64)
                    if QuantKernels.useAVX2 {
                        for p in 0..<length { scores[p] = AVX2Vector.dotF32(qh, kf + p * kvStride + kvh * headDim, count: headDim) }
                        break
                    }
                    #endif
                    for p in 0..<length {
                        let kr = kf + p * kvStride + kvh * headDim
                        var dot: Float = 0
                        for i in 0..<headDim { dot += qh[i] * kr[i] }
                        scores[p] = dot
                    }
                case .f16:
                    for i in 0..<headDim { qh[i] = fp16ToFloat(floatToFP16(qv[i])) }
                    let kh = k.assumingMemoryBound(to: UInt16.self)
                    #if arch(x86_64)
                    if QuantKernels.useAVX2 {
                        for p in 0..<length { scores[p] = AVX2Vector.dotF16(qh, kh + p * kvStride + kvh * headDim, count: headDim) }
                        break
                    }
                    #endif
                    for p in 0..<length {
                        let kr = kh + p * kvStride + kvh * headDim
                        var dot: Float = 0
                        for i in 0..<headDim { dot += qh[i] * fp16ToFloat(kr[i]) }
                        scores[p] = dot
                    }
                }
                // softmax(scale · scores)
                var m = -Float.infinity
                for p in 0..<length {
                    scores[p] *= scale
                    m = max(m, scores[p])
                }
                var sum = 0.0
                for p in 0..<length {
                    let e = expf(scores[p] - m)
                    scores[p] = e
                    sum += Double(e)
                }
                let inv = Float(1 / sum)
                for p in 0..<length { scores[p] *= inv }
                for i in 0..<headDim { o[i] = 0 }
                switch type {
                case .f32:
                    let vf = v.assumingMemoryBound(to: Float.self)
                    #if arch(x86_64)
                    if QuantKernels.useAVX2 {
                        for p in 0..<length { AVX2Vector.axpyF32(scores[p], vf + p * kvStride + kvh * headDim, o, count: headDim) }
                        break
                    }
                    #endif
                    for p in 0..<length {
                        let w = scores[p]
                        let vr = vf + p * kvStride + kvh * headDim
                        for i in 0..<headDim { o[i] += w * vr[i] }
                    }
                case .f16:
                    let vh = v.assumingMemoryBound(to: UInt16.self)
                    #if arch(x86_64)
                    if QuantKernels.useAVX2 {
                        for p in 0..<length {
                            AVX2Vector.axpyF16(fp16ToFloat(floatToFP16(scores[p])), vh + p * kvStride + kvh * headDim, o, count: headDim)
                        }
                        break
                    }
                    #endif
                    for p in 0..<length {
                        let w = fp16ToFloat(floatToFP16(scores[p]))
                        let vr = vh + p * kvStride + kvh * headDim
                        for i in 0..<headDim { vrow[i] = fp16ToFloat(vr[i]) }
                        for i in 0..<headDim { o[i] += w * vrow[i] }
                    }
                }
            }
        }
    }
}
