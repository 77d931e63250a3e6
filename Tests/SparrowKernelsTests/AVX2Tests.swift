import SparrowFormats
import SparrowKernels
import Testing

/// `QuantKernels.dotGeneric` (scalar ggml-generic order) on byte arrays.
func kernelDotGeneric(_ weight: GGMLType, _ row: [UInt8], _ act: [UInt8], count: Int) -> Float {
    row.withUnsafeBytes { r in act.withUnsafeBytes { a in QuantKernels.dotGeneric(weight, row: r.baseAddress!, activations: a.baseAddress!, count: count) } }
}

let simdTypes: [GGMLType] = [.q4_K, .q5_K, .q6_K, .q8_0, .q5_0, .q4_1, .f16, .bf16, .f32]

@Suite("AVX2 dot kernels")
struct AVX2Tests {
    /// The dispatched path (AVX2 where the CPU has it) agrees with the scalar generic path to
    /// 1e-5 · Σ|per-block terms|: the integer sums are exact, only float order differs.
    @Test("dispatched dot matches the scalar path", arguments: simdTypes.flatMap { t in [1, 2, 3, 6, 11].map { (t, $0) } })
    func matchesScalar(_ type: GGMLType, _ blocks: Int) throws {
        var rng = SplitMix64(seed: UInt64(type.rawValue) &* 4241 &+ UInt64(blocks))
        let n = blocks * type.blockSize
        for _ in 0..<4 {
            let row = randomRow(type, count: n, rng: &rng)
            let act = quantizedActivations(randomActivations(count: n, rng: &rng), for: type)
            let got = Double(kernelDot(type, row, act, count: n))
            let want = Double(kernelDotGeneric(type, row, act, count: n))
            let w = try dequantized(type, row, count: n)
            let a = try dequantized(QuantKernels.activationType(for: type), act, count: n)
            var mag = 0.0
            for i in 0..<n { mag += abs(Double(w[i]) * Double(a[i])) }
            // Q4_1's m·s term is added per block; count it in the magnitude too.
            mag += q8_1Slack(type, row, act, count: n) * 0x1p11
            #expect(abs(got - want) <= 1e-5 * mag + 1e-30, "\(type) n=\(n): simd \(got), scalar \(want), Σ|wa| \(mag)")
        }
    }

    /// Extreme quants: all-max / all-min weights and activations, where an integer overflow
    /// or saturation would show up as a large error.
    @Test("extreme values", arguments: simdTypes.filter { $0.blockSize > 1 })
    func extremes(_ type: GGMLType) throws {
        let n = 2 * type.blockSize
        for fill: UInt8 in [0x00, 0xFF, 0x80, 0x7F, 0x55] {
            var row = [UInt8](repeating: fill, count: n / type.blockSize * type.typeSize)
            var rng = SplitMix64(seed: UInt64(fill))
            let scaled = randomRow(type, count: n, rng: &rng)
            // Keep the random f16 scales (the fill may make them NaN/Inf), replace the quants.
            for b in 0..<n / type.blockSize {
                for off in halfFieldOffsets(type) {
                    row[b * type.typeSize + off] = scaled[b * type.typeSize + off]
                    row[b * type.typeSize + off + 1] = scaled[b * type.typeSize + off + 1]
                }
            }
            for sign: Float in [1, -1] {
                let x = [Float](repeating: sign, count: n)
                let act = quantizedActivations(x, for: type)
                let got = Double(kernelDot(type, row, act, count: n))
                let want = Double(kernelDotGeneric(type, row, act, count: n))
                let w = try dequantized(type, row, count: n)
                let a = try dequantized(QuantKernels.activationType(for: type), act, count: n)
                var mag = 0.0
                for i in 0..<n { mag += abs(Double(w[i]) * Double(a[i])) }
                mag += q8_1Slack(type, row, act, count: n) * 0x1p11
                #expect(abs(got - want) <= 1e-5 * mag + 1e-30, "\(type) fill=\(fill) sign=\(sign): simd \(got), scalar \(want)")
            }
        }
    }

    @Test("AVX2 is in use on x86-64 CPUs that have it")
    func reportsDispatch() {
        #if arch(x86_64)
        print("QuantKernels.useAVX2 = \(QuantKernels.useAVX2)")
        #endif
    }
}
