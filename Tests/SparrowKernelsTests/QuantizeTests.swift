import SparrowFormats
import SparrowKernels
import Testing

/// Quantizes `x` with the public API into a byte array of `bytes` bytes.
private func quantize(_ x: [Float], bytes: Int, _ body: (UnsafePointer<Float>, UnsafeMutableRawPointer) -> Void) -> [UInt8] {
    var out = [UInt8](repeating: 0xAA, count: bytes)
    x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBytes { body(xp.baseAddress!, $0.baseAddress!) } }
    return out
}

/// Activations with the awkward cases: ties (a block with amax exactly 127, so d = 1 and
/// x.5 values tie), a zero block, tiny and huge blocks, and ordinary values.
private func awkwardActivations(blocksOf32 n: Int, rng: inout SplitMix64) -> [Float] {
    var x = randomActivations(count: 32 * n, rng: &rng)
    if n > 1 { for j in 0..<32 { x[32 + j] = Float(Int.random(in: -127...127, using: &rng)) + (j % 3 == 0 ? 0.5 : 0) }; x[33] = 127 }
    if n > 2 { for j in 0..<32 { x[64 + j] = 0 } }
    if n > 3 { for j in 0..<32 { x[96 + j] *= 1e-30 } }
    if n > 4 { for j in 0..<32 { x[128 + j] *= 3e4 } }
    return x
}

@Suite("Activation quantization (Q8_0, Q8_1, Q8_K, F16, BF16)")
struct QuantizeTests {
    @Test("Q8_0, F16 and BF16 rows equal gguf-py's quantizers on the fixture activations",
          arguments: ["quant_q8_0", "quant_f16", "quant_bf16"])
    func matchesGGUFPy(_ name: String) throws {
        let f = try #require(try Fixtures.load().first { $0.name == name })
        let got = quantize(f.values, bytes: f.src.count) { x, dst in
            switch f.type {
            case .q8_0: QuantKernels.quantizeRowQ8_0(x, count: f.count, into: dst)
            case .f16: HalfRows.toF16(x, count: f.count, into: dst)
            default: HalfRows.toBF16(x, count: f.count, into: dst)
            }
        }
        #expect(got == f.src)
    }

    @Test("Q8_0/Q8_1/Q8_K equal literal ports of ggml's quantize_row_q8_*_ref", arguments: [1, 2, 3, 5, 8, 13])
    func matchesReference(_ blocks256: Int) {
        var rng = SplitMix64(seed: UInt64(blocks256))
        let x = awkwardActivations(blocksOf32: 8 * blocks256, rng: &rng)
        let n = x.count
        #expect(quantize(x, bytes: n / 32 * 34) { QuantKernels.quantizeRowQ8_0($0, count: n, into: $1) } == GGMLRef.quantizeQ8_0(x))
        #expect(quantize(x, bytes: n / 32 * 36) { QuantKernels.quantizeRowQ8_1($0, count: n, into: $1) } == GGMLRef.quantizeQ8_1(x))
        #expect(quantize(x, bytes: n / 256 * 292) { QuantKernels.quantizeRowQ8_K($0, count: n, into: $1) } == GGMLRef.quantizeQ8_K(x))
    }

    @Test("Reference rounding is roundf (ties away from zero); .x86SIMD is AVX2's 127/amax with ties to even")
    func roundingFlavours() {
        // amax = 127 → d = 1: every x.5 is an exact tie.
        var x = [Float](repeating: 0, count: 32)
        x[0] = 127; x[1] = 2.5; x[2] = -2.5; x[3] = 3.5; x[4] = 0.5
        let ref = quantize(x, bytes: 34) { QuantKernels.quantizeRowQ8_0($0, count: 32, into: $1) }
        let simd = quantize(x, bytes: 34) { QuantKernels.quantizeRowQ8_0($0, count: 32, into: $1, rounding: .x86SIMD) }
        #expect(ref[2...6].map { Int8(bitPattern: $0) } == [127, 3, -3, 4, 1])
        #expect(simd[2...6].map { Int8(bitPattern: $0) } == [127, 2, -2, 4, 0])
        // Q8_1's s follows the quants: ref sum 127+3-3+4+1 = 132, simd 127+2-2+4+0 = 131 (d = 1).
        let ref1 = quantize(x, bytes: 36) { QuantKernels.quantizeRowQ8_1($0, count: 32, into: $1) }
        let simd1 = quantize(x, bytes: 36) { QuantKernels.quantizeRowQ8_1($0, count: 32, into: $1, rounding: .x86SIMD) }
        #expect(fp16ToFloat(UInt16(ref1[2]) | UInt16(ref1[3]) << 8) == 132)
        #expect(fp16ToFloat(UInt16(simd1[2]) | UInt16(simd1[3]) << 8) == 131)
    }

