// AVX2/FMA quantized dot products, ports of ggml's x86 routines
// (ggml/src/ggml-cpu/arch/x86/quants.c, `#if defined __AVX2__` branches).
//
// This module is compiled with -mavx2 -mfma -mf16c, so every function in it may use those
// instructions: callers must check the CPU first (SparrowKernels' `QuantKernels.useAVX2`
// does, from code compiled without these flags).
// Integer sums are exact; the float accumulation order is ggml's AVX2 order, which differs
// from the generic (scalar) routines in the last bits.

#if arch(x86_64)
import _Builtin_intrinsics.intel
import SparrowCSupport
import SparrowFormats

public enum AVX2Dot {
    // MARK: helpers

    /// Prefetches the `bytes` bytes starting `AVX2Tiles.prefetchDistance` bytes past `p`
    /// (one prefetch per 64-byte line). Streaming weights, the hardware prefetcher alone
    /// leaves the cores waiting on memory; this keeps a few KB of requests in flight.
    @inlinable @inline(__always)
    public static func prefetchAhead(_ p: UnsafeRawPointer, bytes: Int) {
        let base = p + AVX2Tiles.prefetchDistance
        var o = 0
        while o < bytes {
            sparrow_prefetch(base + o)
            o += 64
        }
    }

    @inlinable @inline(__always)
    static func load256(_ p: UnsafeRawPointer) -> __m256i {
        p.loadUnaligned(as: __m256i.self)
    }

    @inlinable @inline(__always)
    static func load128(_ p: UnsafeRawPointer) -> __m128i {
        p.loadUnaligned(as: __m128i.self)
    }

    @inline(__always)
    static func half(_ p: UnsafeRawPointer, _ off: Int) -> Float {
        _cvtsh_ss(p.loadUnaligned(fromByteOffset: off, as: UInt16.self))  // F16C vcvtph2ps
    }

    /// The f16 at `p` as f32, read with a 4-byte load (the 2 bytes after it must be readable):
    /// vmovd + vcvtph2ps. `_cvtsh_ss` compiles to a vpinsrw that merges into whatever register
    /// is free, a false dependency that chained every row's scale through one register.
    @inline(__always)
    static func halfAt(_ p: UnsafeRawPointer) -> Float {
        _mm_cvtph_ps(_mm_cvtsi32_si128(p.loadUnaligned(as: Int32.self)))[0]
    }

    @inline(__always)
    static func hsum(_ v: __m256) -> Float {
        let h = v.lowHalf + v.highHalf
        let q = h.lowHalf + h.highHalf
        return q[0] + q[1]
    }

    @inlinable @inline(__always)
    static func hi128(_ v: __m256i) -> __m128i {
        v.highHalf
    }

    @inlinable @inline(__always)
    static func lo128(_ v: __m256i) -> __m128i {
        v.lowHalf
    }

    @inlinable @inline(__always)
    static func join(_ lo: __m128i, _ hi: __m128i) -> __m256i {
        __m256i(lowHalf: lo, highHalf: hi)
    }

    /// 32 nibbles of 16 bytes: low nibbles in bytes 0..<16, high nibbles in 16..<32.
    @inline(__always)
    static func bytesFromNibbles32(_ p: UnsafeRawPointer) -> __m256i {
        let tmp = load128(p)
        let bytes = join(tmp, _mm_srli_epi16(tmp, 4))
        return _mm256_and_si256(bytes, _mm256_set1_epi8(0x0F))
    }

