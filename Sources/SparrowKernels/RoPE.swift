#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Rotary position embedding, as ggml's `ggml_rope_ext` computes it (ext_factor 0, no YaRN).
public struct RoPE: Sendable {
    /// How dimension pairs are formed.
    public enum Ordering: Sendable {
        /// Adjacent pairs (x[2i], x[2i+1]): ggml's `LLAMA_ROPE_TYPE_NORM`, used by llama files.
        case normal
        /// Half-split pairs (x[i], x[i + d/2]): ggml's `LLAMA_ROPE_TYPE_NEOX`, used by qwen2/qwen3.
        case neox
    }

    public let ordering: Ordering
    /// Rotated dimensions per head (≤ head dim; the rest pass through).
    public let dimensions: Int
    public let base: Float
    /// Linear position scale (1 = none), ggml's `freq_scale`.
    public let frequencyScale: Float

    public init(ordering: Ordering, dimensions: Int, base: Float, frequencyScale: Float = 1) {
        self.ordering = ordering
        self.dimensions = dimensions
        self.base = base
        self.frequencyScale = frequencyScale
    }

    /// Fills cos/sin for one position: out [dimensions/2] each.
    /// theta is advanced by repeated multiplication in Float, exactly as `ggml_rope_cache_init`.
    @inline(__always)
    func angles(position: Int, cos c: UnsafeMutablePointer<Float>, sin s: UnsafeMutablePointer<Float>) {
        let thetaScale = powf(base, -2 / Float(dimensions))
        var theta = Float(position)
        for i in 0..<(dimensions / 2) {
            let t = frequencyScale * theta
            c[i] = cosf(t)
            s[i] = sinf(t)
            theta *= thetaScale
        }
    }

    /// Rotates every head of every token in place.
    /// - x: [nTokens, nHeads, headDim] f32; positions: [nTokens]
    public func apply(_ x: UnsafeMutablePointer<Float>, nTokens: Int, nHeads: Int, headDim: Int, positions: UnsafePointer<Int32>) {
        let half = dimensions / 2
        let c = UnsafeMutablePointer<Float>.allocate(capacity: half)
        let s = UnsafeMutablePointer<Float>.allocate(capacity: half)
        defer { c.deallocate(); s.deallocate() }
        for t in 0..<nTokens {
            angles(position: Int(positions[t]), cos: c, sin: s)
            for h in 0..<nHeads {
                let v = x + (t * nHeads + h) * headDim
                switch ordering {
                case .normal:
                    for i in 0..<half {
                        let x0 = v[2 * i], x1 = v[2 * i + 1]
                        v[2 * i] = x0 * c[i] - x1 * s[i]
                        v[2 * i + 1] = x0 * s[i] + x1 * c[i]
                    }
                case .neox:
                    for i in 0..<half {
                        let x0 = v[i], x1 = v[i + half]
                        v[i] = x0 * c[i] - x1 * s[i]
                        v[i + half] = x0 * s[i] + x1 * c[i]
                    }
                }
            }
        }
    }
}
