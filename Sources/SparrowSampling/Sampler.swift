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
        var cands = adjusted.enumerated().map { Candidate(id: Int32($0.offset), logit: $0.element) }
        cands = Self.truncate(cands, parameters)
        // Temperature then softmax over what survived.
        let t = parameters.temperature
        let m = cands[0].logit
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

    /// Top-k, top-p and min-p cut-offs; returns candidates sorted by logit, descending, never empty.
    static func truncate(_ input: [Candidate], _ p: SamplingParameters) -> [Candidate] {
        var cands = input
        if p.topK > 0 && p.topK < cands.count {
            cands = Array(cands.sorted { $0.logit > $1.logit }.prefix(p.topK))
        } else {
            cands.sort { $0.logit > $1.logit }
        }
        guard let top = cands.first?.logit else { return input }
        if p.topP < 1 {
            // Probabilities are only needed for the nucleus cut.
            let e = cands.map { Double(expf($0.logit - top)) }
            let total = e.reduce(0, +)
            var acc = 0.0
            var keep = cands.count
            for (i, v) in e.enumerated() {
                acc += v / total
                if acc >= Double(p.topP) { keep = i + 1; break }
            }
            cands = Array(cands.prefix(keep))
        }
        if p.minP > 0 {
            // p_i ≥ minP · p_max  ⇔  logit_i ≥ logit_max + ln(minP)
            let threshold = top + logf(p.minP)
            let kept = cands.filter { $0.logit >= threshold }
            if !kept.isEmpty { cands = kept }
        }
        return cands
    }

    /// Index of the largest logit (the first one on ties, as llama.cpp's greedy sampler).
    public static func argmax(_ logits: [Float]) -> Int32 {
        var best = 0
        var bestValue = -Float.infinity
        for (i, v) in logits.enumerated() where v > bestValue {
            best = i
            bestValue = v
        }
        return Int32(best)
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