    /// Bit j of `x` as 0xFF / 0x00 in byte j.
    @inline(__always)
    static func bytesFromBits32(_ x: UInt32) -> __m256i {
        let shufMask = _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0)
        var bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(Int32(bitPattern: x)), shufMask)
        bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe))
        return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1))
    }

    /// Σ pairs of signed × signed bytes as 8 floats (ggml's mul_sum_i8_pairs_float).
    @inline(__always)
    static func mulSumI8Pairs(_ x: __m256i, _ y: __m256i) -> __m256 {
        let ax = _mm256_sign_epi8(x, x)
        let sy = _mm256_sign_epi8(y, x)
        return mulSumUS8Pairs(ax, sy)
    }

    /// Σ pairs of unsigned × signed bytes as 8 floats (ggml's mul_sum_us8_pairs_float).
    @inline(__always)
    static func mulSumUS8Pairs(_ ax: __m256i, _ sy: __m256i) -> __m256 {
        let dot = _mm256_maddubs_epi16(ax, sy)
        return _mm256_cvtepi32_ps(_mm256_madd_epi16(dot, _mm256_set1_epi16(1)))
    }

    // MARK: 32-value blocks

    /// Q8_0 × Q8_0 (34-byte blocks: f16 d, 32 × i8).
    public static func q8_0(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
        var acc = _mm256_setzero_ps()
        for i in 0..<blocks {
            let xb = x + i * 34, yb = y + i * 34
            let d = _mm256_set1_ps(halfAt(xb) * halfAt(yb))
            let q = mulSumI8Pairs(load256(xb + 2), load256(yb + 2))
            acc = _mm256_fmadd_ps(d, q, acc)
        }
        return hsum(acc)
    }

    /// Q5_0 (22-byte blocks: f16 d, u32 qh, 16 × nibbles) × Q8_0.
    public static func q5_0(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
        var acc = _mm256_setzero_ps()
        let f0 = _mm256_set1_epi8(Int8(bitPattern: 0xF0))
        for i in 0..<blocks {
            let xb = x + i * 22, yb = y + i * 34
            let d = _mm256_set1_ps(halfAt(xb) * halfAt(yb))
            var qx = bytesFromNibbles32(xb + 6)
            let qh = UInt32(littleEndian: xb.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
            let bxhi = _mm256_andnot_si256(bytesFromBits32(qh), f0)
            qx = _mm256_or_si256(qx, bxhi)
            let q = mulSumI8Pairs(qx, load256(yb + 2))
            acc = _mm256_fmadd_ps(d, q, acc)
        }
        return hsum(acc)
    }

    /// Q4_1 (20-byte blocks: f16 d, f16 m, 16 × nibbles) × Q8_1 (36 bytes: f16 d, f16 s, 32 × i8).
    public static func q4_1(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
        var acc = _mm256_setzero_ps()
        var summs: Float = 0
        for i in 0..<blocks {
            let xb = x + i * 20, yb = y + i * 36
            summs += half(xb, 2) * half(yb, 2)
            let d = _mm256_set1_ps(halfAt(xb) * halfAt(yb))
            let qx = bytesFromNibbles32(xb + 4)
            let xy = mulSumUS8Pairs(qx, load256(yb + 4))
            acc = _mm256_fmadd_ps(d, xy, acc)
        }
        return hsum(acc) + summs
    }

    // MARK: K-quants (Q8_K: f32 d, 256 × i8 qs, 16 × i16 bsums = 292 bytes)

    /// Q5_K (176 bytes: f16 d, f16 dmin, 12 scale bytes, 32 qh, 128 qs) × Q8_K.
    public static func q5_K(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
        let m4 = _mm256_set1_epi8(0x0F)
        let mone = _mm256_set1_epi8(1)
        var acc = _mm256_setzero_ps()
        var summs: Float = 0
        @inline(__always) func sh(_ k: Int) -> __m256i { _mm256_set1_epi16(Int16(2 * k) | Int16(2 * k + 1) << 8) }
        for i in 0..<blocks {
            let xb = x + i * 176, yb = y + i * 292
            prefetchAhead(xb, bytes: 176)
            let yd = yb.loadUnaligned(as: Float.self)
            let d = yd * half(xb, 0)
            let dmin = -yd * half(xb, 2)

            let minsAndScales = kQuantScalesAndMins(xb)

            let q8sums = load256(yb + 260)
            let q8s = _mm_hadd_epi16(lo128(q8sums), hi128(q8sums))
            let prod = unsafeBitCast(_mm_madd_epi16(hi128(minsAndScales), q8s), to: SIMD4<Int32>.self)
            summs += dmin * Float(prod[0] &+ prod[1] &+ prod[2] &+ prod[3])

            let sc128 = lo128(minsAndScales)
            let scales = join(sc128, sc128)
            let hbits = load256(xb + 16)
            var hmask = mone
            var bit: Int32 = 0
            var sumi = _mm256_setzero_si256()
            for j in 0..<4 {
                let scale0 = _mm256_shuffle_epi8(scales, sh(2 * j))
                let scale1 = _mm256_shuffle_epi8(scales, sh(2 * j + 1))
                let q5bits = load256(xb + 48 + 32 * j)
                let q5l0 = _mm256_and_si256(q5bits, m4)
                let q5h0 = _mm256_slli_epi16(_mm256_srli_epi16(_mm256_and_si256(hbits, hmask), bit), 4)
                bit += 1
                hmask = _mm256_slli_epi16(hmask, 1)
                let q5l1 = _mm256_and_si256(_mm256_srli_epi16(q5bits, 4), m4)
                let q5h1 = _mm256_slli_epi16(_mm256_srli_epi16(_mm256_and_si256(hbits, hmask), bit), 4)
                bit += 1
                hmask = _mm256_slli_epi16(hmask, 1)
                let q80 = load256(yb + 4 + 64 * j)
                let q81 = load256(yb + 36 + 64 * j)
                let p0 = _mm256_madd_epi16(scale0, _mm256_maddubs_epi16(_mm256_add_epi8(q5l0, q5h0), q80))
                let p1 = _mm256_madd_epi16(scale1, _mm256_maddubs_epi16(_mm256_add_epi8(q5l1, q5h1), q81))
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1))
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc)
        }
        return hsum(acc) + summs
    }

    /// The 8 six-bit scales (int16 lanes 0..<8) and 8 mins (lanes 8..<16) of a Q4_K/Q5_K block
    /// (12 packed bytes at offset 4), as ggml's AVX2 kernels unpack them.
    @inline(__always)
    static func kQuantScalesAndMins(_ xb: UnsafeRawPointer) -> __m256i {
        let sc = xb + 4
        let u0 = UInt32(littleEndian: sc.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        let u1 = UInt32(littleEndian: sc.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        let u2 = UInt32(littleEndian: sc.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        let t3 = ((u2 >> 4) & 0x0f0f_0f0f) | (((u1 >> 6) & 0x0303_0303) << 4)
        let t2 = u1 & 0x3f3f_3f3f
        let t1 = (u2 & 0x0f0f_0f0f) | (((u0 >> 6) & 0x0303_0303) << 4)
        let t0 = u0 & 0x3f3f_3f3f
        return _mm256_cvtepu8_epi16(_mm_set_epi32(Int32(bitPattern: t3), Int32(bitPattern: t2), Int32(bitPattern: t1), Int32(bitPattern: t0)))
    }
}
#endif
