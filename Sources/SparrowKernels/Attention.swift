#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SparrowFormats
#if arch(x86_64)
import SparrowKernelsAVX2
#endif

/// Element type of a KV cache.
public enum KVCacheType: String, Sendable, CaseIterable {
    /// 32-bit floats: exact, twice the memory.
    case f32
    /// IEEE half floats, llama.cpp's default (`type_k = type_v = GGML_TYPE_F16`).
    case f16

    public var byteSize: Int { self == .f32 ? 4 : 2 }
}

/// Causal grouped-query attention over a KV cache.
///
/// Follows llama.cpp's default (non-flash) CPU graph so results track it: scores
/// `K·Q` (Q rounded to f16 when K is f16, as ggml's mul_mat converts src1 to the
/// `vec_dot_type` of F16), softmax with the scale folded in and the sum in Double
/// (`ggml_compute_forward_soft_max_f32`), then `V·P` (P rounded to f16 when V is f16).
/// Each worker holds one row of scores, O(context) memory, never a [tokens × context] matrix.
/// With AVX2 the score dot products run 8 lanes wide in ggml's summation order and the V
/// updates as 8-lane FMAs (`AVX2Vector`).
public enum Attention {
    /// One sequence's queries and cache layer in a batched step (as `causal`'s arguments).
    public struct Segment {
        public let q: UnsafePointer<Float>
        public let k: UnsafeRawPointer
        public let v: UnsafeRawPointer
        public let type: KVCacheType
        public let out: UnsafeMutablePointer<Float>
        public let nTokens: Int
        public let startPosition: Int

        public init(q: UnsafePointer<Float>, k: UnsafeRawPointer, v: UnsafeRawPointer, type: KVCacheType,
                    out: UnsafeMutablePointer<Float>, nTokens: Int, startPosition: Int) {
            (self.q, self.k, self.v, self.type) = (q, k, v, type)
            (self.out, self.nTokens, self.startPosition) = (out, nTokens, startPosition)
        }
    }

    /// `causal` for several sequences (a batched step), each against its own cache (of its own
    /// element type). With AVX2
    /// all of them share one parallel region (a decode step of eight sequences has 8 × the KV
    /// heads jobs instead of eight regions of a few jobs each); each result is the same as
    /// `causal` on that sequence alone.
    public static func causal(segments: [Segment], nHeads: Int, nKVHeads: Int, headDim: Int, scale: Float) {
        #if arch(x86_64)
        if QuantKernels.useAVX2 {
            causalAVX2(segments, nHeads: nHeads, nKVHeads: nKVHeads, headDim: headDim, scale: scale)
            return
        }
        #endif
        for s in segments {
            causal(q: s.q, k: s.k, v: s.v, type: s.type, out: s.out, nTokens: s.nTokens, startPosition: s.startPosition,
                   nHeads: nHeads, nKVHeads: nKVHeads, headDim: headDim, scale: scale)
        }
    }

