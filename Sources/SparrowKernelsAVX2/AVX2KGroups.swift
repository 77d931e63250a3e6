// AVX2 kernels for Q4_K and Q6_K weights against two or more tokens (batched decode,
// prefill). Eight rows, read in place in the ggml layout, are transposed on the fly so that
// each 32-bit lane holds one row's four consecutive quants — `AVX2Interleaved`'s layout,
// without repacking the weights. A superblock's 8 × 256 quants are unpacked once into L1 and
// used by every token; per 32 values the integer products of all eight rows land in one
// vector, so the sub-block scale product (`vpmaddwd`), the f32 conversion and the FMAs run
// once per eight rows instead of once per row, and nothing is summed horizontally.
//
// Arithmetic per row and superblock, the same as the one-row kernels `AVX2Dot.q4_KFolded` and
// `AVX2Dot.q6_K` (so a token's result does not depend on how many tokens share the call):
//   Q4_K: isum = Σ_s sc_s·Σ q·a and imin = Σ_s m_s·Σ a over the 8 sub-blocks (exact int32);
//         acc += fma(isum, d·d_a, imin·−(dmin·d_a)) (one add on the accumulator's chain)
//   Q6_K: isum = Σ_s sc_s·Σ q·a − 32·Σ_s sc_s·Σ a over the 16 sub-blocks (exact int32);
//         acc = fma(isum, d·d_a, acc)
// where d_a is the token's Q8_K scale and a its quants.

#if arch(x86_64)
import _Builtin_intrinsics.intel

extension AVX2Dot {
    public typealias V8 = (__m256i, __m256i, __m256i, __m256i, __m256i, __m256i, __m256i, __m256i)

    /// The 32 bytes at `p + r·stride` for r = 0..<8.
    @inlinable @inline(__always)
    static func load8(_ p: UnsafeRawPointer, _ stride: Int) -> V8 {
        (load256(p), load256(p + stride), load256(p + 2 * stride), load256(p + 3 * stride),
         load256(p + 4 * stride), load256(p + 5 * stride), load256(p + 6 * stride), load256(p + 7 * stride))
    }

