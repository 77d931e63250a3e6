import SparrowFormats
import SparrowKernels
import Testing

@Suite("Dequantization against gguf-py's numpy reference")
struct DequantizeTests {
    @Test("The fixture manifest loads and covers every supported type, with real rows")
    func manifestCoverage() throws {
        let fixtures = try Fixtures.load()
        let dequant = fixtures.filter { $0.direction == "dequant" }
        for type in weightTypes {
            #expect(dequant.contains { $0.type == type }, "no dequant fixture for \(type)")
        }
        let real = Set(dequant.filter { $0.source.contains(".gguf:") }.map(\.type))
        #expect(real.isSuperset(of: [.q4_1, .q5_0, .q8_0, .q4_K, .q6_K, .f32]))
    }

    /// Bit-for-bit: numpy dequantizes in float32 with ggml's operation order, and so do we,
    /// so no ULP tolerance is allowed for any type (NaNs, only in the BF16 case, compare by bits).
    @Test("dequantizeRow matches numpy bit for bit", arguments: Fixtures.names)
    func matchesNumpy(_ name: String) throws {
        let fixtures = try Fixtures.load()
        let f = try #require(fixtures.first { $0.name == name })
        guard f.direction == "dequant" else { return }
        let got = try dequantized(f.type, f.src, count: f.count)
        let bad = (0..<f.count).filter { got[$0].bitPattern != f.values[$0].bitPattern }
        #expect(bad.isEmpty, "\(f.type) \(f.source): \(bad.count) of \(f.count) differ; first at \(bad.first ?? -1): got \(bad.first.map { got[$0] } ?? 0), want \(bad.first.map { f.values[$0] } ?? 0)")
    }

    @Test("QuantBlock layouts agree with GGMLType's block and type sizes")
    func layoutSizes() {
        typealias B = QuantBlock
        let layouts: [(GGMLType, Int, Int)] = [
            (.q4_0, B.Q4_0.byteCount, B.Q4_0.elementCount), (.q4_1, B.Q4_1.byteCount, B.Q4_1.elementCount),
            (.q5_0, B.Q5_0.byteCount, B.Q5_0.elementCount), (.q5_1, B.Q5_1.byteCount, B.Q5_1.elementCount),
            (.q8_0, B.Q8_0.byteCount, B.Q8_0.elementCount), (.q8_1, B.Q8_1.byteCount, B.Q8_1.elementCount),
            (.q2_K, B.Q2_K.byteCount, B.Q2_K.elementCount), (.q3_K, B.Q3_K.byteCount, B.Q3_K.elementCount),
            (.q4_K, B.Q4_K.byteCount, B.Q4_K.elementCount), (.q5_K, B.Q5_K.byteCount, B.Q5_K.elementCount),
            (.q6_K, B.Q6_K.byteCount, B.Q6_K.elementCount), (.q8_K, B.Q8_K.byteCount, B.Q8_K.elementCount),
        ]
        for (type, bytes, elements) in layouts {
            #expect(type.typeSize == bytes && type.blockSize == elements, "\(type)")
        }
        // Last field ends exactly at the block end.
        #expect(B.Q2_K.dmin + 2 == B.Q2_K.byteCount && B.Q3_K.d + 2 == B.Q3_K.byteCount)
        #expect(B.Q4_K.qs + 128 == B.Q4_K.byteCount && B.Q5_K.qs + 128 == B.Q5_K.byteCount)
        #expect(B.Q6_K.d + 2 == B.Q6_K.byteCount && B.Q8_K.bsums + 32 == B.Q8_K.byteCount)
    }

    @Test("Unsupported types throw an error that names the type")
    func unsupported() {
        var out = [Float](repeating: 0, count: 256)
        let src = [UInt8](repeating: 0, count: 1024)
        for type in [GGMLType.iq2_xxs, .iq4_nl, .tq1_0, .i32, .mxfp4] {
            do {
                try src.withUnsafeBytes { s in
                    try out.withUnsafeMutableBufferPointer { try dequantizeRow(type, s.baseAddress!, $0.baseAddress!, count: type.blockSize) }
                }
                Issue.record("\(type) did not throw")
            } catch {
                #expect("\(error)".contains(type.description), "\(error)")
            }
        }
    }

    @Test("A count that is not a whole number of blocks throws")
    func partialBlock() {
        var out = [Float](repeating: 0, count: 64)
        let src = [UInt8](repeating: 0, count: 64)
        #expect(throws: FormatError.self) {
            try src.withUnsafeBytes { s in
                try out.withUnsafeMutableBufferPointer { try dequantizeRow(.q4_0, s.baseAddress!, $0.baseAddress!, count: 48) }
            }
        }
    }

    @Test("Rows need no alignment: an odd source address gives the same values")
    func unaligned() throws {
        var rng = SplitMix64(seed: 3)
        for type in weightTypes {
            let n = 2 * max(type.blockSize, 32)
            let row = randomRow(type, count: n, rng: &rng)
            let expected = try dequantized(type, row, count: n)
            let shifted = try dequantized(type, Array(([0x55] + row)[1...]), count: n)
            var out = [Float](repeating: 0, count: n)
            try ([0x55] + row).withUnsafeBytes { s in
                try out.withUnsafeMutableBufferPointer { try dequantizeRow(type, s.baseAddress! + 1, $0.baseAddress!, count: n) }
            }
            #expect(out.map(\.bitPattern) == expected.map(\.bitPattern), "\(type)")
            #expect(shifted.map(\.bitPattern) == expected.map(\.bitPattern), "\(type)")
        }
    }
}
