import Foundation
import Testing
@testable import SparrowSampling

@Suite("Sampler")
struct SamplerTests {
    @Test("greedy takes the argmax, first on ties")
    func greedy() {
        var s = Sampler(.greedy)
        #expect(s.sample([0.1, 3, 3, -1]) == 1)
    }

    @Test("argmax is the first strict maximum of a scalar scan: ties, NaN, -inf, odd lengths")
    func argmaxMatchesScan() {
        func scan(_ l: [Float]) -> Int32 {
            var best = 0, value = -Float.infinity
            for (i, v) in l.enumerated() where v > value { best = i; value = v }
            return Int32(best)
        }
        var g = SystemRandomNumberGenerator()
        for n in [1, 7, 8, 9, 17, 64, 151_936] {
            for trial in 0..<6 {
                // Few distinct values, so the maximum is often tied, and its copies land in
                // both the vector part and the tail.
                var l = (0..<n).map { _ in Float(Int.random(in: -3...3, using: &g)) }
                if trial == 1 { l[Int.random(in: 0..<n, using: &g)] = .nan }
                if trial == 2 { l = [Float](repeating: -.infinity, count: n) }
                if trial == 3 { l = [Float](repeating: .nan, count: n); l[n - 1] = -1 }
                if trial == 4 { l[n - 1] = 100 }
                if trial == 5 { l[0] = -0.0; for i in 1..<n { l[i] = i % 2 == 0 ? 0 : -1 } }
                #expect(Sampler.argmax(l) == scan(l), "n=\(n) trial \(trial)")
            }
        }
    }

    @Test("logit bias can ban and force tokens")
    func bias() {
        var p = SamplingParameters.greedy
        p.logitBias = [1: -100, 3: 10]
        var s = Sampler(p)
        #expect(s.sample([0, 5, 1, 2]) == 3)
    }

    @Test("top-k 1 is greedy whatever the temperature")
    func topK() {
        var p = SamplingParameters()
        p.temperature = 5
        p.topK = 1
        p.seed = 3
        var s = Sampler(p)
        for _ in 0..<20 { #expect(s.sample([1, 2, 9, 3]) == 2) }
    }

    @Test("min-p drops unlikely tokens; top-p keeps the nucleus")
    func cutoffs() {
        var p = SamplingParameters()
        p.topK = 0
        p.topP = 1
        p.minP = 0.5
        let c = Sampler.truncate([0, 5, 4.9, -3], p)
        #expect(Set(c.map(\.id)) == [1, 2])
        p.minP = 0
        p.topP = 0.5
        let d = Sampler.truncate([0, 5, 4.9, -3], p)
        #expect(d.map(\.id) == [1])
    }

    /// The cut-offs as the straightforward definition: sort every candidate, then cut.
    static func truncateBySorting(_ logits: [Float], _ p: SamplingParameters) -> [Sampler.Candidate] {
        var cands = logits.enumerated().map { Sampler.Candidate(id: Int32($0.offset), logit: $0.element) }
        cands.sort { $0.logit > $1.logit || ($0.logit == $1.logit && $0.id < $1.id) }
        if p.topK > 0 { cands = Array(cands.prefix(p.topK)) }
        let top = cands[0].logit
        if p.topP < 1 {
            let e = cands.map { Double(expf($0.logit - top)) }
            let total = e.reduce(0, +)
            var acc = 0.0
            for (i, v) in e.enumerated() {
                acc += v / total
                if acc >= Double(p.topP) { cands = Array(cands.prefix(i + 1)); break }
            }
        }
        if p.minP > 0 {
            let kept = cands.filter { $0.logit >= top + logf(p.minP) }
            if !kept.isEmpty { cands = kept }
        }
        return cands
    }

    @Test("the cut-offs without a full sort keep exactly what sorting everything and cutting keeps")
    func cutoffsMatchSorting() {
        var rng = SystemRandomNumberGenerator()
        for trial in 0..<300 {
            let n = [1, 2, 7, 100, 5000][trial % 5]
            let spread = Float([0.5, 3, 12][trial % 3])
            let logits = (0..<n).map { _ in Float.random(in: -spread...spread, using: &rng) }
            var p = SamplingParameters()
            p.topK = [0, 1, 5, 40, 10_000][Int.random(in: 0..<5, using: &rng)]
            p.topP = [1, 0.95, 0.5, 0.999, 0.01][Int.random(in: 0..<5, using: &rng)]
            p.minP = [0, 0.05, 0.3][Int.random(in: 0..<3, using: &rng)]
            let fast = Sampler.truncate(logits, p), slow = Self.truncateBySorting(logits, p)
            if (p.topK == 0 || p.topK >= n) && p.topP >= 1 && p.minP == 0 {
                #expect(fast.map(\.id) == (0..<Int32(n)).map { $0 })  // nothing cut: vocabulary order
            } else {
                #expect(fast.map(\.id) == slow.map(\.id), "n \(n) k \(p.topK) p \(p.topP) min-p \(p.minP)")
            }
        }
    }

    @Test("penalties lower the logits of tokens already seen")
    func penalties() {
        var p = SamplingParameters.greedy
        p.repetitionPenalty = 2
        p.presencePenalty = 0.5
        p.frequencyPenalty = 0.25
        var s = Sampler(p)
        s.accept(0); s.accept(0)
        var logits: [Float] = [4, 1.5]
        s.applyBiasAndPenalties(&logits)
        let expected: Float = 4.0 / 2 - 2 * 0.25 - 0.5  // repetition, then frequency × count, then presence
        #expect(logits[0] == expected)
        #expect(logits[1] == 1.5)
        #expect(s.sample([4, 1.5]) == 1)
    }

    @Test("the same seed draws the same sequence")
    func seeded() {
        var p = SamplingParameters()
        p.seed = 99
        p.topK = 0
        p.minP = 0
        let logits: [Float] = (0..<50).map { Float($0 % 7) * 0.3 }
        var a = Sampler(p), b = Sampler(p)
        let xa = (0..<30).map { _ in a.sample(logits) }
        let xb = (0..<30).map { _ in b.sample(logits) }
        #expect(xa == xb)
        #expect(Set(xa).count > 1)
    }

    @Test("validate names the bad parameter")
    func validate() {
        var p = SamplingParameters()
        p.temperature = -1
        #expect(throws: SamplingError.self) { try p.validate() }
        p.temperature = 1
        p.minP = 1
        #expect(throws: SamplingError.invalid("min_p", "1.0", "must be in [0, 1)")) { try p.validate() }
    }
}
