// AVX2/FMA/F16C vector primitives for attention over a KV cache and float weights: dot
// products and multiply-adds of f32 vectors with f16, bf16 or f32 rows. The attention dot
// products sum in ggml's order (small models such as SmolLM2 have scores large enough that
// the order of an f32 sum changes greedy tokens); the others use two 8-lane accumulators.

#if arch(x86_64)
import _Builtin_intrinsics.intel

public enum AVX2Vector {
    /// Σ a[i]·b[i], b in IEEE half precision, in ggml's `ggml_vec_dot_f16` AVX2 order: four
    /// 8-lane accumulators over steps of 32, reduced (0+1)+(2+3) then across lanes, then the
    /// tail sequentially (llama.cpp's attention scores with an f16 K cache sum this way).
    public static func dotF16(_ a: UnsafePointer<Float>, _ b: UnsafeRawPointer, count: Int) -> Float {
        var s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0
        var i = 0
        @inline(__always) func ax(_ k: Int) -> __m256 { UnsafeRawPointer(a + k).loadUnaligned(as: __m256.self) }
        @inline(__always) func bx(_ k: Int) -> __m256 { _mm256_cvtph_ps(b.loadUnaligned(fromByteOffset: 2 * k, as: __m128i.self)) }
        while i + 32 <= count {
            s0 = _mm256_fmadd_ps(ax(i), bx(i), s0)
            s1 = _mm256_fmadd_ps(ax(i + 8), bx(i + 8), s1)
            s2 = _mm256_fmadd_ps(ax(i + 16), bx(i + 16), s2)
            s3 = _mm256_fmadd_ps(ax(i + 24), bx(i + 24), s3)
            i += 32
        }
        var sum = ggmlReduce(s0, s1, s2, s3)
        while i < count {
            sum += Double(a[i] * _cvtsh_ss(b.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            i += 1
        }
        return Float(sum)
    }

    /// Σ a[i]·b[i] in f32, in ggml's `ggml_vec_dot_f32` AVX2 order (as `dotF16`).
    public static func dotF32(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        var s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0
        var i = 0
        @inline(__always) func ld(_ p: UnsafePointer<Float>, _ k: Int) -> __m256 { UnsafeRawPointer(p + k).loadUnaligned(as: __m256.self) }
        while i + 32 <= count {
            s0 = _mm256_fmadd_ps(ld(a, i), ld(b, i), s0)
            s1 = _mm256_fmadd_ps(ld(a, i + 8), ld(b, i + 8), s1)
            s2 = _mm256_fmadd_ps(ld(a, i + 16), ld(b, i + 16), s2)
            s3 = _mm256_fmadd_ps(ld(a, i + 24), ld(b, i + 24), s3)
            i += 32
        }
        var sum = ggmlReduce(s0, s1, s2, s3)
        while i < count {
            sum += Double(a[i] * b[i])
            i += 1
        }
        return Float(sum)
    }

    /// dst[i] = Float(src[i]) for `count` IEEE halves.
    public static func widenF16(_ src: UnsafeRawPointer, into dst: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 8 <= count {
            UnsafeMutableRawPointer(dst + i).storeBytes(of: _mm256_cvtph_ps(src.loadUnaligned(fromByteOffset: 2 * i, as: __m128i.self)), as: __m256.self)
            i += 8
        }
        while i < count {
            dst[i] = _cvtsh_ss(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
            i += 1
        }
    }

    /// o[i] += w · v[i], v in IEEE half precision.
    public static func axpyF16(_ w: Float, _ v: UnsafeRawPointer, _ o: UnsafeMutablePointer<Float>, count: Int) {
        let wv = _mm256_set1_ps(w)
        var i = 0
        while i + 8 <= count {
            let vv = _mm256_cvtph_ps(v.loadUnaligned(fromByteOffset: 2 * i, as: __m128i.self))
            let op = UnsafeMutableRawPointer(o + i)
            op.storeBytes(of: _mm256_fmadd_ps(wv, vv, op.loadUnaligned(as: __m256.self)), as: __m256.self)
            i += 8
        }
        while i < count {
            o[i] += w * _cvtsh_ss(v.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
            i += 1
        }
    }

    /// o[i] += w · v[i] in f32.
    public static func axpyF32(_ w: Float, _ v: UnsafePointer<Float>, _ o: UnsafeMutablePointer<Float>, count: Int) {
        let wv = _mm256_set1_ps(w)
        var i = 0
        while i + 8 <= count {
            let op = UnsafeMutableRawPointer(o + i)
            op.storeBytes(of: _mm256_fmadd_ps(wv, UnsafeRawPointer(v + i).loadUnaligned(as: __m256.self), op.loadUnaligned(as: __m256.self)), as: __m256.self)
            i += 8
        }
        while i < count {
            o[i] += w * v[i]
            i += 1
        }
    }

    /// Σ a[i]·b[i], both in IEEE half precision (ggml's F16 weight × F16 activation pairing).
    public static func dotF16F16(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, count: Int) -> Float {
        var s0 = _mm256_setzero_ps(), s1 = s0
        var i = 0
        while i + 16 <= count {
            s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(a.loadUnaligned(fromByteOffset: 2 * i, as: __m128i.self)),
                                 _mm256_cvtph_ps(b.loadUnaligned(fromByteOffset: 2 * i, as: __m128i.self)), s0)
            s1 = _mm256_fmadd_ps(_mm256_cvtph_ps(a.loadUnaligned(fromByteOffset: 2 * i + 16, as: __m128i.self)),
                                 _mm256_cvtph_ps(b.loadUnaligned(fromByteOffset: 2 * i + 16, as: __m128i.self)), s1)
            i += 16
        }
        while i + 8 <= count {
            s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(a.loadUnaligned(fromByteOffset: 2 * i, as: __m128i.self)),
                                 _mm256_cvtph_ps(b.loadUnaligned(fromByteOffset: 2 * i, as: __m128i.self)), s0)
            i += 8
        }
        var sum = AVX2Dot.hsum(_mm256_add_ps(s0, s1))
        while i < count {
            sum += _cvtsh_ss(a.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) * _cvtsh_ss(b.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
            i += 1
        }
        return sum
    }

    /// 8 bfloat16 values widened to f32.
    @inline(__always)
    static func bf16x8(_ p: UnsafeRawPointer, _ off: Int) -> __m256 {
        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(p.loadUnaligned(fromByteOffset: off, as: __m128i.self)), 16))
    }

    /// Σ a[i]·b[i], both bfloat16.
    public static func dotBF16BF16(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, count: Int) -> Float {
        var s0 = _mm256_setzero_ps(), s1 = s0
        var i = 0
        while i + 16 <= count {
            s0 = _mm256_fmadd_ps(bf16x8(a, 2 * i), bf16x8(b, 2 * i), s0)
            s1 = _mm256_fmadd_ps(bf16x8(a, 2 * i + 16), bf16x8(b, 2 * i + 16), s1)
            i += 16
        }
        while i + 8 <= count {
            s0 = _mm256_fmadd_ps(bf16x8(a, 2 * i), bf16x8(b, 2 * i), s0)
            i += 8
        }
        var sum = AVX2Dot.hsum(_mm256_add_ps(s0, s1))
        while i < count {
            let x = Float(bitPattern: UInt32(a.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
            let y = Float(bitPattern: UInt32(b.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
            sum += x * y
            i += 1
        }
        return sum
    }

    /// ggml's `GGML_F32x8_REDUCE` of four 8-lane accumulators, (0+1)+(2+3) then across lanes,
    /// widened to Double as `ggml_vec_dot_f16/f32` keep it.
    @inline(__always)
    static func ggmlReduce(_ s0: __m256, _ s1: __m256, _ s2: __m256, _ s3: __m256) -> Double {
        let r = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3))
        let t0 = _mm_add_ps(r.lowHalf, r.highHalf)
        let t1 = _mm_hadd_ps(t0, t0)
        return Double(_mm_hadd_ps(t1, t1)[0])
    }
}
#endif
