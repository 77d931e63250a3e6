// AVX2 activation quantizers, ports of ggml-cpu's x86 `quantize_row_q8_0` / `quantize_row_q8_1`
// (ggml-cpu/arch/x86/quants.c): the same scale (`d = amax / 127`, `id = 127 / amax`) and the
// same rounding (to nearest even, the default MXCSR mode of `cvtps2dq`), so the bytes equal
// SparrowKernels' scalar `.x86SIMD` quantizers exactly.

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