    /// Computes attention for `nTokens` queries at positions `startPosition ..< startPosition + nTokens`
    /// against cache rows `0 ..< startPosition + nTokens` (the new keys/values must already be stored).
    /// - q:   [nTokens, nHeads, headDim] f32
    /// - k,v: [contextRows, nKVHeads, headDim] of `type` (one layer of the cache)
    /// - out: [nTokens, nHeads, headDim] f32
    public static func causal(q: UnsafePointer<Float>, k: UnsafeRawPointer, v: UnsafeRawPointer, type: KVCacheType,
                              out: UnsafeMutablePointer<Float>, nTokens: Int, startPosition: Int,
                              nHeads: Int, nKVHeads: Int, headDim: Int, scale: Float) {
        #if arch(x86_64)
        if QuantKernels.useAVX2 {
            causalAVX2([Segment(q: q, k: k, v: v, type: type, out: out, nTokens: nTokens, startPosition: startPosition)],
                       nHeads: nHeads, nKVHeads: nKVHeads, headDim: headDim, scale: scale)
            return
        }
        #endif
        let group = nHeads / nKVHeads
        let kvStride = nKVHeads * headDim
        let maxLength = startPosition + nTokens
        Parallel.forRanges(nTokens * nHeads) { start, end in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: maxLength)  // [positions]
            let qh = UnsafeMutablePointer<Float>.allocate(capacity: headDim)          // [headDim]
            let vrow = UnsafeMutablePointer<Float>.allocate(capacity: headDim)        // [headDim]
            defer { scores.deallocate(); qh.deallocate(); vrow.deallocate() }
            for job in start..<end {
                let t = job / nHeads, h = job % nHeads
                let kvh = h / group
                let qv = q + (t * nHeads + h) * headDim
                let o = out + (t * nHeads + h) * headDim
                let length = startPosition + t + 1
                switch type {
                case .f32:
                    let kf = k.assumingMemoryBound(to: Float.self)
                    for p in 0..<length {
                        let kr = kf + p * kvStride + kvh * headDim
                        var dot: Float = 0
                        for i in 0..<headDim { dot += qv[i] * kr[i] }
                        scores[p] = dot
                    }
                case .f16:
                    for i in 0..<headDim { qh[i] = fp16ToFloat(floatToFP16(qv[i])) }
                    let kh = k.assumingMemoryBound(to: UInt16.self)
                    for p in 0..<length {
                        let kr = kh + p * kvStride + kvh * headDim
                        var dot: Float = 0
                        for i in 0..<headDim { dot += qh[i] * fp16ToFloat(kr[i]) }
                        scores[p] = dot
                    }
                }
                for p in 0..<length { scores[p] *= scale }
                Ops.softmax(scores, count: length)
                for i in 0..<headDim { o[i] = 0 }
                switch type {
                case .f32:
                    let vf = v.assumingMemoryBound(to: Float.self)
                    for p in 0..<length {
                        let w = scores[p]
                        let vr = vf + p * kvStride + kvh * headDim
                        for i in 0..<headDim { o[i] += w * vr[i] }
                    }
                case .f16:
                    let vh = v.assumingMemoryBound(to: UInt16.self)
                    for p in 0..<length {
                        let w = fp16ToFloat(floatToFP16(scores[p]))
                        let vr = vh + p * kvStride + kvh * headDim
                        for i in 0..<headDim { vrow[i] = fp16ToFloat(vr[i]) }
                        for i in 0..<headDim { o[i] += w * vrow[i] }
                    }
                }
            }
        }
    }

    #if arch(x86_64)
    /// `causal` with AVX2: one job per (token, KV head) serves the `group` query heads that share
    /// it, so each cached K and V row is widened to f32 once per group instead of once per head;
    /// `Ops.softmax` as in the portable path. Per head every score, weight and V update is the
    /// same operation in the same order as one head at a time.
    static func causalAVX2(_ segments: [Segment], nHeads: Int, nKVHeads: Int, headDim: Int, scale: Float) {
        let group = nHeads / nKVHeads
        let kvStride = nKVHeads * headDim
        let rowStride = segments.lazy.map { $0.startPosition + $0.nTokens }.max() ?? 0  // one score row
        let vBlock = 32                          // K or V rows per block (widened once for the group)
        // Jobs: (segment, token, KV head), segment after segment; firstJob[i] = segment i's first.
        var firstJob: [Int] = []
        var jobs = 0
        for s in segments {
            firstJob.append(jobs)
            jobs += s.nTokens * nKVHeads
        }
        Parallel.forRanges(jobs) { start, end in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: group * rowStride)  // [group, positions]
            let qg = UnsafeMutablePointer<Float>.allocate(capacity: group * headDim)        // [group, headDim]
            let rowTile = UnsafeMutablePointer<Float>.allocate(capacity: vBlock * headDim)  // [vBlock, headDim] K or V rows in f32
            defer { scores.deallocate(); qg.deallocate(); rowTile.deallocate() }
            var si = 0
            for job in start..<end {
                while si + 1 < segments.count && firstJob[si + 1] <= job { si += 1 }
                let seg = segments[si]
                let q = seg.q, k = seg.k, v = seg.v, type = seg.type, out = seg.out, startPosition = seg.startPosition
                let local = job - firstJob[si]
                let t = local / nKVHeads, kvh = local % nKVHeads
                /// Rows `from ..< from + count` of this KV head in `cache` (K or V) as f32: the
                /// cache itself when it is f32, else widened into `rowTile`. Returns (rows, stride).
                func tile(_ cache: UnsafeRawPointer, from p0: Int, count n: Int) -> (UnsafePointer<Float>, Int) {
                    switch type {
                    case .f32:
                        return (cache.assumingMemoryBound(to: Float.self) + p0 * kvStride + kvh * headDim, kvStride)
                    case .f16:
                        let h = cache + 2 * (p0 * kvStride + kvh * headDim)
                        for p in 0..<n { AVX2Vector.widenF16(h + 2 * p * kvStride, into: rowTile + p * headDim, count: headDim) }
                        return (UnsafePointer(rowTile), headDim)
                    }
                }
                let length = startPosition + t + 1
                let q0 = q + (t * nHeads + kvh * group) * headDim   // the group's heads are consecutive
                let o0 = out + (t * nHeads + kvh * group) * headDim
                // Q·K a block of positions at a time: the block's K rows (widened once) serve
                // every head of the group, eight scores per reduction (`dotsF32`, each as `dotF32`).
                qg.update(from: q0, count: group * headDim)
                if type == .f16 { AVX2Vector.roundToF16(qg, count: group * headDim) }  // Q as f16, as ggml's mul_mat
                var p0 = 0
                while p0 < length {
                    let n = min(vBlock, length - p0)
                    let (rows, stride) = tile(k, from: p0, count: n)
                    for j in 0..<group {
                        AVX2Vector.dotsF32(qg + j * headDim, rows: rows, rowStride: stride, count: n, width: headDim,
                                           into: scores + j * rowStride + p0)
                    }
                    p0 += n
                }
                for j in 0..<group {
                    let weights = scores + j * rowStride
                    for p in 0..<length { weights[p] *= scale }
                    Ops.softmax(weights, count: length)
                    // P rounded to f16, as ggml's mul_mat converts it for an f16 V
                    if type == .f16 { AVX2Vector.roundToF16(weights, count: length) }
                    (o0 + j * headDim).initialize(repeating: 0, count: headDim)
                }
                // O += P·V a block of positions at a time: the block's V rows (widened once)
                // serve every head of the group, and each head's output stays in registers
                // across the block. Per element the FMAs run in position order, as one at a time.
                p0 = 0
                while p0 < length {
                    let n = min(vBlock, length - p0)
                    let (rows, stride) = tile(v, from: p0, count: n)
                    for j in 0..<group {
                        AVX2Vector.accumulateRows(weights: scores + j * rowStride + p0, rows: rows, rowStride: stride,
                                                  count: n, into: o0 + j * headDim, width: headDim)
                    }
                    p0 += n
                }
            }
        }
    }
    #endif
}
