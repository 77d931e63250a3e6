import Foundation
import Testing
@testable import SparrowKernels

/// The Gated DeltaNet kernels against naive Double references written from the formulas of
/// transformers' `torch_recurrent_gated_delta_rule` and `causal_conv1d_fn`, and the property
/// prefix reuse rests on: running a sequence in pieces, carrying the state, or resuming from a
/// snapshot taken inside a pass, gives exactly the outputs of one pass.
@Suite("Gated DeltaNet kernels")
struct DeltaNetTests {
    static func random(_ count: Int, _ rng: inout SplitMix64, scale: Float = 1) -> [Float] {
        (0..<count).map { _ in rng.normal() * scale }
    }

    /// out[t][c] = silu(Σ_j w[c][j] · xs[t+j][c]) with xs = zeros(kernel-1) ++ x, in Double.
    static func naiveConv(_ x: [Float], n: Int, channels: Int, weight: [Float], kernel: Int) -> [Double] {
        var out = [Double](repeating: 0, count: n * channels)
        for t in 0..<n {
            for c in 0..<channels {
                var s = 0.0
                for j in 0..<kernel {
                    let p = t + j - (kernel - 1)
                    if p >= 0 { s += Double(weight[c * kernel + j]) * Double(x[p * channels + c]) }
                }
                out[t * channels + c] = s / (1 + exp(-s))
            }
        }
        return out
    }