    /// An 8 × 8 transpose of 32-bit words: lane r of result k = word k of v.r.
    @inlinable @inline(__always)
    static func transpose8(_ v: V8) -> V8 {
        let t0 = _mm256_unpacklo_epi32(v.0, v.1), t1 = _mm256_unpackhi_epi32(v.0, v.1)
        let t2 = _mm256_unpacklo_epi32(v.2, v.3), t3 = _mm256_unpackhi_epi32(v.2, v.3)
        let t4 = _mm256_unpacklo_epi32(v.4, v.5), t5 = _mm256_unpackhi_epi32(v.4, v.5)
        let t6 = _mm256_unpacklo_epi32(v.6, v.7), t7 = _mm256_unpackhi_epi32(v.6, v.7)
        let u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2)
        let u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3)
        let u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6)
        let u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7)
        return (join(lo128(u0), lo128(u4)), join(lo128(u1), lo128(u5)), join(lo128(u2), lo128(u6)), join(lo128(u3), lo128(u7)),
                join(hi128(u0), hi128(u4)), join(hi128(u1), hi128(u5)), join(hi128(u2), hi128(u6)), join(hi128(u3), hi128(u7)))
    }

    /// `vpshufb` masks that copy the low (`dupLow`) or high (`dupHigh`) 16 bits of each 32-bit
    /// lane into both halves: a lane holding (s0, s1) becomes (s0, s0) or (s1, s1).
    @inline(__always)
    static var dupLow: __m256i {
        _mm256_setr_epi32(0x0100_0100, 0x0504_0504, 0x0908_0908, 0x0D0C_0D0C, 0x0100_0100, 0x0504_0504, 0x0908_0908, 0x0D0C_0D0C)
    }
    @inline(__always)
    static var dupHigh: __m256i {
        _mm256_setr_epi32(0x0302_0302, 0x0706_0706, 0x0B0A_0B0A, 0x0F0E_0F0E, 0x0302_0302, 0x0706_0706, 0x0B0A_0B0A, 0x0F0E_0F0E)
    }

    /// A `vpshufb` mask that makes each 32-bit lane (a, b) as two i16: a = byte `a` of the
    /// lane, b = byte `b` (zero-extended; a constant for literal arguments).
    @inlinable @inline(__always)
    static func byteMask(_ a: Int, _ b: Int) -> __m256i {
        @inline(__always) func lane(_ m: Int) -> Int32 { Int32(4 * m + a) | 0x80 << 8 | Int32(4 * m + b) << 16 | Int32(bitPattern: 0x8000_0000) }
        return _mm256_setr_epi32(lane(0), lane(1), lane(2), lane(3), lane(0), lane(1), lane(2), lane(3))
    }

    /// 32-bit word `k` of `v` in every lane.
    @inlinable @inline(__always)
    static func broadcastWord(_ v: __m128i, _ k: Int) -> __m256i {
        _mm256_set1_epi32(unsafeBitCast(v, to: SIMD4<Int32>.self)[k])
    }

    /// The f16 at byte `offset` of each of 8 rows (`stride` apart) as f32 lanes.
    @inlinable @inline(__always)
    static func halves8(_ p: UnsafeRawPointer, _ stride: Int, _ offset: Int) -> __m256 {
        @inline(__always) func h(_ r: Int) -> Int16 { p.loadUnaligned(fromByteOffset: r * stride + offset, as: Int16.self) }
        return _mm256_cvtph_ps(_mm_setr_epi16(h(0), h(1), h(2), h(3), h(4), h(5), h(6), h(7)))
    }

    /// Bytes of scratch memory `q4_KGroup8` and `q6_KGroup8` need for `nTokens` tokens
    /// (64 unpacked quant vectors, then an integer and a float accumulator per token).
    public static func kGroupScratchBytes(nTokens: Int) -> Int { 64 * 32 + 64 * nTokens }

    /// Superblocks ahead of the current one that the group kernels prefetch in each row (at the
    /// end of a row this reaches into the next, and for the last row into the next group).
    @inlinable static var kGroupPrefetchBlocks: Int { 2 }

    /// Eight Q4_K rows (`rowBytes` apart, `blocks` superblocks each) × `nTokens` Q8_K rows
    /// (`actRowBytes` apart): y[t·yStride + r] for r = 0..<8.
    /// - scratch: `kGroupScratchBytes(nTokens)` bytes, 32-byte aligned
    public static func q4_KGroup8(_ x: UnsafeRawPointer, rowBytes: Int, blocks: Int, act: UnsafeRawPointer, actRowBytes: Int,
                                  nTokens: Int, scratch: UnsafeMutableRawPointer, y: UnsafeMutablePointer<Float>, yStride: Int) {
        q4_KGroup8(AVX2KDot.self, x, rowBytes: rowBytes, blocks: blocks, act: act, actRowBytes: actRowBytes, nTokens: nTokens,
                   scratch: scratch, y: y, yStride: yStride)
    }

    /// `q4_KGroup8` with the products formed by `D`, specialised in the module that calls it
    /// (which must be compiled for `D`'s instructions).
    @inlinable @inline(__always)
    public static func q4_KGroup8<D: KGroupDot>(_: D.Type, _ x: UnsafeRawPointer, rowBytes: Int, blocks: Int, act: UnsafeRawPointer,
                                                actRowBytes: Int, nTokens: Int, scratch: UnsafeMutableRawPointer,
                                                y: UnsafeMutablePointer<Float>, yStride: Int) {
        let q = scratch.bindMemory(to: __m256i.self, capacity: 64 + 2 * nTokens)  // quants: vector k of sub-block s at 8s + k
        let isum = q + 64
        let acc = UnsafeMutableRawPointer(isum + nTokens).assumingMemoryBound(to: __m256.self)
        let m4 = _mm256_set1_epi8(0x0F), sign = _mm256_set1_ps(-0.0)
        for t in 0..<nTokens { acc[t] = _mm256_setzero_ps() }
        for i in 0..<blocks {
            let xb = x + i * 144
            for r in 0..<8 { prefetchAhead(xb + r * rowBytes + kGroupPrefetchBlocks * 144, bytes: 144) }
            // The superblocks' first 16 bytes, one row per lane: h.0 = (d, dmin) f16, h.1…h.3 = the
            // 12 packed 6-bit scale and min bytes, unpacked for all eight rows at once as
            // `kQuantScalesAndMins` does for one: sc0 = scales 0–3, sc1 = scales 4–7, mn0 / mn1
            // = mins 0–3 / 4–7, a byte each.
            let h = transpose8(load8(xb, rowBytes))
            let m6 = _mm256_set1_epi32(0x3F3F_3F3F), m4x = _mm256_set1_epi32(0x0F0F_0F0F), m2 = _mm256_set1_epi32(0x0303_0303)
            let sc0 = _mm256_and_si256(h.1, m6), mn0 = _mm256_and_si256(h.2, m6)
            let sc1 = _mm256_or_si256(_mm256_and_si256(h.3, m4x), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h.1, 6), m2), 4))
            let mn1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(h.3, 4), m4x),
                                      _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h.2, 6), m2), 4))
            // d and dmin: the low and high halves of h.0's lanes, packed to 8 × f16 each.
            let dh = _mm256_shuffle_epi8(h.0, _mm256_setr_epi32(0x0504_0100, 0x0D0C_0908, 0x0706_0302, 0x0F0E_0B0A,
                                                                0x0504_0100, 0x0D0C_0908, 0x0706_0302, 0x0F0E_0B0A))
            let d = _mm256_cvtph_ps(_mm_unpacklo_epi64(lo128(dh), hi128(dh)))
            let dmin = _mm256_cvtph_ps(_mm_unpackhi_epi64(lo128(dh), hi128(dh)))
            // Chunk j's 32 bytes hold sub-block 2j in the low nibbles, 2j+1 in the high ones.
            @inline(__always) func unpack(_ j: Int) {
                let c = transpose8(load8(xb + 16 + 32 * j, rowBytes))
                let lo = q + 16 * j, hi = lo + 8
                @inline(__always) func put(_ k: Int, _ v: __m256i) {
                    lo[k] = _mm256_and_si256(v, m4)
                    hi[k] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4)
                }
                put(0, c.0); put(1, c.1); put(2, c.2); put(3, c.3); put(4, c.4); put(5, c.5); put(6, c.6); put(7, c.7)
            }
            unpack(0); unpack(1); unpack(2); unpack(3)
            for t in 0..<nTokens { isum[t] = _mm256_setzero_si256() }
            @inline(__always) func sub(_ s: Int, _ sc: __m256i) {
                let qs = q + 8 * s
                let v = (qs[0], qs[1], qs[2], qs[3], qs[4], qs[5], qs[6], qs[7])
                var a = act + i * 292 + 4 + 32 * s
                for t in 0..<nTokens {
                    isum[t] = _mm256_add_epi32(isum[t], D.q4Sub(v, a, sc))
                    a += actRowBytes
                }
            }
            sub(0, D.q4Scale(sc0, 0)); sub(1, D.q4Scale(sc0, 1)); sub(2, D.q4Scale(sc0, 2)); sub(3, D.q4Scale(sc0, 3))
            sub(4, D.q4Scale(sc1, 0)); sub(5, D.q4Scale(sc1, 1)); sub(6, D.q4Scale(sc1, 2)); sub(7, D.q4Scale(sc1, 3))
            // Lane r of mins j: row r's (min 2j, min 2j+1) as i16.
            let mins0 = _mm256_shuffle_epi8(mn0, byteMask(0, 1)), mins1 = _mm256_shuffle_epi8(mn0, byteMask(2, 3))
            let mins2 = _mm256_shuffle_epi8(mn1, byteMask(0, 1)), mins3 = _mm256_shuffle_epi8(mn1, byteMask(2, 3))
            var yb = act + i * 292
            for t in 0..<nTokens {
                // Σ a per 32 values (bsums are per 16) as (B 2j, B 2j+1) words, times the mins.
                let bs = load256(yb + 260)
                let b = _mm_hadd_epi16(lo128(bs), hi128(bs))
                let imin = _mm256_add_epi32(
                    _mm256_add_epi32(_mm256_madd_epi16(mins0, broadcastWord(b, 0)), _mm256_madd_epi16(mins1, broadcastWord(b, 1))),
                    _mm256_add_epi32(_mm256_madd_epi16(mins2, broadcastWord(b, 2)), _mm256_madd_epi16(mins3, broadcastWord(b, 3))))
                let da = _mm256_broadcast_ss(yb.assumingMemoryBound(to: Float.self))
                let m = _mm256_mul_ps(_mm256_cvtepi32_ps(imin), _mm256_xor_ps(_mm256_mul_ps(dmin, da), sign))
                acc[t] = _mm256_add_ps(acc[t], _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_mul_ps(d, da), m))
                yb += actRowBytes
            }
        }
        for t in 0..<nTokens { UnsafeMutableRawPointer(y + t * yStride).storeBytes(of: acc[t], as: __m256.self) }
    }

    /// Eight Q6_K rows (`rowBytes` apart, `blocks` superblocks each) × `nTokens` Q8_K rows
    /// (`actRowBytes` apart): y[t·yStride + r] for r = 0..<8.
    /// - scratch: `kGroupScratchBytes(nTokens)` bytes, 32-byte aligned
    public static func q6_KGroup8(_ x: UnsafeRawPointer, rowBytes: Int, blocks: Int, act: UnsafeRawPointer, actRowBytes: Int,
                                  nTokens: Int, scratch: UnsafeMutableRawPointer, y: UnsafeMutablePointer<Float>, yStride: Int) {
        q6_KGroup8(AVX2KDot.self, x, rowBytes: rowBytes, blocks: blocks, act: act, actRowBytes: actRowBytes, nTokens: nTokens,
                   scratch: scratch, y: y, yStride: yStride)
    }

    /// `q6_KGroup8` with the products formed by `D`, specialised in the module that calls it
    /// (which must be compiled for `D`'s instructions).
    @inlinable @inline(__always)
    public static func q6_KGroup8<D: KGroupDot>(_: D.Type, _ x: UnsafeRawPointer, rowBytes: Int, blocks: Int, act: UnsafeRawPointer,
                                                actRowBytes: Int, nTokens: Int, scratch: UnsafeMutableRawPointer,
                                                y: UnsafeMutablePointer<Float>, yStride: Int) {
        let q = scratch.bindMemory(to: __m256i.self, capacity: 64 + 2 * nTokens)  // quants: values 4v..<4v+4 at v
        let isum = q + 64
        let acc = UnsafeMutableRawPointer(isum + nTokens).assumingMemoryBound(to: __m256.self)
        let m3 = _mm256_set1_epi8(3), m15 = _mm256_set1_epi8(15), m12 = _mm256_set1_epi8(12)
        let m48 = _mm256_set1_epi8(48), m192 = _mm256_set1_epi8(-64)
        for t in 0..<nTokens { acc[t] = _mm256_setzero_ps() }
        for i in 0..<blocks {
            let xb = x + i * 210
            for r in 0..<8 { prefetchAhead(xb + r * rowBytes + kGroupPrefetchBlocks * 210, bytes: 210) }
            let d = halves8(xb, rowBytes, 208)
            // Lane r of w.j: row r's (scale 2j, scale 2j+1) as i16 (16 values per scale).
            @inline(__always) func sc(_ r: Int) -> __m256i { _mm256_cvtepi8_epi16(load128(xb + r * rowBytes + 192)) }
            let w = transpose8((sc(0), sc(1), sc(2), sc(3), sc(4), sc(5), sc(6), sc(7)))
            // Half j (128 values): ql bytes 64j..<64j+64 hold values l and 64+l (bytes l < 32)
            // and 32+l and 96+l (bytes 32+l) in their low and high nibbles; qh byte 32j+l holds
            // bits 4–5 of values l, 32+l, 64+l, 96+l in bit pairs 0, 2, 4, 6.
            @inline(__always) func unpack(_ j: Int) {
                let l1 = transpose8(load8(xb + 64 * j, rowBytes))
                let l2 = transpose8(load8(xb + 64 * j + 32, rowBytes))
                let h = transpose8(load8(xb + 128 + 32 * j, rowBytes))
                let v = q + 32 * j
                @inline(__always) func put(_ k: Int, _ a: __m256i, _ b: __m256i, _ h: __m256i) {
                    v[k] = _mm256_or_si256(_mm256_and_si256(a, m15), _mm256_slli_epi16(_mm256_and_si256(h, m3), 4))
                    v[8 + k] = _mm256_or_si256(_mm256_and_si256(b, m15), _mm256_slli_epi16(_mm256_and_si256(h, m12), 2))
                    v[16 + k] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), m15), _mm256_and_si256(h, m48))
                    v[24 + k] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b, 4), m15),
                                                _mm256_srli_epi16(_mm256_and_si256(h, m192), 2))
                }
                put(0, l1.0, l2.0, h.0); put(1, l1.1, l2.1, h.1); put(2, l1.2, l2.2, h.2); put(3, l1.3, l2.3, h.3)
                put(4, l1.4, l2.4, h.4); put(5, l1.5, l2.5, h.5); put(6, l1.6, l2.6, h.6); put(7, l1.7, l2.7, h.7)
            }
            unpack(0); unpack(1)
            for t in 0..<nTokens { isum[t] = _mm256_setzero_si256() }
            // 32 values (sub-blocks 2c and 2c+1, vectors 8c..<8c+8).
            @inline(__always) func chunk(_ c: Int, _ pair: __m256i) {
                let qs = q + 8 * c
                let v = (qs[0], qs[1], qs[2], qs[3], qs[4], qs[5], qs[6], qs[7])
                let (s0, s1) = D.q6Scales(pair)
                var a = act + i * 292 + 4 + 32 * c
                for t in 0..<nTokens {
                    isum[t] = _mm256_add_epi32(isum[t], D.q6Chunk(v, a, s0, s1))
                    a += actRowBytes
                }
            }
            chunk(0, w.0); chunk(1, w.1); chunk(2, w.2); chunk(3, w.3); chunk(4, w.4); chunk(5, w.5); chunk(6, w.6); chunk(7, w.7)
            var yb = act + i * 292
            for t in 0..<nTokens {
                // 32·Σ_s sc_s·Σ a, the quants' −32 offset (bsums are per 16 values, one per scale).
                // (bsum 2j, bsum 2j+1) broadcast straight from memory.
                @inline(__always) func b(_ j: Int) -> __m256i { _mm256_set1_epi32(yb.loadUnaligned(fromByteOffset: 260 + 4 * j, as: Int32.self)) }
                let off = _mm256_add_epi32(
                    _mm256_add_epi32(_mm256_add_epi32(_mm256_madd_epi16(w.0, b(0)), _mm256_madd_epi16(w.1, b(1))),
                                     _mm256_add_epi32(_mm256_madd_epi16(w.2, b(2)), _mm256_madd_epi16(w.3, b(3)))),
                    _mm256_add_epi32(_mm256_add_epi32(_mm256_madd_epi16(w.4, b(4)), _mm256_madd_epi16(w.5, b(5))),
                                     _mm256_add_epi32(_mm256_madd_epi16(w.6, b(6)), _mm256_madd_epi16(w.7, b(7)))))
                let s = _mm256_sub_epi32(isum[t], _mm256_slli_epi32(off, 5))
                let da = _mm256_broadcast_ss(yb.assumingMemoryBound(to: Float.self))
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(d, da), acc[t])
                yb += actRowBytes
            }
        }
        for t in 0..<nTokens { UnsafeMutableRawPointer(y + t * yStride).storeBytes(of: acc[t], as: __m256.self) }
    }
}

