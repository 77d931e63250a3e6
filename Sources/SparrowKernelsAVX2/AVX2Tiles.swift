// AVX2/FMA matrix kernels for the 32-value block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0):
// several dot products per call, so one pass over a weight row serves several tokens
// (prefill, batched decode); one token (decode) goes row by row.
//
// Per block the integer products are ggml's (`AVX2Dot`), and so is the float work per block;
// the differences from `AVX2Dot` are where the scales come from and how many accumulators
// run side by side:
// - activation scales arrive as f32 in a side table (`scales[2b] = d`, `scales[2b+1] = s`
//   for Q8_1), converted once per matmul instead of once per row, which removes three of the
//   four f16→f32 conversions per block (vcvtph2ps is slow on AMD cores);
// - four or eight accumulators (one per token) hide the FMA latency on short rows.

#if arch(x86_64)
import _Builtin_intrinsics.intel
import SparrowCSupport
import Glibc

/// A 32-value weight block type: its size and how its 32 quants unpack into bytes.
protocol Block32 {
    static var bytes: Int { get }
    /// True when the type has a per-block minimum (Q4_1, Q5_1): quants unpack unsigned and
    /// pair with Q8_1 activations; otherwise they unpack signed and pair with Q8_0.
    static var hasMin: Bool { get }
    static func quants(_ xb: UnsafeRawPointer) -> __m256i
}

enum Q4_0B: Block32 {
    static var bytes: Int { 18 }
    static var hasMin: Bool { false }
    @inline(__always) static func quants(_ xb: UnsafeRawPointer) -> __m256i {
        _mm256_sub_epi8(AVX2Dot.bytesFromNibbles32(xb + 2), _mm256_set1_epi8(8))
    }
}

enum Q4_1B: Block32 {
    static var bytes: Int { 20 }
    static var hasMin: Bool { true }
    @inline(__always) static func quants(_ xb: UnsafeRawPointer) -> __m256i { AVX2Dot.bytesFromNibbles32(xb + 4) }
}

enum Q5_0B: Block32 {
    static var bytes: Int { 22 }
    static var hasMin: Bool { false }
    @inline(__always) static func quants(_ xb: UnsafeRawPointer) -> __m256i {
        let qh = UInt32(littleEndian: xb.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
        let hi = _mm256_andnot_si256(AVX2Dot.bytesFromBits32(qh), _mm256_set1_epi8(Int8(bitPattern: 0xF0)))
        return _mm256_or_si256(AVX2Dot.bytesFromNibbles32(xb + 6), hi)
    }
}

enum Q5_1B: Block32 {
    static var bytes: Int { 24 }
    static var hasMin: Bool { true }
    @inline(__always) static func quants(_ xb: UnsafeRawPointer) -> __m256i {
        let qh = UInt32(littleEndian: xb.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        let hi = _mm256_and_si256(AVX2Dot.bytesFromBits32(qh), _mm256_set1_epi8(0x10))
        return _mm256_or_si256(AVX2Dot.bytesFromNibbles32(xb + 8), hi)
    }
}

enum Q8_0B: Block32 {
    static var bytes: Int { 34 }
    static var hasMin: Bool { false }
    @inline(__always) static func quants(_ xb: UnsafeRawPointer) -> __m256i { AVX2Dot.load256(xb + 2) }
}

/// The 32-value types `AVX2Tiles` computes with.
public enum Block32Type: Sendable {
    case q4_0, q4_1, q5_0, q5_1, q8_0
}

/// Several 32-block dot products per call. Activations are ggml Q8_0 blocks (34 bytes, quants
/// at 2) for Q4_0/Q5_0/Q8_0 weights and Q8_1 blocks (36 bytes, quants at 4) for Q4_1/Q5_1;
/// `scales` holds their scales as f32 pairs (d, s) per block (s is used only with Q8_1).
public enum AVX2Tiles {
    /// How far ahead of the current block the K-quant decode kernels (`AVX2Dot.q4_KFolded`,
    /// `q6_K`, …) and the interleaved kernels prefetch weights, in bytes (default 4096. On a
    /// 2-core Zen 5 with ~74 GB/s of triad bandwidth, 4096 beat 2048 by 3–7% in every pair —
    /// Qwen2.5-Coder-1.5B and -0.5B decode, eight-sequence decode, prefill — with 3072 and 6144
    /// between; on the earlier ~23 GB/s machine 1024–8192 were all within a few percent, and
    /// without prefetching Qwen2.5-1.5B decode was 5–21% slower in three A/B pairs).
    /// `SPARROW_PREFETCH_BYTES` overrides it.
    nonisolated(unsafe) public static var prefetchDistance: Int = {
        if let v = getenv("SPARROW_PREFETCH_BYTES"), let n = Int(String(cString: v)), n >= 0 { return n }
        return 4096
    }()

