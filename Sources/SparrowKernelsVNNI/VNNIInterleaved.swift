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

    /// A group block's quants as unsigned bytes: Q5_0's as stored (q + 16), Q8_0's flipped (q + 128).
    @inline(__always)
    static func quants(_ type: InterleavedType, _ gb: UnsafeRawPointer) -> AVX2Interleaved.Block {
        if type == .q5_0 { return AVX2Interleaved.q5_0Quants(gb) }
        let flip = _mm256_set1_epi8(-128)
        @inline(__always) func v(_ k: Int) -> __m256i { _mm256_xor_si256(AVX2Interleaved.load(gb + 16 + 32 * k), flip) }
        return (v(0), v(1), v(2), v(3), v(4), v(5), v(6), v(7))
    }

    /// Fewest tokens `matmul` runs as 512-bit pairs. Below it the pairs lose: per block they
    /// unpack two groups and join eight vector pairs, and read two weight streams, which the
    /// fewer per-token instructions repay only from about six tokens (Zen 5, 2 threads,
    /// Qwen2.5-Coder-0.5B steps of P sequences, tok/s 256-bit → pairs: P = 2 230 → 175,
    /// 4 365 → 313, 6 395 → 418, 8 433 → 488; prefill pp64 724 → 990).
    public static let pairMinTokens = 6

    /// `AVX2Interleaved.matmul` for Q5_0/Q8_0 with `vpdpbusd`. From `pairMinTokens` tokens up,
    /// two groups side by side in 512-bit vectors (16 rows, group g in lanes 0–7, group g + 1
    /// in lanes 8–15, so each token's 16 results are one store), which halves the instructions
    /// per token where the 256-bit kernels are bound by them (batched decode, prefill); fewer
    /// tokens, and a last odd group, run the 256-bit `q5_0Group`/`q8_0Group`. The same integers
    /// and float steps per lane either way, so the results are bit-identical.
    public static func matmul(_ type: InterleavedType, _ w: UnsafeRawPointer, groups: Int, blocks: Int,
                              act: UnsafeRawPointer, actRowBytes: Int, scales: UnsafePointer<Float>, scaleStride: Int,
                              sums: UnsafePointer<Int32>, sumStride: Int,
                              nTokens: Int, y: UnsafeMutablePointer<Float>, yStride: Int) {
        guard groups > 0, nTokens > 0 else { return }
        let groupBytes = blocks * type.groupBlockBytes
        let pairs = nTokens >= pairMinTokens ? groups / 2 : 0
        if pairs < groups - pairs {
            // The groups the pairs leave (all of them under `pairMinTokens`), 256 bits wide.
            let g = 2 * pairs
            AVX2Interleaved.matmul(type, w + g * groupBytes, groups: groups - g, blocks: blocks, act: act, actRowBytes: actRowBytes,
                                   scales: scales, scaleStride: scaleStride, sums: sums, sumStride: sumStride,
                                   nTokens: nTokens, y: y + 8 * g, yStride: yStride,
                                   kernel: type == .q5_0 ? q5_0Group : q8_0Group)
        }
        guard pairs > 0 else { return }
        let chunk = AVX2Interleaved.tokenChunk(nTokens: nTokens, actRowBytes: actRowBytes)
        withUnsafeTemporaryAllocation(of: __m512.self, capacity: chunk) { accBuffer in
            let acc = accBuffer.baseAddress!
            var t0 = 0
            while t0 < nTokens {
                let n = min(chunk, nTokens - t0)
                for g in stride(from: 0, to: 2 * pairs, by: 2) {
                    for t in 0..<n { acc[t] = _mm512_setzero_ps() }
                    pair(type, w + g * groupBytes, groupBytes, blocks: blocks, act: act + t0 * actRowBytes, actRowBytes: actRowBytes,
                         scales: scales + t0 * scaleStride, scaleStride: scaleStride, sums: sums + t0 * sumStride,
                         sumStride: sumStride, nTokens: n, acc: acc)
                    for t in 0..<n { _mm512_storeu_ps(y + (t0 + t) * yStride + 8 * g, acc[t]) }
                }
                t0 += n
            }
        }
    }

    /// Groups at `wg` and `wg + second` against `nTokens` tokens: acc[t] += their 16 rows' products.
    @inline(__always)
    static func pair(_ type: InterleavedType, _ wg: UnsafeRawPointer, _ second: Int, blocks: Int, act: UnsafeRawPointer,
                     actRowBytes: Int, scales: UnsafePointer<Float>, scaleStride: Int, sums: UnsafePointer<Int32>,
                     sumStride: Int, nTokens: Int, acc: UnsafeMutablePointer<__m512>) {
        let bytes = type.groupBlockBytes, shift: Int32 = type == .q8_0 ? 3 : 0
        for b in 0..<blocks {
            let g0 = wg + b * bytes, g1 = g0 + second
            AVX2Dot.prefetchAhead(g0, bytes: bytes)
            AVX2Dot.prefetchAhead(g1, bytes: bytes)
            let d = sparrow_join512(AVX2Interleaved.scales8(g0), AVX2Interleaved.scales8(g1))
            let l = quants(type, g0), h = quants(type, g1)
            let u = (sparrow_join512i(l.0, h.0), sparrow_join512i(l.1, h.1), sparrow_join512i(l.2, h.2), sparrow_join512i(l.3, h.3),
                     sparrow_join512i(l.4, h.4), sparrow_join512i(l.5, h.5), sparrow_join512i(l.6, h.6), sparrow_join512i(l.7, h.7))
            var a = act + b * 34 + 2
            var s = scales + 2 * b
            var sum = sums + b
            for t in 0..<nTokens {
                @inline(__always) func dot4(_ c: __m512i, _ v: __m512i, _ k: Int) -> __m512i {
                    sparrow_dpbusd512(c, v, _mm512_set1_epi32(a.loadUnaligned(fromByteOffset: 4 * k, as: Int32.self)))
                }
                let c0 = dot4(dot4(dot4(dot4(_mm512_set1_epi32(sum.pointee &<< shift), u.0, 0), u.1, 1), u.2, 2), u.3, 3)
                let c1 = dot4(dot4(dot4(dot4(_mm512_setzero_si512(), u.4, 4), u.5, 5), u.6, 6), u.7, 7)
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(c0, c1)), _mm512_mul_ps(d, _mm512_set1_ps(s.pointee)), acc[t])
                a += actRowBytes
                s += scaleStride
                sum += sumStride
            }
        }
    }

    /// Both kernels: each block's quants as unsigned bytes once, then per token the block's
    /// products from −16·Σa (Q5_0) or −128·Σa (Q8_0).
    @inline(__always)
    static func group(_ type: InterleavedType, _ wg: UnsafeRawPointer, blocks: Int, act: UnsafeRawPointer, actRowBytes: Int,
                      scales: UnsafePointer<Float>, scaleStride: Int, sums: UnsafePointer<Int32>, sumStride: Int,
                      nTokens: Int, acc: UnsafeMutablePointer<__m256>) {
        let bytes = type.groupBlockBytes, shift: Int32 = type == .q8_0 ? 3 : 0
        for b in 0..<blocks {
            let gb = wg + b * bytes
            AVX2Dot.prefetchAhead(gb, bytes: bytes)
            let d = AVX2Interleaved.scales8(gb)
            let u = quants(type, gb)
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
