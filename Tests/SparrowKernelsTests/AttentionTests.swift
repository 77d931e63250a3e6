import Foundation
import SparrowFormats
import SparrowKernels
import Testing
#if arch(x86_64)
import SparrowKernelsAVX2
#endif

@Suite("Attention and vector primitives")
struct AttentionTests {
    /// Causal GQA attention (f32 and f16 caches, head sizes with and without 8/16-lane tails,
    /// several query tokens after a prefix) against a Double-precision softmax(q·k)·v over the
    /// values the cache actually holds.
    @Test("causal attention matches a naive reference", arguments: [KVCacheType.f32, .f16])
    func matchesNaive(_ type: KVCacheType) {
        var rng = SplitMix64(seed: 17)
        for (headDim, nTokens, start) in [(8, 1, 0), (20, 3, 5), (64, 1, 40), (128, 4, 2), (7, 2, 1)] {
            let nHeads = 4, nKVHeads = 2, group = nHeads / nKVHeads
            let rowsN = start + nTokens
            let kvStride = nKVHeads * headDim
            let q = (0..<nTokens * nHeads * headDim).map { _ in rng.normal() }
            let kf = (0..<rowsN * kvStride).map { _ in rng.normal() }
            let vf = (0..<rowsN * kvStride).map { _ in rng.normal() }
            // What the cache holds, and its bytes.
            let kHeld = type == .f16 ? kf.map { fp16ToFloat(floatToFP16($0)) } : kf
            let vHeld = type == .f16 ? vf.map { fp16ToFloat(floatToFP16($0)) } : vf
            let kBytes: [UInt8] = type == .f16 ? kf.flatMap { withUnsafeBytes(of: floatToFP16($0)) { Array($0) } } : kf.flatMap { withUnsafeBytes(of: $0) { Array($0) } }
            let vBytes: [UInt8] = type == .f16 ? vf.flatMap { withUnsafeBytes(of: floatToFP16($0)) { Array($0) } } : vf.flatMap { withUnsafeBytes(of: $0) { Array($0) } }
            var out = [Float](repeating: .nan, count: nTokens * nHeads * headDim)
            let scale = 1 / Float(headDim).squareRoot()
            q.withUnsafeBufferPointer { qp in kBytes.withUnsafeBytes { kp in vBytes.withUnsafeBytes { vp in out.withUnsafeMutableBufferPointer { op in
                Attention.causal(q: qp.baseAddress!, k: kp.baseAddress!, v: vp.baseAddress!, type: type, out: op.baseAddress!,
                                 nTokens: nTokens, startPosition: start, nHeads: nHeads, nKVHeads: nKVHeads, headDim: headDim, scale: scale)
            } } } }
            for t in 0..<nTokens {
                for h in 0..<nHeads {
                    let kvh = h / group
                    let length = start + t + 1
                    var scores = [Double](repeating: 0, count: length)
                    for p in 0..<length {
                        var dot = 0.0
                        for i in 0..<headDim { dot += Double(q[(t * nHeads + h) * headDim + i]) * Double(kHeld[p * kvStride + kvh * headDim + i]) }
                        scores[p] = dot * Double(scale)
                    }
                    let m = scores.max()!
                    let e = scores.map { exp($0 - m) }
                    let z = e.reduce(0, +)
                    for i in 0..<headDim {
                        var want = 0.0
                        for p in 0..<length { want += e[p] / z * Double(vHeld[p * kvStride + kvh * headDim + i]) }
                        let got = Double(out[(t * nHeads + h) * headDim + i])
                        // f16 rounds q and the probabilities (as llama.cpp does): ~1e-3 relative.
                        let tol = type == .f16 ? 5e-3 : 1e-5
                        #expect(abs(got - want) <= tol * 4, "\(type) d=\(headDim) t=\(t) h=\(h) i=\(i): \(got) vs \(want)")
                    }
                }
            }
        }
    }

