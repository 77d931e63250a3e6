import SparrowFormats
import SparrowKernels
import Testing

/// Quantizes `x` for `weight` through the public API.
func quantizedActivations(_ x: [Float], for weight: GGMLType) -> [UInt8] {
    var act = [UInt8](repeating: 0, count: QuantKernels.activationRowBytes(for: weight, count: x.count))
    x.withUnsafeBufferPointer { xp in
        act.withUnsafeMutableBytes { QuantKernels.quantizeActivations(xp.baseAddress!, count: x.count, for: weight, into: $0.baseAddress!) }
    }
    return act
}

/// `QuantKernels.dot` on byte arrays.
func kernelDot(_ weight: GGMLType, _ row: [UInt8], _ act: [UInt8], count: Int) -> Float {
    row.withUnsafeBytes { r in act.withUnsafeBytes { a in QuantKernels.dot(weight, row: r.baseAddress!, activations: a.baseAddress!, count: count) } }
}

/// Extra error allowed for Q4_1/Q5_1: ggml stores Q8_1's `s = d * sum(q)` as f16, so the
/// `m * s` term carries up to half an f16 ULP (2^-11 relative) of |m * s| per block, which a
/// naive dot of the dequantized values does not have. Zero for other types.
func q8_1Slack(_ type: GGMLType, _ row: [UInt8], _ act: [UInt8], count: Int) -> Double {
    guard type == .q4_1 || type == .q5_1 else { return 0 }
    var slack = 0.0
    for b in 0..<count / 32 {
        let m = GGMLRef.f16(row, b * type.typeSize + 2), s = GGMLRef.f16(act, b * 36 + 2)
        slack += abs(Double(m) * Double(s)) * 0x1p-11
    }
    return slack
}

/// (type, number of blocks) pairs: 1, 2, 3 blocks and odd counts, for every weight type.
let dotCases: [(GGMLType, Int)] = weightTypes.flatMap { t in [1, 2, 3, 7, 11].map { (t, $0) } }

@Suite("Quantized dot products")
struct VecDotTests {
    @Test("activationType follows ggml's vec_dot_type table")
    func pairing() {
        let expected: [GGMLType: GGMLType] = [
            .f32: .f32, .f16: .f16, .bf16: .bf16, .q4_0: .q8_0, .q5_0: .q8_0, .q8_0: .q8_0, .q4_1: .q8_1, .q5_1: .q8_1,
            .q2_K: .q8_K, .q3_K: .q8_K, .q4_K: .q8_K, .q5_K: .q8_K, .q6_K: .q8_K,
        ]
        for (w, a) in expected {
            #expect(QuantKernels.activationType(for: w) == a, "\(w)")
            #expect(QuantKernels.activationRowBytes(for: w, count: 512) == a.rowBytes(512))
        }
    }

    /// Exactness: the kernels must reproduce ggml's generic C routines bit for bit, including
    /// the eight-lane float accumulation of the K-quants. GGMLRef is a naive transliteration.
    @Test("dot equals a literal port of ggml_vec_dot_*_generic bit for bit", arguments: dotCases)
    func bitExact(_ type: GGMLType, _ blocks: Int) {
        var rng = SplitMix64(seed: UInt64(type.rawValue) &* 1000 &+ UInt64(blocks))
        let n = blocks * (type.blockSize == 1 ? 32 : type.blockSize) + (type.blockSize == 1 ? blocks : 0)
        let row = randomRow(type, count: n, rng: &rng)
        let act = quantizedActivations(randomActivations(count: n, rng: &rng), for: type)
        let got = kernelDotGeneric(type, row, act, count: n)  // the scalar path; AVX2Tests covers `dot`
        let want = GGMLRef.dot(type, row, act, n: n)
        #expect(got.bitPattern == want.bitPattern, "\(type) n=\(n): got \(got), ggml generic \(want)")
    }

