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

    /// 32-bit words w ..< w + 8 of eight rows' superblocks at `xb`, one row per lane: transposed
    /// from rows `rowBytes` apart, or loaded from a packed group block (`Interleaved`: word w of
    /// row r at 32w + 4r).
    @inlinable @inline(__always)
    static func groupWords(_ xb: UnsafeRawPointer, _ rowBytes: Int, _ w: Int, packed: Bool) -> V8 {
        guard packed else { return transpose8(load8(xb + 4 * w, rowBytes)) }
        let p = xb + 32 * w
        return (load256(p), load256(p + 32), load256(p + 64), load256(p + 96),
                load256(p + 128), load256(p + 160), load256(p + 192), load256(p + 224))
    }

    /// Eight words of eight rows (`rowBytes` apart) transposed: word w of row r to byte
    /// 32w + 4r of `dst` (`Interleaved`'s K-quant repack, one `transpose8`).
    public static func transposeWords8(_ src: UnsafeRawPointer, rowBytes: Int, into p: UnsafeMutableRawPointer) {
        let t = transpose8(load8(src, rowBytes))
        p.storeBytes(of: t.0, as: __m256i.self); (p + 32).storeBytes(of: t.1, as: __m256i.self)
        (p + 64).storeBytes(of: t.2, as: __m256i.self); (p + 96).storeBytes(of: t.3, as: __m256i.self)
        (p + 128).storeBytes(of: t.4, as: __m256i.self); (p + 160).storeBytes(of: t.5, as: __m256i.self)
        (p + 192).storeBytes(of: t.6, as: __m256i.self); (p + 224).storeBytes(of: t.7, as: __m256i.self)
    }

    /// Where word `w` (0…51) of a Q6_K superblock sits in a packed group block (`Interleaved`):
    /// in the order the group kernel reads them — scales (48…51), ql 0…15, qh 32…39, ql 16…31,
    /// qh 40…47 — so a block streams front to back, each run of eight words contiguous.
    @inlinable @inline(__always)
    public static func q6PackedWord(_ w: Int) -> Int {
        w >= 48 ? w - 48 : w < 16 ? 4 + w : w < 32 ? 12 + w : w < 40 ? w - 12 : w + 4
    }

    /// Bytes of scratch memory `q4_KGroup8` and `q6_KGroup8` need for `nTokens` tokens
    /// (64 unpacked quant vectors, then an integer and a float accumulator per token).
    public static func kGroupScratchBytes(nTokens: Int) -> Int { 64 * 32 + 64 * nTokens }

    /// Prefetches a packed (repacked) group block twice `AVX2Tiles.prefetchDistance` ahead of
    /// `xb`: packed groups consume bytes faster than the row kernels, so the same memory latency
    /// needs more in flight (Qwen2.5-Coder-1.5B decode, Zen 5, three rounds: 48.8 tok/s at 4 KB,
    /// 53.5 at 8 KB).
    @inlinable @inline(__always)
    static func prefetchPackedGroup(_ xb: UnsafeRawPointer, bytes: Int) {
        prefetchAhead(xb + AVX2Tiles.prefetchDistance, bytes: bytes)
    }

    /// Superblocks ahead of the current one that the group kernels prefetch in each row (at the
    /// end of a row this reaches into the next, and for the last row into the next group).
    @inlinable static var kGroupPrefetchBlocks: Int { 2 }

    /// Eight Q4_K rows (`rowBytes` apart, `blocks` superblocks each) × `nTokens` Q8_K rows
    /// (`actRowBytes` apart): y[t·yStride + r] for r = 0..<8.
    /// - scratch: `kGroupScratchBytes(nTokens)` bytes, 32-byte aligned
    /// - packed: the rows are one group of the interleaved layout (`Interleaved`: 1152-byte
    ///   group blocks, already transposed; `rowBytes` unused), any token count
    public static func q4_KGroup8(_ x: UnsafeRawPointer, rowBytes: Int, blocks: Int, act: UnsafeRawPointer, actRowBytes: Int,
                                  nTokens: Int, scratch: UnsafeMutableRawPointer, y: UnsafeMutablePointer<Float>, yStride: Int,
                                  packed: Bool) {
        q4_KGroup8(AVX2KDot.self, x, rowBytes: rowBytes, blocks: blocks, act: act, actRowBytes: actRowBytes, nTokens: nTokens,
                   scratch: scratch, y: y, yStride: yStride, packed: packed)
    }

    /// `q4_KGroup8` with the products formed by `D`, specialised in the module that calls it
    /// (which must be compiled for `D`'s instructions).
    @inlinable @inline(__always)
    public static func q4_KGroup8<D: KGroupDot>(_: D.Type, _ x: UnsafeRawPointer, rowBytes: Int, blocks: Int, act: UnsafeRawPointer,
                                                actRowBytes: Int, nTokens: Int, scratch: UnsafeMutableRawPointer,
                                                y: UnsafeMutablePointer<Float>, yStride: Int, packed: Bool) {
        let q = scratch.bindMemory(to: __m256i.self, capacity: 64 + 2 * nTokens)  // quants: vector k of sub-block s at 8s + k
        let isum = q + 64
        let acc = UnsafeMutableRawPointer(isum + nTokens).assumingMemoryBound(to: __m256.self)
        let m4 = _mm256_set1_epi8(0x0F), sign = _mm256_set1_ps(-0.0)
        for t in 0..<nTokens { acc[t] = _mm256_setzero_ps() }
        for i in 0..<blocks {
            // Word w of the eight rows' superblocks: transposed here, or stored so (packed).
            let xb = x + i * (packed ? 8 * 144 : 144)
            @inline(__always) func words(_ w: Int) -> V8 { groupWords(xb, rowBytes, w, packed: packed) }
            if packed {
                prefetchPackedGroup(xb, bytes: 8 * 144)
            } else {
                for r in 0..<8 { prefetchAhead(xb + r * rowBytes + kGroupPrefetchBlocks * 144, bytes: 144) }
            }
            // The superblocks' first 16 bytes, one row per lane: h.0 = (d, dmin) f16, h.1…h.3 = the
            // 12 packed 6-bit scale and min bytes, unpacked for all eight rows at once as
            // `kQuantScalesAndMins` does for one: sc0 = scales 0–3, sc1 = scales 4–7, mn0 / mn1
            // = mins 0–3 / 4–7, a byte each.
            let h: (__m256i, __m256i, __m256i, __m256i)
            if packed {
                h = (load256(xb), load256(xb + 32), load256(xb + 64), load256(xb + 96))
            } else {
                let t = transpose8(load8(xb, rowBytes))
                h = (t.0, t.1, t.2, t.3)
            }
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
            // Chunk j's 32 bytes (words 4 + 8j …) hold sub-block 2j in the low nibbles, 2j+1 in
            // the high ones.
            @inline(__always) func low(_ c: V8) -> V8 {
                (_mm256_and_si256(c.0, m4), _mm256_and_si256(c.1, m4), _mm256_and_si256(c.2, m4), _mm256_and_si256(c.3, m4),
                 _mm256_and_si256(c.4, m4), _mm256_and_si256(c.5, m4), _mm256_and_si256(c.6, m4), _mm256_and_si256(c.7, m4))
            }
            @inline(__always) func high(_ c: V8) -> V8 {
                low((_mm256_srli_epi16(c.0, 4), _mm256_srli_epi16(c.1, 4), _mm256_srli_epi16(c.2, 4), _mm256_srli_epi16(c.3, 4),
                     _mm256_srli_epi16(c.4, 4), _mm256_srli_epi16(c.5, 4), _mm256_srli_epi16(c.6, 4), _mm256_srli_epi16(c.7, 4)))
            }
            let scales = (D.q4Scale(sc0, 0), D.q4Scale(sc0, 1), D.q4Scale(sc0, 2), D.q4Scale(sc0, 3),
                          D.q4Scale(sc1, 0), D.q4Scale(sc1, 1), D.q4Scale(sc1, 2), D.q4Scale(sc1, 3))
            if nTokens == 1 {
                // Decode: each chunk's quants straight into the products, no scratch round trip.
                let a = act + i * 292 + 4
                @inline(__always) func chunk(_ j: Int, _ s0: __m256i, _ s1: __m256i) -> __m256i {
                    let c = words(4 + 8 * j)
                    return _mm256_add_epi32(D.q4Sub(low(c), a + 64 * j, s0), D.q4Sub(high(c), a + 64 * j + 32, s1))
                }
                isum[0] = _mm256_add_epi32(_mm256_add_epi32(chunk(0, scales.0, scales.1), chunk(1, scales.2, scales.3)),
                                           _mm256_add_epi32(chunk(2, scales.4, scales.5), chunk(3, scales.6, scales.7)))
            } else {
                // Unpacked once into L1 for every token.
                @inline(__always) func unpack(_ j: Int) {
                    let c = words(4 + 8 * j)
                    let lo = low(c), hi = high(c), v = q + 16 * j
                    v[0] = lo.0; v[1] = lo.1; v[2] = lo.2; v[3] = lo.3; v[4] = lo.4; v[5] = lo.5; v[6] = lo.6; v[7] = lo.7
                    v[8] = hi.0; v[9] = hi.1; v[10] = hi.2; v[11] = hi.3; v[12] = hi.4; v[13] = hi.5; v[14] = hi.6; v[15] = hi.7
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
                sub(0, scales.0); sub(1, scales.1); sub(2, scales.2); sub(3, scales.3)
                sub(4, scales.4); sub(5, scales.5); sub(6, scales.6); sub(7, scales.7)
            }
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
    /// - packed: the rows are one group of the interleaved layout (`Interleaved`: 1680-byte
    ///   group blocks, already transposed; `rowBytes` unused), any token count
    public static func q6_KGroup8(_ x: UnsafeRawPointer, rowBytes: Int, blocks: Int, act: UnsafeRawPointer, actRowBytes: Int,
                                  nTokens: Int, scratch: UnsafeMutableRawPointer, y: UnsafeMutablePointer<Float>, yStride: Int,
                                  packed: Bool) {
        q6_KGroup8(AVX2KDot.self, x, rowBytes: rowBytes, blocks: blocks, act: act, actRowBytes: actRowBytes, nTokens: nTokens,
                   scratch: scratch, y: y, yStride: yStride, packed: packed)
    }

    /// `q6_KGroup8` with the products formed by `D`, specialised in the module that calls it
    /// (which must be compiled for `D`'s instructions).
    @inlinable @inline(__always)
    public static func q6_KGroup8<D: KGroupDot>(_: D.Type, _ x: UnsafeRawPointer, rowBytes: Int, blocks: Int, act: UnsafeRawPointer,
                                                actRowBytes: Int, nTokens: Int, scratch: UnsafeMutableRawPointer,
                                                y: UnsafeMutablePointer<Float>, yStride: Int, packed: Bool) {
        let q = scratch.bindMemory(to: __m256i.self, capacity: 64 + 2 * nTokens)  // quants: values 4v..<4v+4 at v
        let isum = q + 64
        let acc = UnsafeMutableRawPointer(isum + nTokens).assumingMemoryBound(to: __m256.self)
        let m3 = _mm256_set1_epi8(3), m15 = _mm256_set1_epi8(15), m12 = _mm256_set1_epi8(12)
        let m48 = _mm256_set1_epi8(48), m192 = _mm256_set1_epi8(-64)
        for t in 0..<nTokens { acc[t] = _mm256_setzero_ps() }
        for i in 0..<blocks {
            // Words 0…51 (ql, qh, scales) of the eight rows' superblocks: transposed here, or
            // stored so (packed, in `q6PackedWord` order, then the eight f16 d at 1664).
            let xb = x + i * (packed ? 8 * 210 : 210)
            @inline(__always) func words(_ w: Int) -> V8 { groupWords(xb, rowBytes, packed ? q6PackedWord(w) : w, packed: packed) }
            let d: __m256
            // Lane r of w.j: row r's (scale 2j, scale 2j+1) as i16 (16 values per scale).
            let w: V8
            if packed {
                prefetchPackedGroup(xb, bytes: 8 * 210)
                d = _mm256_cvtph_ps(load128(xb + 1664))
                // Word k (48 + k) holds scales 4k…4k+3: each pair moved to the high bytes of two
                // i16 and shifted down, sign-extending.
                @inline(__always) func pairs(_ v: __m256i, _ b: Int) -> __m256i {
                    @inline(__always) func lane(_ m: Int) -> Int32 { Int32(4 * m + b) << 8 | Int32(4 * m + b + 1) << 24 | 0x0080_0080 }
                    return _mm256_srai_epi16(_mm256_shuffle_epi8(v, _mm256_setr_epi32(lane(0), lane(1), lane(2), lane(3),
                                                                                     lane(0), lane(1), lane(2), lane(3))), 8)
                }
                let s0 = load256(xb), s1 = load256(xb + 32), s2 = load256(xb + 64), s3 = load256(xb + 96)  // words 48…51
                w = (pairs(s0, 0), pairs(s0, 2), pairs(s1, 0), pairs(s1, 2), pairs(s2, 0), pairs(s2, 2), pairs(s3, 0), pairs(s3, 2))
            } else {
                for r in 0..<8 { prefetchAhead(xb + r * rowBytes + kGroupPrefetchBlocks * 210, bytes: 210) }
                d = halves8(xb, rowBytes, 208)
                @inline(__always) func sc(_ r: Int) -> __m256i { _mm256_cvtepi8_epi16(load128(xb + r * rowBytes + 192)) }
                w = transpose8((sc(0), sc(1), sc(2), sc(3), sc(4), sc(5), sc(6), sc(7)))
            }
            // Half j (128 values): ql bytes 64j..<64j+64 hold values l and 64+l (bytes l < 32)
            // and 32+l and 96+l (bytes 32+l) in their low and high nibbles; qh byte 32j+l holds
            // bits 4–5 of values l, 32+l, 64+l, 96+l in bit pairs 0, 2, 4, 6. Its four 32-value
            // chunks (c = 4j + m) as vectors k = 0…7 each.
            @inline(__always) func quants(_ j: Int) -> (V8, V8, V8, V8) {
                let l1 = words(16 * j), l2 = words(16 * j + 8), h = words(32 + 8 * j)
                @inline(__always) func v(_ f: (__m256i, __m256i, __m256i) -> __m256i) -> V8 {
                    (f(l1.0, l2.0, h.0), f(l1.1, l2.1, h.1), f(l1.2, l2.2, h.2), f(l1.3, l2.3, h.3),
                     f(l1.4, l2.4, h.4), f(l1.5, l2.5, h.5), f(l1.6, l2.6, h.6), f(l1.7, l2.7, h.7))
                }
                return (v { a, _, h in _mm256_or_si256(_mm256_and_si256(a, m15), _mm256_slli_epi16(_mm256_and_si256(h, m3), 4)) },
                        v { _, b, h in _mm256_or_si256(_mm256_and_si256(b, m15), _mm256_slli_epi16(_mm256_and_si256(h, m12), 2)) },
                        v { a, _, h in _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), m15), _mm256_and_si256(h, m48)) },
                        v { _, b, h in _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b, 4), m15),
                                                       _mm256_srli_epi16(_mm256_and_si256(h, m192), 2)) })
            }
            @inline(__always) func pair(_ c: Int) -> __m256i {
                switch c {
                case 0: w.0
                case 1: w.1
                case 2: w.2
                case 3: w.3
                case 4: w.4
                case 5: w.5
                case 6: w.6
                default: w.7
                }
            }
            if nTokens == 1 {
                // Decode: each chunk's quants straight into the products, no scratch round trip.
                let a = act + i * 292 + 4
                var sum = _mm256_setzero_si256()
                @inline(__always) func chunk(_ c: Int, _ v: V8) {
                    let (s0, s1) = D.q6Scales(pair(c))
                    sum = _mm256_add_epi32(sum, D.q6Chunk(v, a + 32 * c, s0, s1))
                }
                let h0 = quants(0)
                chunk(0, h0.0); chunk(1, h0.1); chunk(2, h0.2); chunk(3, h0.3)
                let h1 = quants(1)
                chunk(4, h1.0); chunk(5, h1.1); chunk(6, h1.2); chunk(7, h1.3)
                isum[0] = sum
            } else {
                // Unpacked once into L1 for every token.
                @inline(__always) func store(_ c: Int, _ v: V8) {
                    let p = q + 8 * c
                    p[0] = v.0; p[1] = v.1; p[2] = v.2; p[3] = v.3; p[4] = v.4; p[5] = v.5; p[6] = v.6; p[7] = v.7
                }
                let h0 = quants(0)
                store(0, h0.0); store(1, h0.1); store(2, h0.2); store(3, h0.3)
                let h1 = quants(1)
                store(4, h1.0); store(5, h1.1); store(6, h1.2); store(7, h1.3)
                for t in 0..<nTokens { isum[t] = _mm256_setzero_si256() }
                // 32 values (sub-blocks 2c and 2c+1, vectors 8c..<8c+8).
                @inline(__always) func chunk(_ c: Int) {
                    let qs = q + 8 * c
                    let v = (qs[0], qs[1], qs[2], qs[3], qs[4], qs[5], qs[6], qs[7])
                    let (s0, s1) = D.q6Scales(pair(c))
                    var a = act + i * 292 + 4 + 32 * c
                    for t in 0..<nTokens {
                        isum[t] = _mm256_add_epi32(isum[t], D.q6Chunk(v, a, s0, s1))
                        a += actRowBytes
                    }
                }
                chunk(0); chunk(1); chunk(2); chunk(3); chunk(4); chunk(5); chunk(6); chunk(7)
            }
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