    /// Several sequences in one call (a batched step: different lengths, positions and caches)
    /// give each sequence exactly what a call for it alone gives.
    @Test("a batch of sequences equals each sequence alone, bit for bit", arguments: [KVCacheType.f32, .f16])
    func segments(_ type: KVCacheType) {
        var rng = SplitMix64(seed: 23)
        let nHeads = 14, nKVHeads = 2, headDim = 64, scale = Float(0.125)
        let shapes = [(1, 0), (1, 37), (5, 3), (1, 70), (3, 0)]  // (tokens, start position)
        let kvStride = nKVHeads * headDim
        var qs: [[Float]] = [], ks: [[UInt8]] = [], vs: [[UInt8]] = []
        for (n, start) in shapes {
            qs.append((0..<n * nHeads * headDim).map { _ in rng.normal() })
            let bytes = { (count: Int, rng: inout SplitMix64) -> [UInt8] in
                (0..<count).flatMap { _ -> [UInt8] in
                    let x = rng.normal()
                    return type == .f16 ? withUnsafeBytes(of: floatToFP16(x)) { Array($0) } : withUnsafeBytes(of: x) { Array($0) }
                }
            }
            ks.append(bytes((start + n) * kvStride, &rng))
            vs.append(bytes((start + n) * kvStride, &rng))
        }
        let pointers = (0..<shapes.count).map { i in
            (q: UnsafeMutablePointer<Float>.allocate(capacity: qs[i].count), k: UnsafeMutableRawPointer.allocate(byteCount: ks[i].count, alignment: 64),
             v: UnsafeMutableRawPointer.allocate(byteCount: vs[i].count, alignment: 64),
             batch: UnsafeMutablePointer<Float>.allocate(capacity: qs[i].count), alone: UnsafeMutablePointer<Float>.allocate(capacity: qs[i].count))
        }
        defer { for p in pointers { p.q.deallocate(); p.k.deallocate(); p.v.deallocate(); p.batch.deallocate(); p.alone.deallocate() } }
        for (i, p) in pointers.enumerated() {
            p.q.update(from: qs[i], count: qs[i].count)
            ks[i].withUnsafeBytes { p.k.copyMemory(from: $0.baseAddress!, byteCount: ks[i].count) }
            vs[i].withUnsafeBytes { p.v.copyMemory(from: $0.baseAddress!, byteCount: vs[i].count) }
        }
        let parts = zip(shapes, pointers).map { shape, p in
            Attention.Segment(q: p.q, k: p.k, v: p.v, type: type, out: p.batch, nTokens: shape.0, startPosition: shape.1)
        }
        Attention.causal(segments: parts, nHeads: nHeads, nKVHeads: nKVHeads, headDim: headDim, scale: scale)
        for (i, (n, start)) in shapes.enumerated() {
            let p = pointers[i]
            Attention.causal(q: p.q, k: p.k, v: p.v, type: type, out: p.alone, nTokens: n, startPosition: start,
                             nHeads: nHeads, nKVHeads: nKVHeads, headDim: headDim, scale: scale)
            let count = qs[i].count
            #expect((0..<count).allSatisfy { p.batch[$0].bitPattern == p.alone[$0].bitPattern }, "\(type) sequence \(i)")
        }
    }