/// How the group kernels form the scaled integer products of eight rows' unsigned quants (one
/// row per 32-bit lane, 4 quants each) with a token's signed activation bytes: `AVX2KDot`
/// with `vpmaddubsw` pair sums, `VNNIKDot` (SparrowKernelsVNNI) with `vpdpbusd`. Both give the
/// same exact integers, so the kernels' results do not depend on which one runs.
public protocol KGroupDot {
    /// Q4_K: sub-block scale `k` (0…3) of `sc` (four 6-bit scales per lane, a byte each) in
    /// the form `q4Sub` takes.
    static func q4Scale(_ sc: __m256i, _ k: Int) -> __m256i
    /// Q4_K: scale × Σ over 32 values of q·a (q ≤ 15), q = vectors 0…7, a = 32 bytes at `a`.
    static func q4Sub(_ q: AVX2Dot.V8, _ a: UnsafeRawPointer, _ scale: __m256i) -> __m256i
    /// Q6_K: the scales (2j, 2j+1), two i16 per lane, in the form `q6Chunk` takes.
    static func q6Scales(_ pair: __m256i) -> (__m256i, __m256i)
    /// Q6_K: s0 × Σ over values 0..<16 + s1 × Σ over 16..<32 of q·a (q ≤ 63).
    static func q6Chunk(_ q: AVX2Dot.V8, _ a: UnsafeRawPointer, _ s0: __m256i, _ s1: __m256i) -> __m256i
}

