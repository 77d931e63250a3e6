#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Causal grouped-query attention over a KV cache, with a streaming (online) softmax so no
/// score matrix is ever materialised: memory stays O(headDim) per worker whatever the length.
public enum Attention {
    /// Computes attention for `nTokens` queries at positions `startPosition ..< startPosition + nTokens`
    /// against cache rows `0 ..< startPosition + nTokens` (the new keys/values must already be stored).
    /// - q:   [nTokens, nHeads, headDim] f32
    /// - k,v: [contextRows, nKVHeads, headDim] f32 (the cache of one layer)
    /// - out: [nTokens, nHeads, headDim] f32
    public static func causal(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                              out: UnsafeMutablePointer<Float>, nTokens: Int, startPosition: Int,
                              nHeads: Int, nKVHeads: Int, headDim: Int, scale: Float) {
        let group = nHeads / nKVHeads
        let kvStride = nKVHeads * headDim
        Parallel.forRanges(nTokens * nHeads) { start, end in
            let acc = UnsafeMutablePointer<Float>.allocate(capacity: headDim)
            defer { acc.deallocate() }
            for job in start..<end {
                let t = job / nHeads, h = job % nHeads
                let kvh = h / group
                let qv = q + (t * nHeads + h) * headDim
                let o = out + (t * nHeads + h) * headDim
                acc.initialize(repeating: 0, count: headDim)
                var m = -Float.infinity
                var sum: Float = 0
                let last = startPosition + t
                for p in 0...last {
                    let kr = k + p * kvStride + kvh * headDim
                    var dot: Float = 0
                    for i in 0..<headDim { dot += qv[i] * kr[i] }
                    let score = dot * scale
                    let vr = v + p * kvStride + kvh * headDim
                    if score > m {
                        // Rescale what was accumulated under the old maximum.
                        let r = expf(m - score)
                        sum *= r
                        for i in 0..<headDim { acc[i] *= r }
                        m = score
                    }
                    let w = expf(score - m)
                    sum += w
                    for i in 0..<headDim { acc[i] += w * vr[i] }
                }
                let inv = 1 / sum
                for i in 0..<headDim { o[i] = acc[i] * inv }
            }
        }
    }
}
