// AVX512-VNNI matrix kernels for the row-interleaved Q5_0 and Q8_0 weights (the layout
// `AVX2Interleaved` documents), 256 bits wide.
//
// `vpdpbusd` multiplies unsigned by signed bytes and adds each lane's four products to an
// int32 accumulator in one instruction, without the 16-bit saturation of `vpmaddubsw`: it
// replaces the AVX2 kernels' `vpmaddubsw` + `vpaddw` tree + `vpmaddwd` + `vpaddd` (about 21
// vector µops per token, 8 rows and 32 values for Q5_0, 34 for Q8_0) with 8 plus the scale.
// Batched decode and prefill are bound by those µops, not by memory, so this is where
// eight sequences gain on one.
//
//   Q5_0: quants are unsigned already (q = value + 16); the accumulator starts at −16·Σa.
//   Q8_0: each block's quants are flipped to unsigned once (q ⊕ 0x80 = q + 128) and the
//         accumulator starts at −128·Σa = 8 · (−16·Σa).
// The integer sums are exact, the same integers as the AVX2 kernels', and the float steps are
// the same, so results are bit-identical to `AVX2Interleaved`'s (VNNITests checks).

#if arch(x86_64)
import _Builtin_intrinsics.intel
import SparrowCSupport
import SparrowKernelsAVX2

public enum VNNIInterleaved {
    /// acc + Σ over the four bytes of each lane of u × the 4 signed bytes at `a` (broadcast).
    @inline(__always)
    static func dot4(_ acc: __m256i, _ u: __m256i, _ a: UnsafeRawPointer) -> __m256i {
        sparrow_dpbusd256(acc, u, _mm256_set1_epi32(a.loadUnaligned(as: Int32.self)))
    }

    /// Σ over one block of the eight vectors' products with the activation block at `a`, plus
    /// `start`: two chains of four `vpdpbusd` (one would wait on each result's latency).
    @inline(__always)
    static func blockDot(_ start: __m256i, _ u: AVX2Interleaved.Block, _ a: UnsafeRawPointer) -> __m256i {
        let c0 = dot4(dot4(dot4(dot4(start, u.0, a), u.1, a + 4), u.2, a + 8), u.3, a + 12)
        let c1 = dot4(dot4(dot4(dot4(_mm256_setzero_si256(), u.4, a + 16), u.5, a + 20), u.6, a + 24), u.7, a + 28)
        return _mm256_add_epi32(c0, c1)
    }

    /// `AVX2Interleaved.q5_0Group` with `vpdpbusd` (an `AVX2Interleaved.GroupKernel`; `sums` required).
    public static func q5_0Group(_ wg: UnsafeRawPointer, blocks: Int, act: UnsafeRawPointer, actRowBytes: Int,
                                 scales: UnsafePointer<Float>, scaleStride: Int, sums: UnsafePointer<Int32>?, sumStride: Int,
                                 nTokens: Int, acc: UnsafeMutablePointer<__m256>) {
        group(.q5_0, wg, blocks: blocks, act: act, actRowBytes: actRowBytes, scales: scales, scaleStride: scaleStride,
              sums: sums!, sumStride: sumStride, nTokens: nTokens, acc: acc)
    }

    /// `AVX2Interleaved.q8_0Group` with `vpdpbusd` (an `AVX2Interleaved.GroupKernel`; `sums` required).
    public static func q8_0Group(_ wg: UnsafeRawPointer, blocks: Int, act: UnsafeRawPointer, actRowBytes: Int,
                                 scales: UnsafePointer<Float>, scaleStride: Int, sums: UnsafePointer<Int32>?, sumStride: Int,
                                 nTokens: Int, acc: UnsafeMutablePointer<__m256>) {
        group(.q8_0, wg, blocks: blocks, act: act, actRowBytes: actRowBytes, scales: scales, scaleStride: scaleStride,
              sums: sums!, sumStride: sumStride, nTokens: nTokens, acc: acc)
    }

    /// Both kernels: each block's quants as unsigned bytes once, then per token the block's
    /// products from −16·Σa (Q5_0) or −128·Σa (Q8_0).
    @inline(__always)
    static func group(_ type: InterleavedType, _ wg: UnsafeRawPointer, blocks: Int, act: UnsafeRawPointer, actRowBytes: Int,
                      scales: UnsafePointer<Float>, scaleStride: Int, sums: UnsafePointer<Int32>, sumStride: Int,
                      nTokens: Int, acc: UnsafeMutablePointer<__m256>) {
        let flip = _mm256_set1_epi8(-128), bytes = type.groupBlockBytes, shift: Int32 = type == .q8_0 ? 3 : 0
        for b in 0..<blocks {
            let gb = wg + b * bytes
            AVX2Dot.prefetchAhead(gb, bytes: bytes)
            let d = AVX2Interleaved.scales8(gb)
            let u: AVX2Interleaved.Block
            if type == .q5_0 {
                u = AVX2Interleaved.q5_0Quants(gb)
            } else {
                @inline(__always) func v(_ k: Int) -> __m256i { _mm256_xor_si256(AVX2Interleaved.load(gb + 16 + 32 * k), flip) }
                u = (v(0), v(1), v(2), v(3), v(4), v(5), v(6), v(7))
            }
            var a = act + b * 34 + 2
            var s = scales + 2 * b
            var sum = sums + b
            for t in 0..<nTokens {
                let i = blockDot(_mm256_set1_epi32(sum.pointee &<< shift), u, a)
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_mul_ps(d, _mm256_set1_ps(s.pointee)), acc[t])
                a += actRowBytes
                s += scaleStride
                sum += sumStride
            }
        }
    }
}
#endif
