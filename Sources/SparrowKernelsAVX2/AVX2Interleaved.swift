// AVX2/FMA matrix kernels for Q5_0 and Q8_0 weights repacked eight rows side by side
// (`Interleaved` in SparrowKernels describes and builds the layout).
//
// In the ggml layout every row's 32-value block ends in eight int32 partial sums that must be
// converted, scaled and accumulated per row and token, then summed horizontally: about as
// much work as the integer products themselves. Eight rows interleaved four quants at a time
// put one row in each 32-bit lane: the integer products of a block land as eight rows' sums in
// one vector, so the conversion, the scale product and the FMA run once per eight rows and no
// horizontal sum is left. Per group of 8 rows and block (one "group block"):
//
//   Q5_0 (176 bytes = 8 × 22): d[8] f16 | 4 × 32 bytes of nibbles | 32 bytes of high bits
//     vector k (k = 0..7) holds quants 4k..4k+3 of each row, row r in bytes 4r..4r+3;
//     nibble chunk c holds vector c in its low nibbles and vector c+4 in its high nibbles;
//     bit k of high-bit byte 4r+j is bit 4 of row r's quant 4k+j. Quants stay unsigned
//     (0…31, value q − 16), so `vpmaddubsw` takes them directly and −16·Σa is added as an
//     integer, Σa being the activation block's quant sum (precomputed per token, `q8_0Sums`).
//   Q8_0 (272 bytes = 8 × 34): d[8] f16 | 8 × 32 bytes, vector k as above, signed.
//
// Weights are prefetched `AVX2Tiles.prefetchDistance` bytes ahead: the groups stream in address
// order, but the hardware prefetcher alone left one-token decode ~10% slower (10 alternating
// pairs, Qwen2.5-Coder-0.5B: 9 wins, median +14%).
//
// Per row and block the integer sum is exact, and each row accumulates
// `acc = fma(Float(sum), d_w · d_a, acc)` block after block, so a row's result does not depend
// on how many tokens a call computes (decode, batched decode and prefill agree bit for bit).

#if arch(x86_64)
import _Builtin_intrinsics.intel

/// The row-interleaved weight types.
public enum InterleavedType: Sendable {
    case q5_0, q8_0

    /// Bytes of one group block (8 rows × 32 values).
    public var groupBlockBytes: Int { self == .q5_0 ? 176 : 272 }
}

public enum AVX2Interleaved {
    /// The eight quant vectors of a group block (vector k: quants 4k..4k+3 of each row).
    public typealias Block = (__m256i, __m256i, __m256i, __m256i, __m256i, __m256i, __m256i, __m256i)

    /// One group of 8 rows against `nTokens` tokens: acc[t] += the rows' products, for the
    /// group's blocks at `wg` and the tokens' activations, scales and sums (`matmul`'s arguments
    /// offset to the group's first token): `q5_0Group` / `q8_0Group` here, or the `vpdpbusd`
    /// ones in `VNNIInterleaved` (the same integers).
    public typealias GroupKernel = (_ wg: UnsafeRawPointer, _ blocks: Int, _ act: UnsafeRawPointer, _ actRowBytes: Int,
                                    _ scales: UnsafePointer<Float>, _ scaleStride: Int, _ sums: UnsafePointer<Int32>?,
                                    _ sumStride: Int, _ nTokens: Int, _ acc: UnsafeMutablePointer<__m256>) -> Void

    @inline(__always)
    static func broadcast4(_ p: UnsafeRawPointer) -> __m256i {
        _mm256_set1_epi32(p.loadUnaligned(as: Int32.self))
    }

    @inlinable @inline(__always)
    public static func load(_ p: UnsafeRawPointer) -> __m256i { p.loadUnaligned(as: __m256i.self) }

    /// The eight rows' f16 scales of a group block as f32.
    @inlinable @inline(__always)
    public static func scales8(_ gb: UnsafeRawPointer) -> __m256 {
        _mm256_cvtph_ps(gb.loadUnaligned(as: __m128i.self))
    }