    @Test("causal conv1d + SiLU matches the naive form, in one pass or in pieces with its state")
    func convolution() {
        var rng = SplitMix64(seed: 7)
        let n = 11, channels = 37, kernel = 4
        let x = Self.random(n * channels, &rng), w = Self.random(channels * kernel, &rng, scale: 0.5)
        let want = Self.naiveConv(x, n: n, channels: channels, weight: w, kernel: kernel)

        var whole = [Float](repeating: 0, count: n * channels)
        var state = [Float](repeating: 0, count: (kernel - 1) * channels)
        var snapshot = [Float](repeating: .nan, count: (kernel - 1) * channels)
        DeltaNet.causalConv1dSiLU(x, n: n, channels: channels, weight: w, kernel: kernel, state: &state, out: &whole,
                                  snapshotAfter: 5, snapshot: &snapshot)
        let worst = zip(whole, want).map { abs(Double($0) - $1) }.max() ?? 0
        #expect(worst < 1e-5)
        // The final state is the last kernel-1 inputs.
        #expect(state == Array(x[(n - kernel + 1) * channels ..< n * channels]))

        // Pieces of 5, 1 and 5 tokens, carrying the state, give the same outputs bit for bit;
        // the snapshot taken after 5 tokens is the state after the first piece.
        var pieces: [Float] = []
        var carried = [Float](repeating: 0, count: (kernel - 1) * channels)
        var start = 0
        for len in [5, 1, 5] {
            var out = [Float](repeating: 0, count: len * channels)
            Array(x[start * channels ..< (start + len) * channels]).withUnsafeBufferPointer { xs in
                DeltaNet.causalConv1dSiLU(xs.baseAddress!, n: len, channels: channels, weight: w, kernel: kernel,
                                          state: &carried, out: &out)
            }
            if start == 0 { #expect(carried == snapshot) }
            pieces += out
            start += len
        }
        #expect(pieces == whole)
    }

    /// The recurrence in Double with explicit state matrices S_h [dv][dk]:
    /// S ← e^g S; S ← S + β (v − S k) kᵀ; o = S q (q, k already normalised and scaled).
    static func naiveRule(q: [Float], k: [Float], v: [Float], g: [Float], beta: [Float], n: Int,
                          nK: Int, nV: Int, dk: Int, dv: Int, grouping: DeltaNet.HeadGrouping) -> [Double] {
        var out = [Double](repeating: 0, count: n * nV * dv)
        for h in 0..<nV {
            let kh = grouping == .grouped ? h / (nV / nK) : h % nK
            var s = [[Double]](repeating: [Double](repeating: 0, count: dk), count: dv)
            for t in 0..<n {
                let decay = exp(Double(g[t * nV + h])), b = Double(beta[t * nV + h])
                let kt = (0..<dk).map { Double(k[(t * nK + kh) * dk + $0]) }
                let qt = (0..<dk).map { Double(q[(t * nK + kh) * dk + $0]) }
                for j in 0..<dv {
                    for i in 0..<dk { s[j][i] *= decay }
                    let mem = (0..<dk).reduce(0.0) { $0 + s[j][$1] * kt[$1] }
                    let delta = b * (Double(v[(t * nV + h) * dv + j]) - mem)
                    for i in 0..<dk { s[j][i] += delta * kt[i] }
                    out[(t * nV + h) * dv + j] = (0..<dk).reduce(0.0) { $0 + s[j][$1] * qt[$1] }
                }
            }
        }
        return out
    }

    @Test("the gated delta rule matches the naive recurrence for grouped and tiled value heads; pieces and snapshots agree",
          arguments: [DeltaNet.HeadGrouping.grouped, .tiled])
    func deltaRule(grouping: DeltaNet.HeadGrouping) {
        var rng = SplitMix64(seed: grouping == .grouped ? 11 : 12)
        let n = 9, nK = 2, nV = 6, dk = 16, dv = 8
        var q = Self.random(n * nK * dk, &rng), k = Self.random(n * nK * dk, &rng)
        q.withUnsafeMutableBufferPointer { DeltaNet.l2Normalize($0.baseAddress!, rows: n * nK, n: dk, eps: 1e-6) }
        k.withUnsafeMutableBufferPointer { DeltaNet.l2Normalize($0.baseAddress!, rows: n * nK, n: dk, eps: 1e-6) }
        for r in 0..<(n * nK) {
            let norm = (0..<dk).reduce(Float(0)) { $0 + k[r * dk + $1] * k[r * dk + $1] }
            #expect(abs(norm - 1) < 1e-5)
        }
        q = q.map { $0 / Float(dk).squareRoot() }
        let v = Self.random(n * nV * dv, &rng)
        let a = Self.random(n * nV, &rng), b = Self.random(n * nV, &rng)
        let dt = Self.random(nV, &rng, scale: 0.5), decay = (0..<nV).map { -Float($0 + 1) * 0.3 }
        var beta = [Float](repeating: 0, count: n * nV), g = beta
        DeltaNet.gates(b: b, a: a, dtBias: dt, decay: decay, n: n, heads: nV, beta: &beta, g: &g)
        for i in 0..<(n * nV) {
            let x = Double(a[i] + dt[i % nV])
            #expect(abs(Double(g[i]) - log1p(exp(x)) * Double(decay[i % nV])) < 1e-5)
            #expect(abs(Double(beta[i]) - 1 / (1 + exp(-Double(b[i])))) < 1e-6)
        }

        let want = Self.naiveRule(q: q, k: k, v: v, g: g, beta: beta, n: n, nK: nK, nV: nV, dk: dk, dv: dv, grouping: grouping)
        var state = [Float](repeating: 0, count: nV * dv * dk), out = [Float](repeating: 0, count: n * nV * dv)
        var snapshot = [Float](repeating: .nan, count: nV * dv * dk)
        DeltaNet.gatedDeltaRule(q: q, k: k, v: v, g: g, beta: beta, state: &state, out: &out, n: n,
                                keyHeads: nK, valueHeads: nV, keyDim: dk, valueDim: dv, grouping: grouping,
                                snapshotAfter: 4, snapshot: &snapshot)
        let scale = want.map(abs).max() ?? 1
        let worst = zip(out, want).map { abs(Double($0) - $1) }.max() ?? 0
        #expect(worst / scale < 1e-5, "max relative difference \(worst / scale)")

        // The same tokens as 4 + 5, carrying the state: identical outputs; the snapshot after 4
        // tokens equals the state after the first piece.
        var carried = [Float](repeating: 0, count: nV * dv * dk)
        var pieces: [Float] = []
        for (start, len) in [(0, 4), (4, 5)] {
            var part = [Float](repeating: 0, count: len * nV * dv)
            let qs = Array(q[start * nK * dk ..< (start + len) * nK * dk]), ks = Array(k[start * nK * dk ..< (start + len) * nK * dk])
            let vs = Array(v[start * nV * dv ..< (start + len) * nV * dv])
            let gs = Array(g[start * nV ..< (start + len) * nV]), bs = Array(beta[start * nV ..< (start + len) * nV])
            DeltaNet.gatedDeltaRule(q: qs, k: ks, v: vs, g: gs, beta: bs, state: &carried, out: &part, n: len,
                                    keyHeads: nK, valueHeads: nV, keyDim: dk, valueDim: dv, grouping: grouping)
            if start == 0 { #expect(carried == snapshot) }
            pieces += part
        }
        #expect(pieces == out)
        #expect(carried == state)
    }

    @Test("grouped and tiled orders name different key heads when value heads outnumber key heads")
    func headOrders() {
        #expect((0..<6).map { DeltaNet.HeadGrouping.grouped.keyHead($0, keyHeads: 2, valueHeads: 6) } == [0, 0, 0, 1, 1, 1])
        #expect((0..<6).map { DeltaNet.HeadGrouping.tiled.keyHead($0, keyHeads: 2, valueHeads: 6) } == [0, 1, 0, 1, 0, 1])
        #expect((0..<4).map { DeltaNet.HeadGrouping.tiled.keyHead($0, keyHeads: 4, valueHeads: 4) } == [0, 1, 2, 3])
    }
}
