#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Picks tokens from logits. One sampler per sequence: it owns the random state and the
/// history the penalties look at.
///
/// The chain runs in llama.cpp's default order: logit bias → penalties → top-k → top-p →
/// min-p → temperature → draw (greedy skips the cut-offs and takes the argmax).
public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    private var rng: SplitMix64
    private var history: [Int32] = []

    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        rng = SplitMix64(seed: parameters.seed ?? UInt64.random(in: 0...UInt64.max))
    }

    /// Records prompt or generated tokens the penalties should see.
    public mutating func accept(_ token: Int32) { history.append(token) }

    /// One candidate after processing.
    public struct Candidate: Sendable, Equatable {
        public var id: Int32
        public var logit: Float
    }

    /// Chooses the next token from `logits` ([vocab] f32).
    public mutating func sample(_ logits: [Float]) -> Int32 {
        var adjusted = logits
        applyBiasAndPenalties(&adjusted)
        if parameters.temperature <= 0 { return Self.argmax(adjusted) }
        let cands = Self.truncate(adjusted, parameters)
        // Temperature then softmax over what survived.
        let t = parameters.temperature
        let m = cands.reduce(-Float.infinity) { max($0, $1.logit) }
        var probs = cands.map { Double(expf(($0.logit - m) / t)) }
        let total = probs.reduce(0, +)
        for i in probs.indices { probs[i] /= total }
        let u = rng.nextDouble()
        var acc = 0.0
        for (i, p) in probs.enumerated() {
            acc += p
            if u < acc { return cands[i].id }
        }
        return cands[cands.count - 1].id
    }

    /// Logit bias and the repetition / presence / frequency penalties over the recent history.
    mutating func applyBiasAndPenalties(_ logits: inout [Float]) {
        for (id, b) in parameters.logitBias where Int(id) < logits.count { logits[Int(id)] += b }
        let p = parameters
        guard p.penaltyLastN != 0, p.repetitionPenalty != 1 || p.presencePenalty != 0 || p.frequencyPenalty != 0 else { return }
        let window = p.penaltyLastN < 0 ? history[...] : history.suffix(p.penaltyLastN)
        var counts: [Int32: Int] = [:]
        for t in window { counts[t, default: 0] += 1 }
        for (id, c) in counts where Int(id) < logits.count && id >= 0 {
            var l = logits[Int(id)]
            // Same arithmetic as llama.cpp's llama_sampler_penalties_apply.
            l = l <= 0 ? l * p.repetitionPenalty : l / p.repetitionPenalty
            l -= Float(c) * p.frequencyPenalty + (c > 0 ? p.presencePenalty : 0)
            logits[Int(id)] = l
        }
    }

    /// Top-k, top-p and min-p cut-offs over `logits` ([vocab]). Returns the survivors sorted by
    /// logit, descending, never empty; when no cut-off applies, every token in vocabulary order.
    ///
    /// The result is what sorting the whole vocabulary and cutting would give, without that
    /// sort (152k candidates cost ~10 ms per token): top-k keeps a running k best; otherwise
    /// top-p and min-p both keep a prefix of the sorted order, so only the tokens within a
    /// logit distance of the best that provably holds that prefix are gathered and sorted.
    static func truncate(_ logits: [Float], _ p: SamplingParameters) -> [Candidate] {
        let n = logits.count
        guard let top = logits.max(), top.isFinite else {
            return logits.enumerated().map { Candidate(id: Int32($0.offset), logit: $0.element) }
        }
        let cutTopP = p.topP < 1, cutMinP = p.minP > 0
        var cands: [Candidate]
        var total = 0.0  // Σ exp(logit − top) over the candidates top-p's probabilities are taken over
        if p.topK > 0 && p.topK < n {
            cands = topK(logits, p.topK)
            for c in cands { total += Double(expf(c.logit - top)) }
        } else {
            guard cutTopP || cutMinP else {
                return logits.enumerated().map { Candidate(id: Int32($0.offset), logit: $0.element) }
            }
            for l in logits { total += Double(expf(l - top)) }
            // p_i ≥ minP · p_max  ⇔  logit_i ≥ top + ln(minP): nothing below survives min-p.
            var floor = cutMinP ? top + logf(p.minP) : -Float.infinity
            if cutTopP {
                // The nucleus lies within `logit ≥ top − δ` once that set holds at least top-p of
                // the mass (a margin covers the different summation order); widen δ until it does.
                var delta: Float = 8
                while top - delta > floor {
                    var mass = 0.0
                    for l in logits where l >= top - delta { mass += Double(expf(l - top)) }
                    if mass >= (Double(p.topP) + 1e-9) * total { floor = top - delta; break }
                    delta *= 2
                }
            }
            cands = []
            for (i, l) in logits.enumerated() where l >= floor { cands.append(Candidate(id: Int32(i), logit: l)) }
            cands.sort { $0.logit > $1.logit }
        }
        if cutTopP {
            // Probabilities are only needed for the nucleus cut.
            var acc = 0.0
            for (i, c) in cands.enumerated() {
                acc += Double(expf(c.logit - top)) / total
                if acc >= Double(p.topP) { cands.removeLast(cands.count - i - 1); break }
            }
        }
        if cutMinP {
            let threshold = top + logf(p.minP)
            if let keep = cands.firstIndex(where: { $0.logit < threshold }), keep > 0 { cands.removeLast(cands.count - keep) }
        }
        return cands
    }

    /// The `k` largest logits, descending (the earlier token first on ties).
    static func topK(_ logits: [Float], _ k: Int) -> [Candidate] {
        var best = logits.prefix(k).enumerated().map { Candidate(id: Int32($0.offset), logit: $0.element) }
        best.sort { $0.logit > $1.logit || ($0.logit == $1.logit && $0.id < $1.id) }
        var floor = best[k - 1].logit
        for i in k..<logits.count where logits[i] > floor {
            let l = logits[i]
            // First position holding a smaller logit; the new one goes there, the smallest drops out.
            var lo = 0, hi = k - 1
            while lo < hi {
                let mid = (lo + hi) / 2
                if best[mid].logit < l { hi = mid } else { lo = mid + 1 }
            }
            best.removeLast()
            best.insert(Candidate(id: Int32(i), logit: l), at: lo)
            floor = best[k - 1].logit
        }
        return best
    }

    /// Index of the largest logit (the first one on ties, as llama.cpp's greedy sampler).
    public static func argmax(_ logits: [Float]) -> Int32 {
        // The largest value eight lanes at a time (NaN never replaces a lane), then its first
        // index: the same token as a scalar scan keeping the first strict maximum, in a
        // fraction of the time on a 150k vocabulary.
        logits.withUnsafeBufferPointer { p -> Int32 in
            let n = p.count
            var lanes = SIMD8<Float>(repeating: -.infinity)
            var i = 0
            while i + 8 <= n {
                let v = UnsafeRawPointer(p.baseAddress! + i).loadUnaligned(as: SIMD8<Float>.self)
                lanes.replace(with: v, where: v .> lanes)
                i += 8
            }
            var best = lanes.max()
            while i < n {
                if p[i] > best { best = p[i] }
                i += 1
            }
            guard best > -.infinity else { return 0 }
            return Int32(p.firstIndex(of: best) ?? 0)
        }
    }
}

/// A small, fast, seedable generator (Steele, Lea & Flood's SplitMix64) so a seed reproduces a
/// generation on every platform.
struct SplitMix64: Sendable {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    mutating func nextDouble() -> Double { Double(next() >> 11) * 0x1.0p-53 }
}