/// `KGroupDot` in AVX2: `vpmaddubsw` pair sums added in 16 bits as far as they stay exact,
/// then `vpmaddwd` by the scale (an i16 pair per lane).
public enum AVX2KDot: KGroupDot {
    @inline(__always)
    static func m(_ q: __m256i, _ a: UnsafeRawPointer, _ k: Int) -> __m256i {
        _mm256_maddubs_epi16(q, _mm256_set1_epi32(a.loadUnaligned(fromByteOffset: 4 * k, as: Int32.self)))
    }

    @inline(__always)
    public static func q4Scale(_ sc: __m256i, _ k: Int) -> __m256i { _mm256_shuffle_epi8(sc, AVX2Dot.byteMask(k, k)) }

    /// |q·a| ≤ 15·127: the 16 products behind each 16-bit lane stay below 2^15.
    @inline(__always)
    public static func q4Sub(_ q: AVX2Dot.V8, _ a: UnsafeRawPointer, _ scale: __m256i) -> __m256i {
        let s = _mm256_add_epi16(_mm256_add_epi16(_mm256_add_epi16(m(q.0, a, 0), m(q.1, a, 1)), _mm256_add_epi16(m(q.2, a, 2), m(q.3, a, 3))),
                                 _mm256_add_epi16(_mm256_add_epi16(m(q.4, a, 4), m(q.5, a, 5)), _mm256_add_epi16(m(q.6, a, 6), m(q.7, a, 7))))
        return _mm256_madd_epi16(s, scale)
    }

    @inline(__always)
    public static func q6Scales(_ pair: __m256i) -> (__m256i, __m256i) {
        (_mm256_shuffle_epi8(pair, AVX2Dot.dupLow), _mm256_shuffle_epi8(pair, AVX2Dot.dupHigh))
    }

    /// q ≤ 63: two `vpmaddubsw` results (4 products of ≤ 63·127 per 16-bit lane) stay below
    /// 2^15, four would not.
    @inline(__always)
    public static func q6Chunk(_ q: AVX2Dot.V8, _ a: UnsafeRawPointer, _ s0: __m256i, _ s1: __m256i) -> __m256i {
        let p0 = _mm256_madd_epi16(_mm256_add_epi16(m(q.0, a, 0), m(q.1, a, 1)), s0)
        let p1 = _mm256_madd_epi16(_mm256_add_epi16(m(q.2, a, 2), m(q.3, a, 3)), s0)
        let p2 = _mm256_madd_epi16(_mm256_add_epi16(m(q.4, a, 4), m(q.5, a, 5)), s1)
        let p3 = _mm256_madd_epi16(_mm256_add_epi16(m(q.6, a, 6), m(q.7, a, 7)), s1)
        return _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3))
    }
}
#endif
