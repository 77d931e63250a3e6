// AVX2/FMA/F16C vector primitives for attention over a KV cache and float weights: dot
// products and multiply-adds of f32 vectors with f16, bf16 or f32 rows. The attention dot
// products sum in ggml's order (small models such as SmolLM2 have scores large enough that
// the order of an f32 sum changes greedy tokens); the others use two 8-lane accumulators.

#if arch(x86_64)
import _Builtin_intrinsics.intel
import SparrowCSupport

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

    /// out[p] = dotF32(q, rows + p·rowStride, count: width) for p < count, bit for bit: eight
    /// rows at a time, their 8-lane partial sums reduced together by a transposed version of
    /// `ggmlReduce` (the same additions in the same order) instead of one reduction per row.
    public static func dotsF32(_ q: UnsafePointer<Float>, rows: UnsafePointer<Float>, rowStride: Int, count: Int,
                               width: Int, into out: UnsafeMutablePointer<Float>) {
        var p = 0
        if width % 32 == 0 {
            @inline(__always) func ld(_ p: UnsafePointer<Float>, _ k: Int) -> __m256 { UnsafeRawPointer(p + k).loadUnaligned(as: __m256.self) }
            // One row's lanes as `dotF32` has them before its reduction: (s0 + s1) + (s2 + s3).
            @inline(__always) func lanes(_ r: UnsafePointer<Float>) -> __m256 {
                var s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0
                var i = 0
                while i < width {
                    s0 = _mm256_fmadd_ps(ld(q, i), ld(r, i), s0)
                    s1 = _mm256_fmadd_ps(ld(q, i + 8), ld(r, i + 8), s1)
                    s2 = _mm256_fmadd_ps(ld(q, i + 16), ld(r, i + 16), s2)
                    s3 = _mm256_fmadd_ps(ld(q, i + 24), ld(r, i + 24), s3)
                    i += 32
                }
                return _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3))
            }
            // [x.lo + x.hi | y.lo + y.hi]: ggmlReduce's first step for two rows at once.
            @inline(__always) func halves(_ x: __m256, _ y: __m256) -> __m256 {
                __m256(lowHalf: x.lowHalf + x.highHalf, highHalf: y.lowHalf + y.highHalf)
            }
            while p + 8 <= count {
                let r = rows + p * rowStride
                let a = halves(lanes(r), lanes(r + rowStride))
                let b = halves(lanes(r + 2 * rowStride), lanes(r + 3 * rowStride))
                let c = halves(lanes(r + 4 * rowStride), lanes(r + 5 * rowStride))
                let d = halves(lanes(r + 6 * rowStride), lanes(r + 7 * rowStride))
                // Two horizontal adds, as ggmlReduce's: lanes [0, 2, 4, 6 | 1, 3, 5, 7].
                let s = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d))
                out[p] = s[0]; out[p + 2] = s[1]; out[p + 4] = s[2]; out[p + 6] = s[3]
                out[p + 1] = s[4]; out[p + 3] = s[5]; out[p + 5] = s[6]; out[p + 7] = s[7]
                p += 8
            }
        }
        while p < count {
            out[p] = dotF32(q, rows + p * rowStride, count: width)
            p += 1
        }
    }

    /// x[i] = x[i] rounded to IEEE half precision and back (round to nearest even, as
    /// `floatToFP16`; F16C converts subnormal halves exactly).
    public static func roundToF16(_ x: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 8 <= count {
            let p = UnsafeMutableRawPointer(x + i)
            p.storeBytes(of: sparrow_round_f16x8(p.loadUnaligned(as: __m256.self)), as: __m256.self)
            i += 8
        }
        while i < count {
            x[i] = sparrow_round_f16(x[i])
            i += 1
        }
    }

    /// o[i] += Σ_p weights[p] · rows[p·rowStride + i] for i < width, p < count: the same FMAs
    /// in the same order (p ascending) as `count` calls of `axpyF32`, with each 64-wide slice of
    /// `o` held in registers across the rows instead of loaded and stored per row.
    public static func accumulateRows(weights: UnsafePointer<Float>, rows: UnsafePointer<Float>, rowStride: Int,
                                      count: Int, into o: UnsafeMutablePointer<Float>, width: Int) {
        @inline(__always) func ld(_ p: UnsafePointer<Float>) -> __m256 { UnsafeRawPointer(p).loadUnaligned(as: __m256.self) }
        @inline(__always) func st(_ v: __m256, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: __m256.self) }
        var d = 0
        while d + 64 <= width {
            let od = o + d
            var a0 = ld(od), a1 = ld(od + 8), a2 = ld(od + 16), a3 = ld(od + 24)
            var a4 = ld(od + 32), a5 = ld(od + 40), a6 = ld(od + 48), a7 = ld(od + 56)
            for p in 0..<count {
                let w = _mm256_set1_ps(weights[p])
                let r = rows + p * rowStride + d
                a0 = _mm256_fmadd_ps(w, ld(r), a0); a1 = _mm256_fmadd_ps(w, ld(r + 8), a1)
                a2 = _mm256_fmadd_ps(w, ld(r + 16), a2); a3 = _mm256_fmadd_ps(w, ld(r + 24), a3)
                a4 = _mm256_fmadd_ps(w, ld(r + 32), a4); a5 = _mm256_fmadd_ps(w, ld(r + 40), a5)
                a6 = _mm256_fmadd_ps(w, ld(r + 48), a6); a7 = _mm256_fmadd_ps(w, ld(r + 56), a7)
            }
            st(a0, od); st(a1, od + 8); st(a2, od + 16); st(a3, od + 24)
            st(a4, od + 32); st(a5, od + 40); st(a6, od + 48); st(a7, od + 56)
            d += 64
        }
        while d + 8 <= width {
            var a = ld(o + d)
            for p in 0..<count { a = _mm256_fmadd_ps(_mm256_set1_ps(weights[p]), ld(rows + p * rowStride + d), a) }
            st(a, o + d)
            d += 8
        }
        while d < width {
            for p in 0..<count { o[d] += weights[p] * rows[p * rowStride + d] }
            d += 1
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

    /// e^x in 8 lanes, bit for bit as ggml's AVX2 `ggml_v_expf` computes it (the algorithm of
    /// ARM's optimized-routines expf: x = n·ln 2 + b with n = round(x·log₂e), e^b from a
    /// degree-5 polynomial, 2ⁿ built in the exponent bits; |n| > 126 scales in two steps and
    /// saturates to 0 or ∞ past 192), so SwiGLU matches llama.cpp's on the same CPU.
    @inline(__always)
    static func exp8(_ x: __m256) -> __m256 {
        let shift = _mm256_set1_ps(0x1.8p23)
        let z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0), shift)
        let n = _mm256_sub_ps(z, shift)
        let b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20), _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1), x))
        let e = _mm256_slli_epi32(_mm256_castps_si256(z), 23)
        let k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1))))
        let u = _mm256_mul_ps(b, b)
        let j = _mm256_fmadd_ps(
            _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7), b, _mm256_set1_ps(0x1.573e2ep-5)), u,
                            _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3), b, _mm256_set1_ps(0x1.fffdb6p-2))),
            u, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1), b))
        // |n| > 126 (|x| ≳ 87) in some lane: rare, so those lanes go lane by lane.
        let absN = _mm256_andnot_si256(_mm256_castps_si256(_mm256_set1_ps(-0.0)), _mm256_castps_si256(n))
        let big = _mm256_cmpgt_epi32(absN, _mm256_castps_si256(_mm256_set1_ps(126)))
        if _mm256_movemask_ps(_mm256_castsi256_ps(big)) == 0 { return _mm256_fmadd_ps(j, k, k) }
        let nv = unsafeBitCast(n, to: SIMD8<Float>.self), jv = unsafeBitCast(j, to: SIMD8<Float>.self)
        let kv = unsafeBitCast(k, to: SIMD8<Float>.self), ev = unsafeBitCast(e, to: SIMD8<UInt32>.self)
        var out = SIMD8<Float>()
        for l in 0..<8 {
            let nl = nv[l]
            guard abs(nl) > 126 else {
                out[l] = kv[l].addingProduct(jv[l], kv[l])
                continue
            }
            let g: UInt32 = nl <= 0 ? 0x8200_0000 : 0
            let s1 = Float(bitPattern: g &+ 0x7f00_0000), s2 = Float(bitPattern: ev[l] &- g)
            out[l] = abs(nl) > 192 ? s1 * s1 : s2.addingProduct(s2, jv[l]) * s1
        }
        return unsafeBitCast(out, to: __m256.self)
    }

    /// SwiGLU in place: gate[i] = gate[i] / (1 + e^−gate[i]) · up[i]. The last count % 8
    /// values go through the same 8-lane code (padded), so every element's result is the same
    /// wherever it sits in the array (a batch of tokens or one token).
    public static func siluMul(gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int) {
        @inline(__always) func silu8(_ g: __m256, _ u: __m256) -> __m256 {
            let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g))
            return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(e, _mm256_set1_ps(1))), u)
        }
        var i = 0
        while i + 8 <= count {
            let g = UnsafeRawPointer(gate + i).loadUnaligned(as: __m256.self)
            let u = UnsafeRawPointer(up + i).loadUnaligned(as: __m256.self)
            UnsafeMutableRawPointer(gate + i).storeBytes(of: silu8(g, u), as: __m256.self)
            i += 8
        }
        guard i < count else { return }
        var g = [Float](repeating: 0, count: 8), u = g
        for k in i..<count { g[k - i] = gate[k]; u[k - i] = up[k] }
        let out = g.withUnsafeBytes { gp in u.withUnsafeBytes { up in silu8(gp.loadUnaligned(as: __m256.self), up.loadUnaligned(as: __m256.self)) } }
        withUnsafeBytes(of: out) { o in for k in i..<count { gate[k] = o.load(fromByteOffset: 4 * (k - i), as: Float.self) } }
    }
}
#endif
