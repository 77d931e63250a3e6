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

    /// ggml's `ggml_v_expf` (AVX2): e^x for 8 lanes, the polynomial llama.cpp's softmax uses,
    /// so attention weights round as llama.cpp's do (−∞ gives 0).
    @inline(__always)
    public static func expGGML(_ x: __m256) -> __m256 {
        let r = _mm256_set1_ps(0x1.8p23)
        let z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0), r)
        let n = _mm256_sub_ps(z, r)
        let b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20), _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1), x))
        let e = _mm256_slli_epi32(_mm256_castps_si256(z), 23)
        let k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1))))
        let absN = _mm256_andnot_ps(_mm256_set1_ps(-0.0), n)
        // |n| > 126 and, below, n ≤ 0 and |n| > 192 as integer compares of the float bits
        // (exact for non-NaN floats; _mm256_cmp_ps is a macro Swift cannot call).
        let c = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_castps_si256(absN), _mm256_castps_si256(_mm256_set1_ps(126))))
        let u = _mm256_mul_ps(b, b)
        let j = _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7), b, _mm256_set1_ps(0x1.573e2ep-5)), u,
                                                _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3), b, _mm256_set1_ps(0x1.fffdb6p-2))),
                                u, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1), b))
        if _mm256_movemask_ps(c) == 0 { return _mm256_fmadd_ps(j, k, k) }
        let g = _mm256_and_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(1), _mm256_castps_si256(n)),
                                 _mm256_set1_epi32(Int32(bitPattern: 0x8200_0000)))
        let s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f00_0000)))
        let s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g))
        let d = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_castps_si256(absN), _mm256_castps_si256(_mm256_set1_ps(192))))
        return _mm256_or_ps(_mm256_and_ps(d, _mm256_mul_ps(s1, s1)),
                            _mm256_andnot_ps(d, _mm256_or_ps(_mm256_and_ps(c, _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1)),
                                                             _mm256_andnot_ps(c, _mm256_fmadd_ps(k, j, k)))))
    }

    /// In place: x[i] ← softmax(scale·x)[i] for i < count, as llama.cpp's non-flash attention
    /// computes it (`ggml_compute_forward_soft_max_f32`): scale, max, `ggml_v_expf` over
    /// groups of 8 (positions past `count` count as masked, −∞ → 0), each group's sum added
    /// to a Double in ggml's lane order, then × Float(1/sum). `x` must have room for `count`
    /// rounded up to 8.
    public static func softmaxGGML(_ x: UnsafeMutablePointer<Float>, count: Int, scale: Float) {
        let padded = (count + 7) & ~7
        for i in count..<padded { x[i] = -.infinity }
        let sv = _mm256_set1_ps(scale)
        var mv = _mm256_set1_ps(-.infinity)
        var i = 0
        while i < padded {
            let v = _mm256_mul_ps(UnsafeRawPointer(x + i).loadUnaligned(as: __m256.self), sv)
            UnsafeMutableRawPointer(x + i).storeBytes(of: v, as: __m256.self)
            mv = _mm256_max_ps(mv, v)
            i += 8
        }
        let m4 = _mm_max_ps(mv.lowHalf, mv.highHalf)
        let m = max(max(m4[0], m4[1]), max(m4[2], m4[3]))
        let mb = _mm256_set1_ps(m)
        var sum = 0.0
        i = 0
        while i < padded {
            let e = expGGML(_mm256_sub_ps(UnsafeRawPointer(x + i).loadUnaligned(as: __m256.self), mb))
            UnsafeMutableRawPointer(x + i).storeBytes(of: e, as: __m256.self)
            var h = _mm_add_ps(e.highHalf, e.lowHalf)
            h = _mm_add_ps(h, _mm_movehl_ps(h, h))
            h = _mm_add_ss(h, _mm_movehdup_ps(h))
            sum += Double(h[0])
            i += 8
        }
        let inv = _mm256_set1_ps(Float(1 / sum))
        i = 0
        while i < padded {
            let p = UnsafeMutableRawPointer(x + i)
            p.storeBytes(of: _mm256_mul_ps(p.loadUnaligned(as: __m256.self), inv), as: __m256.self)
            i += 8
        }
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
