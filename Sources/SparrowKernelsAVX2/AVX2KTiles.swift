// AVX2 kernels for K-quant weights against four tokens at once (prefill): each 256-value
// block's scales and quants are unpacked once and used for four Q8_K activation rows, where
// `AVX2Dot.q4_K` / `q6_K` unpack them once per token. Per token the integer sums and the
// float accumulation are exactly `AVX2Dot`'s.

#if arch(x86_64)
import _Builtin_intrinsics.intel

extension AVX2Dot {
    /// Q4_K row × four Q8_K token rows (`actRowBytes` apart):
    /// out[0], out[outStride], out[2·outStride], out[3·outStride].
    public static func q4_KTokens4(_ x: UnsafeRawPointer, _ act: UnsafeRawPointer, actRowBytes: Int, blocks: Int,
                                   out: UnsafeMutablePointer<Float>, outStride: Int) {
        let m4 = _mm256_set1_epi8(0x0F)
        var acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0
        var accM0 = SIMD4<Float>.zero, accM1 = accM0, accM2 = accM0, accM3 = accM0
        @inline(__always) func sh(_ k: Int) -> __m256i { _mm256_set1_epi16(Int16(2 * k) | Int16(2 * k + 1) << 8) }
        for i in 0..<blocks {
            let xb = x + i * 144
            let xd = half(xb, 0), xmin = half(xb, 2)

            let minsAndScales = kQuantScalesAndMins(xb)
            let mins = hi128(minsAndScales)
            let sc128 = lo128(minsAndScales)
            let scales = join(sc128, sc128)

            let y0 = act + i * 292
            @inline(__always) func minTerm(_ yb: UnsafeRawPointer, _ accM: inout SIMD4<Float>) {
                let yd = yb.loadUnaligned(as: Float.self)
                let q8sums = load256(yb + 260)
                let q8s = _mm_hadd_epi16(lo128(q8sums), hi128(q8sums))
                accM = accM + (-yd * xmin) * _mm_cvtepi32_ps(_mm_madd_epi16(mins, q8s))
            }
            minTerm(y0, &accM0)
            minTerm(y0 + actRowBytes, &accM1)
            minTerm(y0 + 2 * actRowBytes, &accM2)
            minTerm(y0 + 3 * actRowBytes, &accM3)

            var s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0
            for j in 0..<4 {
                let scaleL = _mm256_shuffle_epi8(scales, sh(2 * j))
                let scaleH = _mm256_shuffle_epi8(scales, sh(2 * j + 1))
                let q4bits = load256(xb + 16 + 32 * j)
                let q4l = _mm256_and_si256(q4bits, m4)
                let q4h = _mm256_and_si256(_mm256_srli_epi16(q4bits, 4), m4)
                @inline(__always) func step(_ yb: UnsafeRawPointer, _ sumi: inout __m256i) {
                    let q8 = yb + 4 + 64 * j
                    let p16l = _mm256_madd_epi16(scaleL, _mm256_maddubs_epi16(q4l, load256(q8)))
                    let p16h = _mm256_madd_epi16(scaleH, _mm256_maddubs_epi16(q4h, load256(q8 + 32)))
                    sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p16l, p16h))
                }
                step(y0, &s0)
                step(y0 + actRowBytes, &s1)
                step(y0 + 2 * actRowBytes, &s2)
                step(y0 + 3 * actRowBytes, &s3)
            }
            @inline(__always) func finish(_ yb: UnsafeRawPointer, _ sumi: __m256i, _ acc: inout __m256) {
                let d = yb.loadUnaligned(as: Float.self) * xd
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc)
            }
            finish(y0, s0, &acc0)
            finish(y0 + actRowBytes, s1, &acc1)
            finish(y0 + 2 * actRowBytes, s2, &acc2)
            finish(y0 + 3 * actRowBytes, s3, &acc3)
        }
        @inline(__always) func total(_ acc: __m256, _ accM: SIMD4<Float>) -> Float {
            let m = accM.lowHalf + accM.highHalf
            return hsum(acc) + (m[0] + m[1])
        }
        out[0] = total(acc0, accM0)
        out[outStride] = total(acc1, accM1)
        out[2 * outStride] = total(acc2, accM2)
        out[3 * outStride] = total(acc3, accM3)
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