    @Test("Quantize → dequantize round-trips within half a step (plus the f16 scale's rounding)", arguments: [GGMLType.q8_0, .q8_1, .q8_K])
    func roundTrip(_ type: GGMLType) throws {
        var rng = SplitMix64(seed: 99)
        let n = 256 * 7
        let x = randomActivations(count: n, rng: &rng)
        let q = quantize(x, bytes: n / type.blockSize * type.typeSize) { xp, dst in
            switch type {
            case .q8_0: QuantKernels.quantizeRowQ8_0(xp, count: n, into: dst)
            case .q8_1: QuantKernels.quantizeRowQ8_1(xp, count: n, into: dst)
            default: QuantKernels.quantizeRowQ8_K(xp, count: n, into: dst)
            }
        }
        let back = try dequantized(type, q, count: n)
        let bs = type.blockSize
        for b in 0..<n / bs {
            let amax = x[b * bs..<(b + 1) * bs].map(\.magnitude).max() ?? 0
            let step = amax / 127
            // Q8_K keeps d in f32: half a step. Q8_0/Q8_1 store d in f16 (relative error ≤ 2^-11,
            // times up to 127 steps): 0.5 + 127·2^-11 ≈ 0.562 steps.
            let bound = type == .q8_K ? step * 0.5001 : step * 0.5625
            for i in b * bs..<(b + 1) * bs {
                #expect(abs(back[i] - x[i]) <= bound, "\(type) element \(i): \(x[i]) → \(back[i])")
            }
        }
    }

    @Test("Q8_K side data: bsums are the 16-value sums, d is 1/iscale, zero blocks are all zero")
    func q8KSideData() {
        var rng = SplitMix64(seed: 4)
        var x = randomActivations(count: 512, rng: &rng)
        for i in 256..<512 { x[i] = 0 }
        let q = quantize(x, bytes: 584) { QuantKernels.quantizeRowQ8_K($0, count: 512, into: $1) }
        for g in 0..<16 {
            let sum = (0..<16).reduce(0) { $0 + Int(Int8(bitPattern: q[4 + 16 * g + $1])) }
            #expect(Int(Int16(bitPattern: UInt16(q[260 + 2 * g]) | UInt16(q[261 + 2 * g]) << 8)) == sum)
        }
        #expect(q[292...].allSatisfy { $0 == 0 })
        // The largest-magnitude value maps to -127 (iscale = -127/max).
        let imax = (0..<256).max { x[$0].magnitude < x[$1].magnitude } ?? 0
        #expect(Int8(bitPattern: q[4 + imax]) == -127)
    }

    @Test("NaN and infinite activations never trap")
    func nonFinite() {
        var x = [Float](repeating: 1, count: 256)
        x[3] = .nan; x[100] = .infinity; x[200] = -.infinity
        _ = quantize(x, bytes: 8 * 34) { QuantKernels.quantizeRowQ8_0($0, count: 256, into: $1) }
        _ = quantize(x, bytes: 8 * 36) { QuantKernels.quantizeRowQ8_1($0, count: 256, into: $1) }
        _ = quantize(x, bytes: 292) { QuantKernels.quantizeRowQ8_K($0, count: 256, into: $1) }
    }

    /// The dispatched quantizer (AVX2 on CPUs that have it) writes exactly the bytes of the
    /// scalar port of ggml's x86 quantizer, ties and zero/tiny/huge blocks included.
    @Test("dispatched Q8_0/Q8_1 activations equal the scalar x86 quantizer byte for byte")
    func dispatchedMatchesScalar() {
        var rng = SplitMix64(seed: 4242)
        for blocks in [1, 2, 5, 7, 48] {
            let x = awkwardActivations(blocksOf32: blocks, rng: &rng)
            let n = x.count
            for (weight, bytes) in [(GGMLType.q8_0, n / 32 * 34), (GGMLType.q4_1, n / 32 * 36)] {
                let dispatched = quantize(x, bytes: bytes) { QuantKernels.quantizeActivations($0, count: n, for: weight, into: $1) }
                let scalar = quantize(x, bytes: bytes) {
                    if weight == .q8_0 {
                        QuantKernels.quantizeRowQ8_0($0, count: n, into: $1, rounding: QuantKernels.activationRounding)
                    } else {
                        QuantKernels.quantizeRowQ8_1($0, count: n, into: $1, rounding: QuantKernels.activationRounding)
                    }
                }
                #expect(dispatched == scalar, "\(weight) blocks=\(blocks)")
            }
        }
    }

    /// The dispatched Q8_K quantizer (AVX2 on CPUs that have it) writes exactly the bytes of
    /// the scalar port of `quantize_row_q8_K_ref`: zero, tiny and huge blocks, .5 ties, the
    /// largest magnitude reached by several values of either sign (the first one sets iscale).
    @Test("dispatched Q8_K activations equal the scalar quantizer byte for byte", arguments: [1, 2, 3, 7])
    func dispatchedQ8KMatchesScalar(_ blocks256: Int) {
        var rng = SplitMix64(seed: 977 &+ UInt64(blocks256))
        var x = awkwardActivations(blocksOf32: 8 * blocks256, rng: &rng)
        if blocks256 > 1 {
            // Block 1: ±5 tie for the largest magnitude, negative first; values on .5 steps.
            for j in 256..<512 { x[j] = Float(Int.random(in: -9...9, using: &rng)) * 0.5 }
            x[300] = -5; x[301] = 5; x[400] = 5
        }
        if blocks256 > 2 { for j in 512..<768 { x[j] = 0 } }
        let n = x.count
        let dispatched = quantize(x, bytes: n / 256 * 292) { QuantKernels.quantizeActivations($0, count: n, for: .q4_K, into: $1) }
        let scalar = quantize(x, bytes: n / 256 * 292) { QuantKernels.quantizeRowQ8_K($0, count: n, into: $1) }
        #expect(dispatched == scalar, "blocks=\(blocks256)")
        if blocks256 > 1 {
            // −5 came first: iscale = −127 / −5, so −5 → −127 and 5 → 127.
            #expect(Int8(bitPattern: dispatched[292 + 4 + 300 - 256]) == -127)
            #expect(Int8(bitPattern: dispatched[292 + 4 + 301 - 256]) == 127)
        }
    }
}