    #if arch(x86_64)
    /// The AVX2 vector primitives against naive loops for every length 0...40 (all tails).
    @Test("AVX2 vector primitives match naive loops")
    func vectorPrimitives() throws {
        try #require(QuantKernels.useAVX2 || true)
        guard QuantKernels.useAVX2 else { return }
        var rng = SplitMix64(seed: 5)
        for n in 0...40 {
            let a = (0..<n).map { _ in rng.normal() }
            let b = (0..<n).map { _ in rng.normal() }
            let bh = b.map { floatToFP16($0) }
            let ah = a.map { floatToFP16($0) }
            let ab = a.map { bf16ToFloat(floatToBF16($0)) }, bb = b.map { bf16ToFloat(floatToBF16($0)) }
            let abRaw = a.map { floatToBF16($0) }, bbRaw = b.map { floatToBF16($0) }
            var want16 = 0.0, want32 = 0.0, want1616 = 0.0, wantBF = 0.0, mag = 0.0
            for i in 0..<n {
                want16 += Double(a[i]) * Double(fp16ToFloat(bh[i]))
                want32 += Double(a[i]) * Double(b[i])
                want1616 += Double(fp16ToFloat(ah[i])) * Double(fp16ToFloat(bh[i]))
                wantBF += Double(ab[i]) * Double(bb[i])
                mag += abs(Double(a[i]) * Double(b[i]))
            }
            let tol = 1e-5 * (mag + 1)
            let got16 = a.withUnsafeBufferPointer { ap in bh.withUnsafeBytes { AVX2Vector.dotF16(ap.baseAddress!, $0.baseAddress!, count: n) } }
            let got32 = a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { AVX2Vector.dotF32(ap.baseAddress!, $0.baseAddress!, count: n) } }
            let got1616 = ah.withUnsafeBytes { ap in bh.withUnsafeBytes { AVX2Vector.dotF16F16(ap.baseAddress!, $0.baseAddress!, count: n) } }
            let gotBF = abRaw.withUnsafeBytes { ap in bbRaw.withUnsafeBytes { AVX2Vector.dotBF16BF16(ap.baseAddress!, $0.baseAddress!, count: n) } }
            #expect(abs(Double(got16) - want16) <= tol, "dotF16 n=\(n)")
            #expect(abs(Double(got32) - want32) <= tol, "dotF32 n=\(n)")
            #expect(abs(Double(got1616) - want1616) <= tol, "dotF16F16 n=\(n)")
            #expect(abs(Double(gotBF) - wantBF) <= tol, "dotBF16 n=\(n)")
            // o += w·v
            var o16 = a, o32 = a
            o16.withUnsafeMutableBufferPointer { op in bh.withUnsafeBytes { AVX2Vector.axpyF16(0.75, $0.baseAddress!, op.baseAddress!, count: n) } }
            o32.withUnsafeMutableBufferPointer { op in b.withUnsafeBufferPointer { AVX2Vector.axpyF32(0.75, $0.baseAddress!, op.baseAddress!, count: n) } }
            for i in 0..<n {
                let w16: Float = a[i] + 0.75 * fp16ToFloat(bh[i])
                let w32: Float = a[i] + 0.75 * b[i]
                #expect(abs(o16[i] - w16) <= 1e-6 * (abs(w16) + 1), "axpyF16 n=\(n) i=\(i)")
                #expect(abs(o32[i] - w32) <= 1e-6 * (abs(w32) + 1), "axpyF32 n=\(n) i=\(i)")
            }
        }
    }
    #endif

    /// SwiGLU against Double-precision silu(g)·u: within 4 ulp-ish (1e-6 relative) over the
    /// range hidden states take and beyond (the exponent clamps), every tail length, and an
    /// element's result does not depend on its position (batch invariance).
    @Test("siluMul matches silu(g)·u in Double precision, wherever an element sits")
    func siluMul() {
        var rng = SplitMix64(seed: 11)
        for n in [0, 1, 7, 8, 9, 23, 4864] {
            var g = (0..<n).map { _ in rng.normal() * 6 }, u = (0..<n).map { _ in rng.normal() }
            if n > 8 { g[0] = 95; g[1] = -95; g[2] = 0; g[3] = -0.0; g[4] = 1e-30; g[5] = -20; g[6] = 30 }
            var out = g
            out.withUnsafeMutableBufferPointer { o in u.withUnsafeBufferPointer { Ops.siluMul(gate: o.baseAddress!, up: $0.baseAddress!, count: n) } }
            for i in 0..<n {
                let x = Double(g[i]), want = x / (1 + Foundation.exp(-x)) * Double(u[i])
                #expect(abs(Double(out[i]) - want) <= 1e-6 * abs(want) + 1e-30, "n=\(n) i=\(i) g=\(g[i]): \(out[i]) vs \(want)")
                // The same element alone (a tail of one) gives the same bits.
                var one = [g[i]]
                one.withUnsafeMutableBufferPointer { o in [u[i]].withUnsafeBufferPointer { Ops.siluMul(gate: o.baseAddress!, up: $0.baseAddress!, count: 1) } }
                #expect(one[0].bitPattern == out[i].bitPattern, "n=\(n) i=\(i)")
            }
        }
    }
}
