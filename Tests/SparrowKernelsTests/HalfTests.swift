import SparrowFormats
import SparrowKernels
import Testing

@Suite("F16 and BF16 conversions")
struct HalfTests {
    @Test("fp16ToFloat equals Float(Float16) for all 65,536 bit patterns (NaN payloads included)")
    func fp16WidenExhaustive() {
        var mismatches: [UInt16] = []
        for bits in 0...UInt16.max {
            let expected = Float(Float16(bitPattern: bits))
            let got = fp16ToFloat(bits)
            // Signalling NaNs are quieted by both; compare bits everywhere.
            if got.bitPattern != expected.bitPattern { mismatches.append(bits) }
        }
        #expect(mismatches.isEmpty, "first mismatches: \(mismatches.prefix(8).map { String($0, radix: 16) })")
    }

    @Test("floatToFP16 rounds like Float16(_:) on edge cases", arguments: [
        Float(0), -0.0, 1, -1, 65504, -65504, 65519.996, 65520, 1e10, -1e10, .infinity, -.infinity,
        Float.leastNonzeroMagnitude, 5.9604645e-8, 2.9802322e-8, 2.9802326e-8, 8.940697e-8,
        6.097555e-5, 6.1035156e-5, 1.0009766, 1.0004883, 1.0014648, 2049, 2051, 3.1415927, 0.1,
    ])
    func fp16RoundEdges(_ f: Float) {
        #expect(floatToFP16(f) == Float16(f).bitPattern, "\(f)")
    }

    @Test("floatToFP16 rounds ties to even (halfway between two f16 values)")
    func fp16Ties() {
        // 1 + 2^-11 is exactly halfway between 1 and 1 + 2^-10: rounds to even (1).
        #expect(floatToFP16(1 + 0x1p-11) == 0x3C00)
        // 1 + 3·2^-11 is halfway between 1 + 2^-10 (odd) and 1 + 2^-9 (even): rounds up.
        #expect(floatToFP16(1 + 3 * 0x1p-11) == 0x3C02)
        // Subnormal tie: 2^-25 is halfway between 0 and the smallest subnormal 2^-24 → 0.
        #expect(floatToFP16(0x1p-25) == 0x0000)
        #expect(floatToFP16(3 * 0x1p-25) == 0x0002)
        // 65520 is the tie between 65504 and 65536 (overflow): rounds to infinity.
        #expect(floatToFP16(65520) == 0x7C00)
        #expect(floatToFP16(-65520) == 0xFC00)
    }

    @Test("floatToFP16 sends NaN to ggml's canonical quiet NaN, keeping the sign")
    func fp16NaN() {
        #expect(floatToFP16(.nan) == 0x7E00)
        #expect(floatToFP16(-Float.nan) == 0xFE00)
        #expect(floatToFP16(Float(bitPattern: 0x7F80_0001)) == 0x7E00)
    }

    @Test("floatToFP16 equals Float16(_:) on a million random floats across all exponents")
    func fp16RoundRandom() {
        var rng = SplitMix64(seed: 11)
        var bad = 0
        for _ in 0..<1_000_000 {
            let f = Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))
            if f.isNaN { continue }
            if floatToFP16(f) != Float16(f).bitPattern { bad += 1 }
        }
        #expect(bad == 0)
    }

    @Test("BF16 conversions: exact widening, nearest-even rounding, quiet NaNs")
    func bf16() {
        for bits in stride(from: 0, through: 0xFFFF, by: 1) {
            #expect(bf16ToFloat(UInt16(bits)).bitPattern == UInt32(bits) << 16)
        }
        #expect(floatToBF16(1) == 0x3F80)
        #expect(floatToBF16(Float(bitPattern: 0x3F80_8000)) == 0x3F80)  // tie, even below
        #expect(floatToBF16(Float(bitPattern: 0x3F81_8000)) == 0x3F82)  // tie, even above
        #expect(floatToBF16(Float(bitPattern: 0x3F80_8001)) == 0x3F81)  // just above tie
        #expect(floatToBF16(Float(bitPattern: 0x0000_8000)) == 0x0000)  // subnormal tie → 0
        #expect(floatToBF16(Float(bitPattern: 0x0001_8000)) == 0x0002)
        #expect(floatToBF16(.greatestFiniteMagnitude) == 0x7F80)         // rounds up to inf
        #expect(floatToBF16(.infinity) == 0x7F80)
        #expect(floatToBF16(-.infinity) == 0xFF80)
        #expect(floatToBF16(Float(bitPattern: 0x7F80_0001)) == 0x7FC0)  // signalling → quiet
        #expect(floatToBF16(Float(bitPattern: 0xFFAB_CDEF)) == 0xFFEB)  // payload top bits kept
    }

    @Test("Row helpers round-trip: f16/bf16 rows widen back to the rounded values")
    func rows() {
        var rng = SplitMix64(seed: 5)
        let x = randomActivations(count: 37, rng: &rng)
        var h = [UInt8](repeating: 0, count: 74), b = [UInt8](repeating: 0, count: 74)
        var back = [Float](repeating: 0, count: 37)
        x.withUnsafeBufferPointer { xp in
            h.withUnsafeMutableBytes { HalfRows.toF16(xp.baseAddress!, count: 37, into: $0.baseAddress!) }
            b.withUnsafeMutableBytes { HalfRows.toBF16(xp.baseAddress!, count: 37, into: $0.baseAddress!) }
        }
        h.withUnsafeBytes { src in back.withUnsafeMutableBufferPointer { HalfRows.fromF16(src.baseAddress!, count: 37, into: $0.baseAddress!) } }
        #expect(back == x.map { Float(Float16($0)) })
        b.withUnsafeBytes { src in back.withUnsafeMutableBufferPointer { HalfRows.fromBF16(src.baseAddress!, count: 37, into: $0.baseAddress!) } }
        #expect(back == x.map { bf16ToFloat(floatToBF16($0)) })
    }
}
