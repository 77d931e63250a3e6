// AVX2 kernels for K-quant weights against four tokens at once (prefill): each 256-value
// block's quants are unpacked once and used for four Q8_K activation rows, where
// `AVX2Dot.q4_K` / `q6_K` unpack them once per token. Per token the integer sums are exactly
// `AVX2Dot`'s; Q4_K's scales are unpacked once per row (`q4_KPrepare`) and its minimum term
// is folded into the main accumulator, so its float rounding differs from ggml's vec_dot
// (as llama.cpp's own repacked prefill kernels do).

#if arch(x86_64)
import _Builtin_intrinsics.intel

extension AVX2Dot {
    /// −dmin·min[k] for a Q4_K superblock's eight sub-blocks (`ms` = its kQuantScalesAndMins).
    @inline(__always)
    static func q4_KMinFactors(_ xb: UnsafeRawPointer, _ ms: __m256i) -> __m256 {
        _mm256_mul_ps(_mm256_set1_ps(-half(xb, 2)), _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(hi128(ms))))
    }

    /// d_y·(bsums[2k] + bsums[2k+1]) of one Q8_K superblock: the scaled sum of the activation
    /// quants of each 32 values.
    @inline(__always)
    static func q8_KSubSums(_ yb: UnsafeRawPointer) -> __m256 {
        let b = load256(yb + 260)
        let pairs = _mm256_cvtepi16_epi32(_mm_hadd_epi16(lo128(b), hi128(b)))
        return _mm256_mul_ps(_mm256_broadcast_ss(yb.assumingMemoryBound(to: Float.self)), _mm256_cvtepi32_ps(pairs))
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

    /// Bytes per Q4_K superblock that `q4_KPrepare` writes.
    public static let q4_KPreparedBytes = 96

    /// Unpacks what a Q4_K row's superblocks need once, however many tokens meet them: per
    /// superblock, 96 bytes: the eight 6-bit sub-block scales as i16, twice (32 B); the minimum
    /// term's row factors −dmin·min[k] as f32 (32 B); d as f32 (4 B).
    public static func q4_KPrepare(_ x: UnsafeRawPointer, blocks: Int, into pre: UnsafeMutableRawPointer) {
        for i in 0..<blocks {
            let xb = x + i * 144
            let ms = kQuantScalesAndMins(xb)
            let sc = lo128(ms)
            let pb = pre + i * q4_KPreparedBytes
            pb.storeBytes(of: join(sc, sc), as: __m256i.self)
            (pb + 32).storeBytes(of: q4_KMinFactors(xb, ms), as: __m256.self)
            (pb + 64).storeBytes(of: half(xb, 0), as: Float.self)
        }
    }

    /// Q4_K row × four Q8_K token rows (`actRowBytes` apart):
    /// out[0], out[outStride], out[2·outStride], out[3·outStride].
    ///
    /// `pre` is the row's `q4_KPrepare` output (unpacked once per row, not once per four
    /// tokens); `kSums` holds each token's Q8_K sub-block sums d·Σq per 32 values (8 f32 per
    /// superblock, `kSumStride` floats per token), so the minimum term is one FMA per
    /// superblock and token, accumulated in the same lanes as the main term.
    public static func q4_KTokens4(_ pre: UnsafeRawPointer, _ x: UnsafeRawPointer, _ act: UnsafeRawPointer, actRowBytes: Int,
                                   kSums: UnsafePointer<Float>, kSumStride: Int, blocks: Int,
                                   out: UnsafeMutablePointer<Float>, outStride: Int) {
        var acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0
        let r1 = actRowBytes, r2 = 2 * actRowBytes, r3 = 3 * actRowBytes
        for i in 0..<blocks {
            let xb = x + i * 144
            let pb = pre + i * q4_KPreparedBytes
            let scales = load256(pb)
            let y0 = act + i * 292

            // −dmin·Σ_k min[k]·(d_y·Σ sub-block k's activation quants)
            let mv = _mm256_loadu_ps((pb + 32).assumingMemoryBound(to: Float.self))
            let ks = kSums + i * 8
            acc0 = _mm256_fmadd_ps(mv, _mm256_loadu_ps(ks), acc0)
            acc1 = _mm256_fmadd_ps(mv, _mm256_loadu_ps(ks + kSumStride), acc1)
            acc2 = _mm256_fmadd_ps(mv, _mm256_loadu_ps(ks + 2 * kSumStride), acc2)
            acc3 = _mm256_fmadd_ps(mv, _mm256_loadu_ps(ks + 3 * kSumStride), acc3)

            var s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0
            @inline(__always) func pair(_ j: Int) {
                let p = q4_KPair(xb, scales, j)
                s0 = _mm256_add_epi32(s0, q4_KPairDot(p, y0, j))
                s1 = _mm256_add_epi32(s1, q4_KPairDot(p, y0 + r1, j))
                s2 = _mm256_add_epi32(s2, q4_KPairDot(p, y0 + r2, j))
                s3 = _mm256_add_epi32(s3, q4_KPairDot(p, y0 + r3, j))
            }
            pair(0)
            pair(1)
            pair(2)
            pair(3)
            let xd = _mm256_broadcast_ss((pb + 64).assumingMemoryBound(to: Float.self))
            @inline(__always) func finish(_ yb: UnsafeRawPointer, _ sumi: __m256i, _ acc: inout __m256) {
                let d = _mm256_mul_ps(xd, _mm256_broadcast_ss(yb.assumingMemoryBound(to: Float.self)))
                acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc)
            }
            finish(y0, s0, &acc0)
            finish(y0 + r1, s1, &acc1)
            finish(y0 + r2, s2, &acc2)
            finish(y0 + r3, s3, &acc3)
        }
        out[0] = hsum(acc0)
        out[outStride] = hsum(acc1)
        out[2 * outStride] = hsum(acc2)
        out[3 * outStride] = hsum(acc3)
    }

    /// Q4_K row × one Q8_K row with exactly `q4_KTokens4`'s arithmetic per token (scales and
    /// sub-block sums computed here instead of read from tables), so a token's product does
    /// not depend on how many tokens share the call: decode, prefill tails and prefill tiles
    /// agree bit for bit, and a prompt prefilled in one chunk or several, or reused from a
    /// cached prefix, gives the same logits.
    public static func q4_KFolded(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
        var acc = _mm256_setzero_ps()
        for i in 0..<blocks {
            let xb = x + i * 144, yb = y + i * 292
            prefetchAhead(xb, bytes: 144)
            let ms = kQuantScalesAndMins(xb)
            let sc = lo128(ms)
            let scales = join(sc, sc)
            acc = _mm256_fmadd_ps(q4_KMinFactors(xb, ms), q8_KSubSums(yb), acc)
            var sumi = _mm256_setzero_si256()
            sumi = _mm256_add_epi32(sumi, q4_KPairDot(q4_KPair(xb, scales, 0), yb, 0))
            sumi = _mm256_add_epi32(sumi, q4_KPairDot(q4_KPair(xb, scales, 1), yb, 1))
            sumi = _mm256_add_epi32(sumi, q4_KPairDot(q4_KPair(xb, scales, 2), yb, 2))
            sumi = _mm256_add_epi32(sumi, q4_KPairDot(q4_KPair(xb, scales, 3), yb, 3))
            let xd = _mm256_set1_ps(half(xb, 0))
            let yd = _mm256_broadcast_ss(yb.assumingMemoryBound(to: Float.self))
            acc = _mm256_fmadd_ps(_mm256_mul_ps(xd, yd), _mm256_cvtepi32_ps(sumi), acc)
        }
        return hsum(acc)
    }

    /// Each Q8_K row's `q8_KSubSums` for `q4_KTokens4`, 8 f32 per superblock.
    public static func q8_KSums(_ act: UnsafeRawPointer, blocks: Int, into out: UnsafeMutablePointer<Float>) {
        for i in 0..<blocks { _mm256_storeu_ps(out + i * 8, q8_KSubSums(act + i * 292)) }
    }

    /// Q6_K row × four Q8_K token rows (`actRowBytes` apart):
    /// out[0], out[outStride], out[2·outStride], out[3·outStride].
    public static func q6_KTokens4(_ x: UnsafeRawPointer, _ act: UnsafeRawPointer, actRowBytes: Int, blocks: Int,
                                   out: UnsafeMutablePointer<Float>, outStride: Int) {
        let m3 = _mm256_set1_epi8(3)
        let m15 = _mm256_set1_epi8(15)
        let m12 = _mm256_set1_epi8(12)
        let m48 = _mm256_set1_epi8(48)
        let m192 = _mm256_set1_epi8(-64)
        var acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0
        for i in 0..<blocks {
            let xb = x + i * 210
            let xd = half(xb, 208)
            let scales16 = _mm256_cvtepi8_epi16(load128(xb + 192))
            let y0 = act + i * 292
            @inline(__always) func sclsub(_ yb: UnsafeRawPointer) -> __m256i {
                _mm256_slli_epi32(_mm256_madd_epi16(load256(yb + 260), scales16), 5)
            }
            var s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0
            for j in 0..<2 {
                let q4bits1 = load256(xb + 64 * j)
                let q4bits2 = load256(xb + 64 * j + 32)
                let q4bitsH = load256(xb + 128 + 32 * j)

                let q4h0 = _mm256_slli_epi16(_mm256_and_si256(q4bitsH, m3), 4)
                let q4h1 = _mm256_slli_epi16(_mm256_and_si256(q4bitsH, m12), 2)
                let q4h2 = _mm256_and_si256(q4bitsH, m48)
                let q4h3 = _mm256_srli_epi16(_mm256_and_si256(q4bitsH, m192), 2)

                let q40 = _mm256_or_si256(_mm256_and_si256(q4bits1, m15), q4h0)
                let q41 = _mm256_or_si256(_mm256_and_si256(q4bits2, m15), q4h1)
                let q42 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits1, 4), m15), q4h2)
                let q43 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits2, 4), m15), q4h3)

                let s = 8 * j
                let sp0 = scalePair(xb, s + 0), sp1 = scalePair(xb, s + 2)
                let sp2 = scalePair(xb, s + 4), sp3 = scalePair(xb, s + 6)
                @inline(__always) func step(_ yb: UnsafeRawPointer, _ sumi: inout __m256i) {
                    let q8 = yb + 4 + 128 * j
                    let p0 = _mm256_madd_epi16(sp0, _mm256_maddubs_epi16(q40, load256(q8)))
                    let p1 = _mm256_madd_epi16(sp1, _mm256_maddubs_epi16(q41, load256(q8 + 32)))
                    let p2 = _mm256_madd_epi16(sp2, _mm256_maddubs_epi16(q42, load256(q8 + 64)))
                    let p3 = _mm256_madd_epi16(sp3, _mm256_maddubs_epi16(q43, load256(q8 + 96)))
                    sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1))
                    sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p2, p3))
                }
                step(y0, &s0)
                step(y0 + actRowBytes, &s1)
                step(y0 + 2 * actRowBytes, &s2)
                step(y0 + 3 * actRowBytes, &s3)
            }
            @inline(__always) func finish(_ yb: UnsafeRawPointer, _ sumi: __m256i, _ acc: inout __m256) {
                let d = yb.loadUnaligned(as: Float.self) * xd
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(_mm256_sub_epi32(sumi, sclsub(yb))), acc)
            }
            finish(y0, s0, &acc0)
            finish(y0 + actRowBytes, s1, &acc1)
            finish(y0 + 2 * actRowBytes, s2, &acc2)
            finish(y0 + 3 * actRowBytes, s3, &acc3)
        }
        out[0] = hsum(acc0)
        out[outStride] = hsum(acc1)
        out[2 * outStride] = hsum(acc2)
        out[3 * outStride] = hsum(acc3)
    }
}
#endif
