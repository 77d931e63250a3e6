// One Q4_K or Q6_K row × one Q8_K token (decode, and rows left over from `AVX2KGroups`).
// ggml's AVX2 routines keep eight f32 partial sums per row and add them at the end; these sum
// each superblock's integer products exactly first and accumulate one f32 per superblock, the
// arithmetic `AVX2KGroups` uses for eight rows at once (see there), so a token's result does
// not depend on how many tokens share the call: decode, batched decode and prefill agree bit
// for bit, and a prompt prefilled in one chunk or several, or reused from a cached prefix,
// gives the same logits.

#if arch(x86_64)
import _Builtin_intrinsics.intel

extension AVX2Dot {
    /// Σ of the 32-bit lanes of `a` in lane 0 and of `b` in lane 1, converted to f32 (the sums
    /// are exact: the callers' fit in 32 bits).
    @inline(__always)
    static func hsumsToFloat(_ a: __m256i, _ b: __m128i) -> __m128 {
        let h = _mm_hadd_epi32(_mm_add_epi32(lo128(a), hi128(a)), b)  // a0+a1+a4+a5, a2+a3+a6+a7, b0+b1, b2+b3
        return _mm_cvtepi32_ps(_mm_hadd_epi32(h, h))
    }

    /// Sub-blocks 2j and 2j+1 of a Q4_K superblock (64 values: the low and high nibbles of 32
    /// bytes) with their scales broadcast out of `scales` (the eight scales as i16, twice).
    /// Called with a literal j, the shuffle masks are constants.
    @inline(__always)
    static func q4_KPair(_ xb: UnsafeRawPointer, _ scales: __m256i, _ j: Int) -> (lo: __m256i, hi: __m256i, scaleLo: __m256i, scaleHi: __m256i) {
        let m4 = _mm256_set1_epi8(0x0F)
        let k = Int16(4 * j)
        let q4bits = load256(xb + 16 + 32 * j)
        return (_mm256_and_si256(q4bits, m4), _mm256_and_si256(_mm256_srli_epi16(q4bits, 4), m4),
                _mm256_shuffle_epi8(scales, _mm256_set1_epi16(k | (k + 1) << 8)),
                _mm256_shuffle_epi8(scales, _mm256_set1_epi16((k + 2) | (k + 3) << 8)))
    }

    /// Σ scale·q4·q8 over a `q4_KPair` and the matching 64 Q8_K quants of one token, as 8 i32.
    @inline(__always)
    static func q4_KPairDot(_ p: (lo: __m256i, hi: __m256i, scaleLo: __m256i, scaleHi: __m256i), _ yb: UnsafeRawPointer, _ j: Int) -> __m256i {
        let q8 = yb + 4 + 64 * j
        let p16l = _mm256_madd_epi16(p.scaleLo, _mm256_maddubs_epi16(p.lo, load256(q8)))
        let p16h = _mm256_madd_epi16(p.scaleHi, _mm256_maddubs_epi16(p.hi, load256(q8 + 32)))
        return _mm256_add_epi32(p16l, p16h)
    }

