import SparrowFormats
import SparrowKernels
import Testing

/// Q5_0/Q8_0/Q4_K weights repacked eight rows side by side (`Interleaved`, `AVX2Interleaved`,
/// `AVX2KGroups`).
@Suite("Row-interleaved Q5_0/Q8_0/Q4_K weights")
struct InterleavedTests {
    static let types: [GGMLType] = [.q5_0, .q8_0]

    /// `rows` random rows of `type` as one matrix, with its row bytes.
    static func matrix(_ type: GGMLType, rows: Int, blocks: Int, rng: inout SplitMix64) throws -> (WeightMatrix, [[UInt8]]) {
        let cols = type.blockSize * blocks
        let rowBytes = (0..<rows).map { _ in randomRow(type, count: cols, rng: &rng) }
        let storage = TestBytes(rowBytes.flatMap { $0 })
        let m = try WeightMatrix(name: "w", type: type, rows: rows, cols: cols, data: UnsafeRawPointer(storage.pointer), owner: storage)
        return (m, rowBytes)
    }

    /// One row against one Q8_0 activation row as the interleaved kernel sums it: the exact
    /// integer sum per block, then `acc = fma(sum, d_w·d_a, acc)` block after block.
    static func reference(_ type: GGMLType, _ row: [UInt8], _ act: [UInt8], blocks: Int) -> Float {
        var acc: Float = 0
        for b in 0..<blocks {
            let xb = b * type.typeSize
            let dw = GGMLRef.f16(row, xb), da = GGMLRef.f16(act, b * 34)
            var sum = 0
            for j in 0..<32 {
                let q: Int
                if type == .q8_0 {
                    q = Int(Int8(bitPattern: row[xb + 2 + j]))
                } else {
                    let qh = Int(row[xb + 2]) | Int(row[xb + 3]) << 8 | Int(row[xb + 4]) << 16 | Int(row[xb + 5]) << 24
                    let nibble = j < 16 ? Int(row[xb + 6 + j]) & 15 : Int(row[xb + 6 + j - 16]) >> 4
                    q = (nibble | ((qh >> j) & 1) << 4) - 16
                }
                sum += q * Int(Int8(bitPattern: act[b * 34 + 2 + j]))
            }
            acc = acc.addingProduct(Float(sum), dw * da)
        }
        return acc
    }

    @Test("repack then unpack restores every row", arguments: types + [.q4_K, .q6_K])
    func roundTrip(_ type: GGMLType) throws {
        var rng = SplitMix64(seed: 17)
        for blocks in [1, 3, 28] {
            let (m, rows) = try Self.matrix(type, rows: 16, blocks: blocks, rng: &rng)
            let bytes = 8 * m.rowBytes
            let group = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            let row = UnsafeMutableRawPointer.allocate(byteCount: m.rowBytes, alignment: 16)
            defer { group.deallocate(); row.deallocate() }
            for g in 0..<2 {
                Interleaved.repack(type, m.data + g * bytes, rowBytes: m.rowBytes, blocks: blocks, into: group)
                for lane in 0..<8 {
                    Interleaved.unpack(type, group: group, lane: lane, blocks: blocks, into: row)
                    #expect(Array(UnsafeRawBufferPointer(start: row, count: m.rowBytes)) == rows[8 * g + lane], "\(type) blocks \(blocks) row \(8 * g + lane)")
                }
            }
        }
    }