    /// A Q5_0 group block's quants as unsigned bytes (0…31, value q − 16).
    @inlinable @inline(__always)
    public static func q5_0Quants(_ gb: UnsafeRawPointer) -> Block {
        let low4 = _mm256_set1_epi8(0x0F), bit4 = _mm256_set1_epi8(0x10)
        let c0 = load(gb + 16), c1 = load(gb + 48), c2 = load(gb + 80), c3 = load(gb + 112), h = load(gb + 144)
        return (_mm256_or_si256(_mm256_and_si256(c0, low4), _mm256_and_si256(_mm256_slli_epi16(h, 4), bit4)),
                _mm256_or_si256(_mm256_and_si256(c1, low4), _mm256_and_si256(_mm256_slli_epi16(h, 3), bit4)),
                _mm256_or_si256(_mm256_and_si256(c2, low4), _mm256_and_si256(_mm256_slli_epi16(h, 2), bit4)),
                _mm256_or_si256(_mm256_and_si256(c3, low4), _mm256_and_si256(_mm256_slli_epi16(h, 1), bit4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c0, 4), low4), _mm256_and_si256(h, bit4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c1, 4), low4), _mm256_and_si256(_mm256_srli_epi16(h, 1), bit4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c2, 4), low4), _mm256_and_si256(_mm256_srli_epi16(h, 2), bit4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c3, 4), low4), _mm256_and_si256(_mm256_srli_epi16(h, 3), bit4)))
    }

    /// y[t·yStride + r] for the `groups` groups of 8 rows at `w` (each `blocks` group blocks)
    /// and tokens 0..<nTokens.
    /// - act: Q8_0 activation blocks (34 bytes: f16 d, 32 × i8), `actRowBytes` apart per token
    /// - scales: f32 activation scales, `scales[t·scaleStride + 2b]` = token t's block b d
    /// - sums: −16·Σ of each activation block's quants (Q5_0 only, `q8_0Sums`), `sums[t·sumStride + b]`
    public static func matmul(_ type: InterleavedType, _ w: UnsafeRawPointer, groups: Int, blocks: Int,
                              act: UnsafeRawPointer, actRowBytes: Int, scales: UnsafePointer<Float>, scaleStride: Int,
                              sums: UnsafePointer<Int32>?, sumStride: Int,
                              nTokens: Int, y: UnsafeMutablePointer<Float>, yStride: Int, kernel custom: GroupKernel? = nil) {
        let kernel: GroupKernel
        if let custom { kernel = custom } else if type == .q5_0 { kernel = q5_0Group } else { kernel = q8_0Group }
        guard groups > 0, nTokens > 0 else { return }
        // Each group block is unpacked once per chunk of tokens.
        let chunk = tokenChunk(nTokens: nTokens, actRowBytes: actRowBytes)
        withUnsafeTemporaryAllocation(of: __m256.self, capacity: chunk) { accBuffer in
            let acc = accBuffer.baseAddress!
            let groupBytes = blocks * type.groupBlockBytes
            var t0 = 0
            while t0 < nTokens {
                let n = min(chunk, nTokens - t0)
                for g in 0..<groups {
                    for t in 0..<n { acc[t] = _mm256_setzero_ps() }
                    let wg = w + g * groupBytes
                    let a0 = act + t0 * actRowBytes, s0 = scales + t0 * scaleStride
                    kernel(wg, blocks, a0, actRowBytes, s0, scaleStride, sums.map { $0 + t0 * sumStride }, sumStride, n, acc)
                    for t in 0..<n {
                        UnsafeMutableRawPointer(y + (t0 + t) * yStride + 8 * g).storeBytes(of: acc[t], as: __m256.self)
                    }
                }
                t0 += n
            }
        }
    }

    /// Tokens per pass over a group's blocks: as many as keep their activations (≤ 192 KB) in
    /// L2 while the group's blocks (a few KB) stay in L1.
    @inlinable @inline(__always)
    public static func tokenChunk(nTokens: Int, actRowBytes: Int) -> Int {
        max(1, min(nTokens, 196_608 / max(actRowBytes, 1)))
    }

    /// One group of 8 Q5_0 rows against `nTokens` tokens: acc[t] += the rows' products
    /// (a `GroupKernel`; `sums` required).
    public static func q5_0Group(_ wg: UnsafeRawPointer, blocks: Int, act: UnsafeRawPointer, actRowBytes: Int,
                                 scales: UnsafePointer<Float>, scaleStride: Int, sums: UnsafePointer<Int32>?, sumStride: Int,
                                 nTokens: Int, acc: UnsafeMutablePointer<__m256>) {
        let sums = sums!
        let ones = _mm256_set1_epi16(1)
        for b in 0..<blocks {
            let gb = wg + b * 176
            AVX2Dot.prefetchAhead(gb, bytes: 176)
            let d = scales8(gb)
            let (q0, q1, q2, q3, q4, q5, q6, q7) = q5_0Quants(gb)
            var a = act + b * 34 + 2
            var s = scales + 2 * b
            var sum = sums + b
            for t in 0..<nTokens {
                // |q·a| ≤ 31·127 per product: four pairs' sums (≤ 4·7874) fit in 16 bits.
                let lo = _mm256_add_epi16(
                    _mm256_add_epi16(_mm256_maddubs_epi16(q0, broadcast4(a)), _mm256_maddubs_epi16(q1, broadcast4(a + 4))),
                    _mm256_add_epi16(_mm256_maddubs_epi16(q2, broadcast4(a + 8)), _mm256_maddubs_epi16(q3, broadcast4(a + 12))))
                let hi = _mm256_add_epi16(
                    _mm256_add_epi16(_mm256_maddubs_epi16(q4, broadcast4(a + 16)), _mm256_maddubs_epi16(q5, broadcast4(a + 20))),
                    _mm256_add_epi16(_mm256_maddubs_epi16(q6, broadcast4(a + 24)), _mm256_maddubs_epi16(q7, broadcast4(a + 28))))
                var i = _mm256_add_epi32(_mm256_madd_epi16(lo, ones), _mm256_madd_epi16(hi, ones))
                i = _mm256_add_epi32(i, _mm256_set1_epi32(sum.pointee))
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_mul_ps(d, _mm256_set1_ps(s.pointee)), acc[t])
                a += actRowBytes
                s += scaleStride
                sum += sumStride
            }
        }
    }

    /// One group of 8 Q8_0 rows against `nTokens` tokens: acc[t] += the rows' products
    /// (a `GroupKernel`; `sums` unused).
    public static func q8_0Group(_ wg: UnsafeRawPointer, blocks: Int, act: UnsafeRawPointer, actRowBytes: Int,
                                 scales: UnsafePointer<Float>, scaleStride: Int, sums: UnsafePointer<Int32>?, sumStride: Int,
                                 nTokens: Int, acc: UnsafeMutablePointer<__m256>) {
        let ones = _mm256_set1_epi16(1)
        for b in 0..<blocks {
            let gb = wg + b * 272
            AVX2Dot.prefetchAhead(gb, bytes: 272)
            let d = scales8(gb)
            let q = gb + 16
            // |q| once per block; the activations take q's signs per token (ggml's sign trick).
            let u0 = _mm256_sign_epi8(load(q), load(q)), u1 = _mm256_sign_epi8(load(q + 32), load(q + 32))
            let u2 = _mm256_sign_epi8(load(q + 64), load(q + 64)), u3 = _mm256_sign_epi8(load(q + 96), load(q + 96))
            let u4 = _mm256_sign_epi8(load(q + 128), load(q + 128)), u5 = _mm256_sign_epi8(load(q + 160), load(q + 160))
            let u6 = _mm256_sign_epi8(load(q + 192), load(q + 192)), u7 = _mm256_sign_epi8(load(q + 224), load(q + 224))
            var a = act + b * 34 + 2
            var s = scales + 2 * b
            for t in 0..<nTokens {
                @inline(__always) func pair(_ u: __m256i, _ k: Int) -> __m256i {
                    _mm256_madd_epi16(_mm256_maddubs_epi16(u, _mm256_sign_epi8(broadcast4(a + 4 * k), load(q + 32 * k))), ones)
                }
                let i = _mm256_add_epi32(
                    _mm256_add_epi32(_mm256_add_epi32(pair(u0, 0), pair(u1, 1)), _mm256_add_epi32(pair(u2, 2), pair(u3, 3))),
                    _mm256_add_epi32(_mm256_add_epi32(pair(u4, 4), pair(u5, 5)), _mm256_add_epi32(pair(u6, 6), pair(u7, 7))))
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_mul_ps(d, _mm256_set1_ps(s.pointee)), acc[t])
                a += actRowBytes
                s += scaleStride
            }
        }
    }

    /// −16 · Σ of each Q8_0 activation block's 32 quants (the Q5_0 kernel's offset term, ready
    /// to add: a broadcast load instead of a shift and a move per token and block): sums[b]
    /// for blocks 0..<blocks.
    public static func q8_0Sums(_ act: UnsafeRawPointer, blocks: Int, into sums: UnsafeMutablePointer<Int32>) {
        let ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1)
        for b in 0..<blocks {
            let v = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, load(act + b * 34 + 2)), ones16)
            sums[b] = 0 &- (unsafeBitCast(v, to: SIMD8<Int32>.self).wrappedSum() &<< 4)
        }
    }
}
#endif