    /// Q4_K (144 bytes: f16 d, f16 dmin, 12 scale bytes, 128 nibble bytes) × Q8_K.
    /// Per superblock: acc += fma(Σ_s sc_s·Σ q·a, d·d_a, (Σ_s m_s·Σ a)·−(dmin·d_a)), both
    /// sums exact.
    public static func q4_KFolded(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
        var acc: Float = 0
        for i in 0..<blocks {
            let xb = x + i * 144, yb = y + i * 292
            prefetchAhead(xb, bytes: 144)
            let ms = kQuantScalesAndMins(xb)
            let sc = lo128(ms)
            let scales = join(sc, sc)
            var sumi = q4_KPairDot(q4_KPair(xb, scales, 0), yb, 0)
            sumi = _mm256_add_epi32(sumi, q4_KPairDot(q4_KPair(xb, scales, 1), yb, 1))
            sumi = _mm256_add_epi32(sumi, q4_KPairDot(q4_KPair(xb, scales, 2), yb, 2))
            sumi = _mm256_add_epi32(sumi, q4_KPairDot(q4_KPair(xb, scales, 3), yb, 3))
            // Σ a per 32 values (bsums are per 16) times the mins.
            let bs = load256(yb + 260)
            let mins = _mm_madd_epi16(hi128(ms), _mm_hadd_epi16(lo128(bs), hi128(bs)))
            let sums = hsumsToFloat(sumi, mins)
            // (d, dmin) · d_a in one conversion and multiply.
            let dd = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(xb.loadUnaligned(as: Int32.self))),
                                _mm_set1_ps(yb.loadUnaligned(as: Float.self)))
            acc += (sums[1] * -dd[1]).addingProduct(sums[0], dd[0])
        }
        return acc
    }

    /// Q6_K (210 bytes: 128 ql, 64 qh, 16 × i8 scales, f16 d) × Q8_K.
    /// Per superblock: acc = fma(Σ_s sc_s·Σ (q − 32)·a, d·d_a, acc), the sum exact.
    public static func q6_K(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
        let m3 = _mm256_set1_epi8(3)
        let m15 = _mm256_set1_epi8(15)
        let m12 = _mm256_set1_epi8(12)
        let m48 = _mm256_set1_epi8(48)
        let m192 = _mm256_set1_epi8(-64)
        var acc: Float = 0
        for i in 0..<blocks {
            let xb = x + i * 210, yb = y + i * 292
            prefetchAhead(xb, bytes: 210)
            var q4 = xb
            var qh = xb + 128
            var q8 = yb + 4

            let q8sums = load256(yb + 260)
            let scales16 = _mm256_cvtepi8_epi16(load128(xb + 192))
            let q8sclsub = _mm256_slli_epi32(_mm256_madd_epi16(q8sums, scales16), 5)

            var sumi = _mm256_setzero_si256()
            for j in 0..<2 {
                let q4bits1 = load256(q4); q4 += 32
                let q4bits2 = load256(q4); q4 += 32
                let q4bitsH = load256(qh); qh += 32

                let q4h0 = _mm256_slli_epi16(_mm256_and_si256(q4bitsH, m3), 4)
                let q4h1 = _mm256_slli_epi16(_mm256_and_si256(q4bitsH, m12), 2)
                let q4h2 = _mm256_and_si256(q4bitsH, m48)
                let q4h3 = _mm256_srli_epi16(_mm256_and_si256(q4bitsH, m192), 2)

                let q40 = _mm256_or_si256(_mm256_and_si256(q4bits1, m15), q4h0)
                let q41 = _mm256_or_si256(_mm256_and_si256(q4bits2, m15), q4h1)
                let q42 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits1, 4), m15), q4h2)
                let q43 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits2, 4), m15), q4h3)

                let q80 = load256(q8); q8 += 32
                let q81 = load256(q8); q8 += 32
                let q82 = load256(q8); q8 += 32
                let q83 = load256(q8); q8 += 32

                var p0 = _mm256_maddubs_epi16(q40, q80)
                var p1 = _mm256_maddubs_epi16(q41, q81)
                var p2 = _mm256_maddubs_epi16(q42, q82)
                var p3 = _mm256_maddubs_epi16(q43, q83)

                // Scales 8j..<8j+8 in both halves; pair k takes scale 8j+k in lanes 0..<8 and
                // 8j+k+1 in lanes 8..<16.
                let half = j == 0 ? lo128(scales16) : hi128(scales16)
                let sc = join(half, half)
                p0 = _mm256_madd_epi16(_mm256_shuffle_epi8(sc, scalePairMask(0)), p0)
                p1 = _mm256_madd_epi16(_mm256_shuffle_epi8(sc, scalePairMask(2)), p1)
                p2 = _mm256_madd_epi16(_mm256_shuffle_epi8(sc, scalePairMask(4)), p2)
                p3 = _mm256_madd_epi16(_mm256_shuffle_epi8(sc, scalePairMask(6)), p3)

                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1))
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p2, p3))
            }
            let isum = hsumsToFloat(_mm256_sub_epi32(sumi, q8sclsub), _mm_setzero_si128())
            acc = acc.addingProduct(isum[0], half(xb, 208) * yb.loadUnaligned(as: Float.self))
        }
        return acc
    }

    /// A `vpshufb` mask taking i16 k of a 128-bit half into every lane of the low half and
    /// i16 k+1 into every lane of the high half (a constant for a literal k).
    @inline(__always)
    static func scalePairMask(_ k: Int) -> __m256i {
        let a = Int16(2 * k) | Int16(2 * k + 1) << 8, b = Int16(2 * k + 2) | Int16(2 * k + 3) << 8
        return join(_mm_set1_epi16(a), _mm_set1_epi16(b))
    }
}
#endif