    /// Every token count gives each row the same bits: the interleaved products equal the
    /// exact per-block reference for 1…13 tokens (decode, batched decode, prefill tails).
    @Test("interleaved matmul equals the exact per-block reference for any token count", arguments: types)
    func exact(_ type: GGMLType) throws {
        var rng = SplitMix64(seed: 4242 &+ UInt64(type.rawValue))
        for (groups, blocks) in [(1, 1), (2, 3), (3, 28), (1, 5)] {
            let (plain, rows) = try Self.matrix(type, rows: 8 * groups, blocks: blocks, rng: &rng)
            guard let m = plain.interleaved() else {
                #expect(!QuantKernels.useAVX2 || !Interleaved.enabled, "an AVX2 CPU repacks \(type)")
                return
            }
            #expect(m.layout == .interleaved8)
            for nTokens in [1, 2, 3, 7, 8, 9, 13] {
                var x: [Float] = []
                for _ in 0..<nTokens { x += randomActivations(count: 32 * blocks, rng: &rng) }
                var y = [Float](repeating: .nan, count: m.rows * nTokens)
                x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { m.matmul(xp.baseAddress!, nTokens: nTokens, into: $0.baseAddress!) } }
                for t in 0..<nTokens {
                    let act = quantizedActivations(Array(x[t * m.cols..<(t + 1) * m.cols]), for: type)
                    for r in 0..<m.rows {
                        let want = Self.reference(type, rows[r], act, blocks: blocks)
                        let got = y[t * m.rows + r]
                        #expect(got.bitPattern == want.bitPattern, "\(type) groups=\(groups) blocks=\(blocks) tokens=\(nTokens) [t=\(t), r=\(r)]: \(got) vs \(want)")
                        let generic = kernelDotGeneric(type, rows[r], act, count: m.cols)
                        #expect(abs(got - generic) <= 1e-4 * max(1, abs(generic)))
                    }
                }
            }
        }
    }

    /// Interleaved matrices beside row-layout ones of odd row counts in one call: each matrix
    /// starts on a group boundary of the shared row range, so no chunk splits a group.
    @Test("mixed with row-layout matrices of odd sizes in one call")
    func mixed() throws {
        var rng = SplitMix64(seed: 7)
        let blocks = 4, cols = 128
        var matrices: [WeightMatrix] = []
        var rowsOf: [[[UInt8]]] = []
        for (type, rows) in [(GGMLType.q4_0, 3), (.q5_0, 24), (.q8_0, 5), (.q8_0, 40), (.q5_0, 13), (.q5_0, 8)] {
            let (plain, bytes) = try Self.matrix(type, rows: rows, blocks: blocks, rng: &rng)
            matrices.append(plain.interleaved() ?? plain)
            rowsOf.append(bytes)
        }
        for nTokens in [1, 5] { expectMatchesGeneric(matrices, rows: rowsOf, cols: cols, nTokens: nTokens, rng: &rng) }
    }

    @Test("row lookups (a tied embedding) read the same values from either layout", arguments: types + [.q4_K, .q6_K])
    func rowLookup(_ type: GGMLType) throws {
        var rng = SplitMix64(seed: 3)
        let (plain, _) = try Self.matrix(type, rows: 24, blocks: 3, rng: &rng)
        guard let m = plain.interleaved() else { return }
        var a = [Float](repeating: 0, count: plain.cols), b = a
        for r in 0..<24 {
            try a.withUnsafeMutableBufferPointer { try plain.row(r, into: $0.baseAddress!) }
            try b.withUnsafeMutableBufferPointer { try m.row(r, into: $0.baseAddress!) }
            #expect(a == b, "row \(r)")
        }
        #expect(throws: FormatError.self) { try b.withUnsafeMutableBufferPointer { try m.row(24, into: $0.baseAddress!) } }
    }

    @Test("only Q5_0/Q8_0/Q4_K/Q6_K in whole groups of 8 rows are repacked")
    func eligibility() throws {
        var rng = SplitMix64(seed: 5)
        #expect(try Self.matrix(.q5_0, rows: 12, blocks: 1, rng: &rng).0.interleaved() == nil)
        #expect(try Self.matrix(.q4_K, rows: 12, blocks: 1, rng: &rng).0.interleaved() == nil)
        #expect(try Self.matrix(.q4_0, rows: 16, blocks: 1, rng: &rng).0.interleaved() == nil)
        #expect(try Self.matrix(.q5_K, rows: 16, blocks: 2, rng: &rng).0.interleaved() == nil, "Q5_K keeps the ggml layout")
        for type in [GGMLType.q4_K, .q6_K] {
            let m = try Self.matrix(type, rows: 16, blocks: 2, rng: &rng).0
            #expect((m.interleaved() != nil) == (QuantKernels.useAVX2 && Interleaved.enabled))
        }
    }

    /// Interleaved K-quants (stored transposed, read by the group kernels for any token count,
    /// one-token decode included) give every token the row layout's bits.
    @Test("interleaved K-quants equal the row layout bit for bit for any token count", arguments: [GGMLType.q4_K, .q6_K])
    func kQuants(_ type: GGMLType) throws {
        var rng = SplitMix64(seed: 11 &+ UInt64(type.rawValue))
        for (groups, blocks) in [(1, 1), (3, 3), (2, 6)] {
            let (plain, _) = try Self.matrix(type, rows: 8 * groups, blocks: blocks, rng: &rng)
            guard let m = plain.interleaved() else { return }
            for nTokens in [1, 2, 3, 8, 9] {
                var x: [Float] = []
                for _ in 0..<nTokens { x += randomActivations(count: m.cols, rng: &rng) }
                var want = [Float](repeating: .nan, count: m.rows * nTokens), got = want
                x.withUnsafeBufferPointer { xp in
                    for t in 0..<nTokens {
                        want.withUnsafeMutableBufferPointer { plain.matmul(xp.baseAddress! + t * m.cols, nTokens: 1, into: $0.baseAddress! + t * m.rows) }
                    }
                    got.withUnsafeMutableBufferPointer { m.matmul(xp.baseAddress!, nTokens: nTokens, into: $0.baseAddress!) }
                }
                #expect(got.map(\.bitPattern) == want.map(\.bitPattern), "\(type) groups=\(groups) blocks=\(blocks) tokens=\(nTokens)")
            }
        }
    }
}