    /// Accuracy: against dequantize-both-then-dot in Double. The kernels differ from that only
    /// by float rounding of the per-block scale products, so the error is bounded relative to
    /// Σ|w·a| (1e-5 is loose for f32 arithmetic), plus Q8_1's f16 `s` rounding (`q8_1Slack`).
    @Test("dot equals a naive dequantize-and-dot reference in Double", arguments: dotCases)
    func matchesNaive(_ type: GGMLType, _ blocks: Int) throws {
        var rng = SplitMix64(seed: UInt64(type.rawValue) &* 7919 &+ UInt64(blocks))
        let n = blocks * (type.blockSize == 1 ? 32 : type.blockSize) + (type.blockSize == 1 ? blocks : 0)
        let row = randomRow(type, count: n, rng: &rng)
        let act = quantizedActivations(randomActivations(count: n, rng: &rng), for: type)
        let w = try dequantized(type, row, count: n)
        let a = try dequantized(QuantKernels.activationType(for: type), act, count: n)
        var ref = 0.0, mag = 0.0
        for i in 0..<n { ref += Double(w[i]) * Double(a[i]); mag += abs(Double(w[i]) * Double(a[i])) }
        let got = Double(kernelDot(type, row, act, count: n))
        #expect(abs(got - ref) <= 1e-5 * mag + q8_1Slack(type, row, act, count: n) + 1e-30, "\(type) n=\(n): got \(got), naive \(ref), Σ|wa| \(mag)")
    }

    @Test("Real model rows: dot with real activations is exact vs ggml's order and close to naive", arguments: Fixtures.names)
    func realRows(_ name: String) throws {
        let f = try #require(try Fixtures.load().first { $0.name == name })
        guard f.direction == "dequant", f.source.contains(".gguf:") else { return }
        var rng = SplitMix64(seed: 17)
        let x = randomActivations(count: f.count, rng: &rng)
        let act = quantizedActivations(x, for: f.type)
        let got = kernelDot(f.type, f.src, act, count: f.count)
        #expect(kernelDotGeneric(f.type, f.src, act, count: f.count).bitPattern == GGMLRef.dot(f.type, f.src, act, n: f.count).bitPattern)
        let a = try dequantized(QuantKernels.activationType(for: f.type), act, count: f.count)
        var ref = 0.0, mag = 0.0
        for i in 0..<f.count { ref += Double(f.values[i]) * Double(a[i]); mag += abs(Double(f.values[i]) * Double(a[i])) }
        #expect(abs(Double(got) - ref) <= 1e-5 * mag + q8_1Slack(f.type, f.src, act, count: f.count))
        // And the quantized product tracks the exact f32 product to quantization accuracy.
        var exact = 0.0
        for i in 0..<f.count { exact += Double(f.values[i]) * Double(x[i]) }
        #expect(abs(Double(got) - exact) <= 2e-2 * mag + 1e-6)
    }

    @Test("Unsupported weight types give NaN, and quantizeActivations leaves the buffer alone")
    func unsupported() {
        #expect(kernelDot(.iq2_xxs, [UInt8](repeating: 0, count: 66), [UInt8](repeating: 0, count: 292), count: 256).isNaN)
        let act = [UInt8](repeating: 0xAB, count: QuantKernels.activationRowBytes(for: .iq4_xs, count: 256))
        var copy = act
        let x = [Float](repeating: 1, count: 256)
        x.withUnsafeBufferPointer { xp in copy.withUnsafeMutableBytes { QuantKernels.quantizeActivations(xp.baseAddress!, count: 256, for: .iq4_xs, into: $0.baseAddress!) } }
        #expect(copy == act)
    }

    @Test("Unaligned row and activation pointers give identical results")
    func unaligned() {
        var rng = SplitMix64(seed: 8)
        for type in weightTypes {
            let n = 2 * max(type.blockSize, 32)
            let row = randomRow(type, count: n, rng: &rng)
            let act = quantizedActivations(randomActivations(count: n, rng: &rng), for: type)
            let aligned = kernelDot(type, row, act, count: n)
            let r1 = [0] + row, a1 = [0, 0, 0] + act
            let shifted = r1.withUnsafeBytes { r in a1.withUnsafeBytes { a in
                QuantKernels.dot(type, row: r.baseAddress! + 1, activations: a.baseAddress! + 3, count: n)
            } }
            #expect(shifted.bitPattern == aligned.bitPattern, "\(type)")
        }
    }
}