    /// Activation block size for a weight type.
    @inline(__always)
    static func actBytes(_ hasMin: Bool) -> Int { hasMin ? 36 : 34 }

    /// Weight scale d (and minimum m) of a block as f32.
    @inline(__always)
    static func scaleMin<F: Block32>(_: F.Type, _ xb: UnsafeRawPointer) -> (Float, Float) {
        if F.hasMin {
            let v = _mm_cvtph_ps(_mm_cvtsi32_si128(xb.loadUnaligned(as: Int32.self)))
            return (v[0], v[1])
        }
        return (AVX2Dot.halfAt(xb), 0)
    }

    /// Σ pairs of weight quants × activation quants, as 8 floats (exact integers).
    @inline(__always)
    static func product<F: Block32>(_: F.Type, _ qx: __m256i, _ ax: __m256i, _ y: __m256i) -> __m256 {
        F.hasMin ? AVX2Dot.mulSumUS8Pairs(qx, y) : AVX2Dot.mulSumUS8Pairs(ax, _mm256_sign_epi8(y, qx))
    }

    @inline(__always)
    static func absQuants<F: Block32>(_: F.Type, _ qx: __m256i) -> __m256i {
        F.hasMin ? qx : _mm256_sign_epi8(qx, qx)
    }

    /// One row against one token.
    @inline(__always)
    static func dot1<F: Block32>(_ f: F.Type, _ w: UnsafeRawPointer, _ act: UnsafeRawPointer, _ scales: UnsafePointer<Float>, _ blocks: Int) -> Float {
        let ab = actBytes(F.hasMin), qo = ab - 32
        var acc = _mm256_setzero_ps()
        var mins: Float = 0
        for b in 0..<blocks {
            let xb = w + b * F.bytes
            let (d, m) = scaleMin(f, xb)
            let qx = F.quants(xb)
            let y = AVX2Dot.load256(act + b * ab + qo)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * scales[2 * b]), product(f, qx, absQuants(f, qx), y), acc)
            if F.hasMin { mins += m * scales[2 * b + 1] }
        }
        return AVX2Dot.hsum(acc) + mins
    }

