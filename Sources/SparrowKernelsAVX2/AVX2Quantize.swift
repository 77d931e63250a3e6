// AVX2 activation quantizers, ports of ggml-cpu's x86 `quantize_row_q8_0` / `quantize_row_q8_1`
// (ggml-cpu/arch/x86/quants.c): the same scale (`d = amax / 127`, `id = 127 / amax`) and the
// same rounding (to nearest even, the default MXCSR mode of `cvtps2dq`), so the bytes equal
// SparrowKernels' scalar `.x86SIMD` quantizers exactly. `quantizeQ8_K` vectorizes ggml's
// `quantize_row_q8_K_ref` (which ggml-cpu also uses on x86) with the same bytes.

#if arch(x86_64)
import _Builtin_intrinsics.intel
import SparrowFormats

extension AVX2Dot {
    /// 32 floats → 32 signed bytes at `qs`; returns (d, Σq).
    @inline(__always)
    static func quantizeBlock32(_ x: UnsafePointer<Float>, _ qs: UnsafeMutableRawPointer) -> (Float, Int32) {
        let p = UnsafeRawPointer(x)
        var v0 = p.loadUnaligned(as: __m256.self)
        var v1 = p.loadUnaligned(fromByteOffset: 32, as: __m256.self)
        var v2 = p.loadUnaligned(fromByteOffset: 64, as: __m256.self)
        var v3 = p.loadUnaligned(fromByteOffset: 96, as: __m256.self)
        let signBit = _mm256_set1_ps(-0.0)
        var maxAbs = _mm256_andnot_ps(signBit, v0)
        maxAbs = _mm256_max_ps(maxAbs, _mm256_andnot_ps(signBit, v1))
        maxAbs = _mm256_max_ps(maxAbs, _mm256_andnot_ps(signBit, v2))
        maxAbs = _mm256_max_ps(maxAbs, _mm256_andnot_ps(signBit, v3))
        var max4 = _mm_max_ps(maxAbs.highHalf, maxAbs.lowHalf)
        max4 = _mm_max_ps(max4, _mm_movehl_ps(max4, max4))
        max4 = _mm_max_ss(max4, _mm_movehdup_ps(max4))
        let amax = max4[0]
        let d = amax / 127
        let mul = _mm256_set1_ps(amax != 0 ? 127 / amax : 0)
        v0 = _mm256_mul_ps(v0, mul)
        v1 = _mm256_mul_ps(v1, mul)
        v2 = _mm256_mul_ps(v2, mul)
        v3 = _mm256_mul_ps(v3, mul)
        let i0 = _mm256_cvtps_epi32(v0), i1 = _mm256_cvtps_epi32(v1)
        let i2 = _mm256_cvtps_epi32(v2), i3 = _mm256_cvtps_epi32(v3)
        let s = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3))
        let packed = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3))
        let ordered = _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
        qs.storeBytes(of: ordered, as: __m256i.self)
        let s4 = _mm_add_epi32(s.lowHalf, s.highHalf)
        let lanes = unsafeBitCast(s4, to: SIMD4<Int32>.self)
        return (d, lanes[0] &+ lanes[1] &+ lanes[2] &+ lanes[3])
    }

    /// Q8_0 blocks (34 bytes: f16 d, 32 × i8) of `count` floats (a multiple of 32).
    public static func quantizeQ8_0(_ x: UnsafePointer<Float>, count: Int, into dst: UnsafeMutableRawPointer) {
        for i in 0..<count / 32 {
            let yb = dst + 34 * i
            let (d, _) = quantizeBlock32(x + 32 * i, yb + 2)
            yb.storeBytes(of: floatToFP16(d).littleEndian, as: UInt16.self)
        }
    }

    /// Q8_K blocks (292 bytes: f32 d, 256 × i8, 16 × i16 sums of 16) of `count` floats (a
    /// multiple of 256), byte for byte `quantize_row_q8_K_ref`: iscale = −127 / the first value
    /// of largest magnitude, q = nearest-even(iscale·x) capped at 127, d = 1 / iscale; an
    /// all-zero block is all zero bytes.
    public static func quantizeQ8_K(_ x: UnsafePointer<Float>, count: Int, into dst: UnsafeMutableRawPointer) {
        let signBit = _mm256_set1_ps(-0.0)
        for i in 0..<count / 256 {
            let p = UnsafeRawPointer(x + 256 * i), yb = dst + 292 * i
            // max |x|; max_ps(new, acc) keeps acc where new is NaN, as the scalar `>` skips NaN.
            var m = _mm256_setzero_ps()
            for k in 0..<32 { m = _mm256_max_ps(_mm256_andnot_ps(signBit, p.loadUnaligned(fromByteOffset: 32 * k, as: __m256.self)), m) }
            var m4 = _mm_max_ps(m.highHalf, m.lowHalf)
            m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4))
            m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4))
            let amax = m4[0]
            guard amax > 0 else {
                yb.initializeMemory(as: UInt8.self, repeating: 0, count: 292)
                continue
            }
            // The first value of that magnitude, with its sign.
            // (Bit patterns compared: |v| and amax are non-negative and amax is not NaN.)
            let target = _mm256_set1_epi32(Int32(bitPattern: amax.bitPattern))
            var maxValue = amax
            for k in 0..<32 {
                let v = p.loadUnaligned(fromByteOffset: 32 * k, as: __m256.self)
                let magnitude = unsafeBitCast(_mm256_andnot_ps(signBit, v), to: __m256i.self)
                let hits = _mm256_movemask_ps(unsafeBitCast(_mm256_cmpeq_epi32(magnitude, target), to: __m256.self))
                if hits != 0 {
                    maxValue = p.load(fromByteOffset: 32 * k + 4 * Int(hits.trailingZeroBitCount), as: Float.self)
                    break
                }
            }
            let iscale = -127 / maxValue
            let mul = _mm256_set1_ps(iscale), cap = _mm256_set1_epi32(127)
            let ones16 = _mm256_set1_epi16(1)
            let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)
            for k in 0..<8 {
                let b = p + 128 * k
                @inline(__always) func q(_ o: Int) -> __m256i {
                    _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(mul, b.loadUnaligned(fromByteOffset: o, as: __m256.self))), cap)
                }
                let packed = _mm256_packs_epi16(_mm256_packs_epi32(q(0), q(32)), _mm256_packs_epi32(q(64), q(96)))
                let bytes = _mm256_permutevar8x32_epi32(packed, order)
                (yb + 4 + 32 * k).storeBytes(of: bytes, as: __m256i.self)
                // bsums 2k and 2k+1: pair sums of quants 0–15 (w) and 16–31 (v), then two hadds.
                let w = _mm256_madd_epi16(_mm256_cvtepi8_epi16(bytes.lowHalf), ones16)
                let v = _mm256_madd_epi16(_mm256_cvtepi8_epi16(bytes.highHalf), ones16)
                let h = _mm256_hadd_epi32(w, v)   // [w01 w23 v01 v23 | w45 w67 v45 v67]
                let h2 = _mm256_hadd_epi32(h, h)  // [w0-3 v0-3 . . | w4-7 v4-7 . .]
                let l = unsafeBitCast(h2, to: SIMD8<Int32>.self)
                (yb + 260 + 4 * k).storeBytes(of: Int16(truncatingIfNeeded: l[0] &+ l[4]), as: Int16.self)
                (yb + 262 + 4 * k).storeBytes(of: Int16(truncatingIfNeeded: l[1] &+ l[5]), as: Int16.self)
            }
            yb.storeBytes(of: 1 / iscale, as: Float.self)
        }
    }

    /// Q8_1 blocks (36 bytes: f16 d, f16 s = d·Σq, 32 × i8) of `count` floats (a multiple of 32).
    public static func quantizeQ8_1(_ x: UnsafePointer<Float>, count: Int, into dst: UnsafeMutableRawPointer) {
        for i in 0..<count / 32 {
            let yb = dst + 36 * i
            let (d, sum) = quantizeBlock32(x + 32 * i, yb + 4)
            yb.storeBytes(of: floatToFP16(d).littleEndian, as: UInt16.self)
            yb.storeBytes(of: floatToFP16(Float(sum) * d).littleEndian, toByteOffset: 2, as: UInt16.self)
        }
    }
}
#endif