    /// One row against four tokens (activations `actRowBytes` apart, scales `scaleStride`
    /// floats apart): out[0], out[outStride], out[2·outStride], out[3·outStride].
    @inline(__always)
    static func tokens4<F: Block32>(_ f: F.Type, _ w: UnsafeRawPointer, _ act: UnsafeRawPointer, _ actRowBytes: Int,
                                    _ scales: UnsafePointer<Float>, _ scaleStride: Int, _ blocks: Int,
                                    _ out: UnsafeMutablePointer<Float>, _ outStride: Int) {
        let ab = actBytes(F.hasMin), qo = ab - 32
        var a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0
        var m0: Float = 0, m1: Float = 0, m2: Float = 0, m3: Float = 0
        for b in 0..<blocks {
            let xb = w + b * F.bytes
            let (d, m) = scaleMin(f, xb)
            let qx = F.quants(xb)
            let ax = absQuants(f, qx)
            let yb = act + b * ab + qo
            let s = scales + 2 * b
            @inline(__always) func step(_ t: Int, _ acc: inout __m256, _ mins: inout Float) {
                let y = AVX2Dot.load256(yb + t * actRowBytes)
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * s[t * scaleStride]), product(f, qx, ax, y), acc)
                if F.hasMin { mins += m * s[t * scaleStride + 1] }
            }
            step(0, &a0, &m0)
            step(1, &a1, &m1)
            step(2, &a2, &m2)
            step(3, &a3, &m3)
        }
        out[0] = AVX2Dot.hsum(a0) + m0
        out[outStride] = AVX2Dot.hsum(a1) + m1
        out[2 * outStride] = AVX2Dot.hsum(a2) + m2
        out[3 * outStride] = AVX2Dot.hsum(a3) + m3
    }

    /// One row against eight tokens: as `tokens4`, with the row's quants unpacked once per
    /// eight tokens (unpacking a Q5_0 block costs about as much as two tokens' products). Types
    /// without a minimum only (Q4_0, Q5_0, Q8_0): gathering eight tokens' sums per block for
    /// the minimum term costs more than it saves.
    @inline(__always)
    static func tokens8<F: Block32>(_ f: F.Type, _ w: UnsafeRawPointer, _ act: UnsafeRawPointer, _ actRowBytes: Int,
                                    _ scales: UnsafePointer<Float>, _ scaleStride: Int, _ blocks: Int,
                                    _ out: UnsafeMutablePointer<Float>, _ outStride: Int) {
        let ab = actBytes(F.hasMin), qo = ab - 32
        var a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0
        for b in 0..<blocks {
            let xb = w + b * F.bytes
            let d = AVX2Dot.halfAt(xb)
            let qx = F.quants(xb)
            let ax = absQuants(f, qx)
            let yb = act + b * ab + qo
            let s = scales + 2 * b
            let dv = _mm256_set1_ps(d)
            @inline(__always) func step(_ t: Int, _ acc: inout __m256) {
                let y = AVX2Dot.load256(yb + t * actRowBytes)
                acc = _mm256_fmadd_ps(_mm256_mul_ps(dv, _mm256_broadcast_ss(s + t * scaleStride)), product(f, qx, ax, y), acc)
            }
            step(0, &a0); step(1, &a1); step(2, &a2); step(3, &a3)
            step(4, &a4); step(5, &a5); step(6, &a6); step(7, &a7)
        }
        out[0] = AVX2Dot.hsum(a0)
        out[outStride] = AVX2Dot.hsum(a1)
        out[2 * outStride] = AVX2Dot.hsum(a2)
        out[3 * outStride] = AVX2Dot.hsum(a3)
        out[4 * outStride] = AVX2Dot.hsum(a4)
        out[5 * outStride] = AVX2Dot.hsum(a5)
        out[6 * outStride] = AVX2Dot.hsum(a6)
        out[7 * outStride] = AVX2Dot.hsum(a7)
    }

    /// y[t·yStride + r] = row r · token t for rows 0..<nRows (`rowBytes` apart from `w`) and
    /// tokens 0..<nTokens (activations `actRowBytes` apart, scales `scaleStride` floats apart).
    @inline(__always)
    static func block<F: Block32>(_ f: F.Type, _ w: UnsafeRawPointer, rowBytes: Int, nRows: Int,
                                  act: UnsafeRawPointer, actRowBytes: Int, scales: UnsafePointer<Float>, scaleStride: Int,
                                  nTokens: Int, blocks: Int, y: UnsafeMutablePointer<Float>, yStride: Int) {
        if nTokens == 1 {
            // Decode: row after row, so the weights stream in address order and the hardware
            // prefetcher keeps up. Four rows side by side (sharing each activation load) read
            // four interleaved streams the prefetcher follows badly: without software prefetch
            // 0.5B decode fell to 19 tok/s, and with it row by row was still faster (median of
            // four A/B pairs 39.3 → 43.5 tok/s on Qwen2.5-Coder-0.5B, 104 → 111 on SmolLM2;
            // 2-core AMD EPYC). Software prefetch here costs more than it gains (three per
            // cache line of 22-byte Q5_0 blocks).
            for r in 0..<nRows { y[r] = dot1(f, w + r * rowBytes, act, scales, blocks) }
            return
        }
        // Tiles of 4 rows × a chunk of tokens: the 4 rows (a few KB) stay in L1 while the chunk's
        // activations stream past them, four tokens at a time, so each activation block is read
        // from L2 once per 4 rows rather than once per row; the chunk (≤ 192 KB) stays in L2.
        let t4 = nTokens & ~3
        let chunk = max(8, min(t4, (196_608 / actRowBytes) & ~7))
        var t0 = 0
        while t0 < t4 {
            let t1 = min(t4, t0 + chunk)
            var r0 = 0
            while r0 < nRows {
                let r1 = min(nRows, r0 + 4)
                var t = t0
                while !F.hasMin && t + 8 <= t1 {
                    for r in r0..<r1 {
                        tokens8(f, w + r * rowBytes, act + t * actRowBytes, actRowBytes, scales + t * scaleStride, scaleStride, blocks,
                                y + t * yStride + r, yStride)
                    }
                    t += 8
                }
                while t < t1 {
                    for r in r0..<r1 {
                        tokens4(f, w + r * rowBytes, act + t * actRowBytes, actRowBytes, scales + t * scaleStride, scaleStride, blocks,
                                y + t * yStride + r, yStride)
                    }
                    t += 4
                }
                r0 = r1
            }
            t0 = t1
        }
        for t in t4..<nTokens {
            for r in 0..<nRows {
                y[t * yStride + r] = dot1(f, w + r * rowBytes, act + t * actRowBytes, scales + t * scaleStride, blocks)
            }
        }
    }

    /// Rows × tokens products for a 32-block weight type; see `block` for the layout.
    public static func matmul(_ type: Block32Type, _ w: UnsafeRawPointer, rowBytes: Int, nRows: Int,
                              act: UnsafeRawPointer, actRowBytes: Int, scales: UnsafePointer<Float>, scaleStride: Int,
                              nTokens: Int, blocks: Int, y: UnsafeMutablePointer<Float>, yStride: Int) {
        switch type {
        case .q4_0: block(Q4_0B.self, w, rowBytes: rowBytes, nRows: nRows, act: act, actRowBytes: actRowBytes, scales: scales,
                          scaleStride: scaleStride, nTokens: nTokens, blocks: blocks, y: y, yStride: yStride)
        case .q4_1: block(Q4_1B.self, w, rowBytes: rowBytes, nRows: nRows, act: act, actRowBytes: actRowBytes, scales: scales,
                          scaleStride: scaleStride, nTokens: nTokens, blocks: blocks, y: y, yStride: yStride)
        case .q5_0: block(Q5_0B.self, w, rowBytes: rowBytes, nRows: nRows, act: act, actRowBytes: actRowBytes, scales: scales,
                          scaleStride: scaleStride, nTokens: nTokens, blocks: blocks, y: y, yStride: yStride)
        case .q5_1: block(Q5_1B.self, w, rowBytes: rowBytes, nRows: nRows, act: act, actRowBytes: actRowBytes, scales: scales,
                          scaleStride: scaleStride, nTokens: nTokens, blocks: blocks, y: y, yStride: yStride)
        case .q8_0: block(Q8_0B.self, w, rowBytes: rowBytes, nRows: nRows, act: act, actRowBytes: actRowBytes, scales: scales,
                          scaleStride: scaleStride, nTokens: nTokens, blocks: blocks, y: y, yStride: yStride)
        }
    }
}
#endif
