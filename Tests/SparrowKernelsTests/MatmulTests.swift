import SparrowFormats
import SparrowKernels
import Testing

/// Owns the bytes of a test weight matrix.
final class TestBytes {
    let pointer: UnsafeMutableRawPointer
    init(_ bytes: [UInt8]) {
        pointer = .allocate(byteCount: max(bytes.count, 1), alignment: 64)
        bytes.withUnsafeBytes { pointer.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
    }
    deinit { pointer.deallocate() }
}

/// Several matrices (one `cols`) in one `WeightMatrix.matmul` call on random activations,
/// each output against the scalar generic dot of its row (`rows[i]` = matrix i's row bytes).
func expectMatchesGeneric(_ matrices: [WeightMatrix], rows: [[[UInt8]]], cols: Int, nTokens: Int, rng: inout SplitMix64) {
    var x: [Float] = []
    for _ in 0..<nTokens { x += randomActivations(count: cols, rng: &rng) }
    let outs = matrices.map { UnsafeMutablePointer<Float>.allocate(capacity: $0.rows * nTokens) }
    defer { outs.forEach { $0.deallocate() } }
    x.withUnsafeBufferPointer { WeightMatrix.matmul(matrices, $0.baseAddress!, nTokens: nTokens, into: outs) }
    for (i, m) in matrices.enumerated() {
        for t in 0..<nTokens {
            let act = quantizedActivations(Array(x[t * cols..<(t + 1) * cols]), for: m.type)
            for r in 0..<m.rows {
                let want = kernelDotGeneric(m.type, rows[i][r], act, count: cols)
                let got = outs[i][t * m.rows + r]
                #expect(abs(got - want) <= 1e-4 * max(1, abs(want)), "\(m.type) \(m.layout) t=\(t) r=\(r): \(got) vs \(want)")
            }
        }
    }
}

@Suite("Matrix products (tiled kernels, thread pool)")
struct MatmulTests {
    /// `WeightMatrix.matmul` (tile kernels, several rows and tokens per call, split across the
    /// pool) against one scalar generic dot per output, for row and token counts around the
    /// tile sizes (1, 3, 4, 5, 9) and several blocks per row.
    @Test("matmul matches per-element generic dots", arguments: weightTypes.filter { $0 != .q8_1 && $0 != .q8_K })
    func matchesGeneric(_ type: GGMLType) throws {
        var rng = SplitMix64(seed: UInt64(type.rawValue) &* 7919)
        for (rows, nTokens, blocks) in [(1, 1, 1), (3, 1, 3), (4, 1, 2), (9, 1, 5), (5, 2, 1), (4, 4, 3), (7, 5, 2), (13, 9, 1), (6, 21, 3), (5, 40, 2), (64, 3, 2)] {
            let cols = blocks * type.blockSize
            var bytes: [UInt8] = []
            var rowBytes: [[UInt8]] = []
            for _ in 0..<rows {
                let r = randomRow(type, count: cols, rng: &rng)
                rowBytes.append(r)
                bytes += r
            }
            let storage = TestBytes(bytes)
            let m = try WeightMatrix(name: "w", type: type, rows: rows, cols: cols, data: UnsafeRawPointer(storage.pointer), owner: storage)
            var x: [Float] = []
            for _ in 0..<nTokens { x += randomActivations(count: cols, rng: &rng) }
            var y = [Float](repeating: .nan, count: rows * nTokens)
            x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { m.matmul(xp.baseAddress!, nTokens: nTokens, into: $0.baseAddress!) } }
            for t in 0..<nTokens {
                let act = quantizedActivations(Array(x[t * cols..<(t + 1) * cols]), for: type)
                let a = try dequantized(QuantKernels.activationType(for: type), act, count: cols)
                for r in 0..<rows {
                    let want = Double(kernelDotGeneric(type, rowBytes[r], act, count: cols))
                    let w = try dequantized(type, rowBytes[r], count: cols)
                    var mag = 0.0
                    for i in 0..<cols { mag += abs(Double(w[i]) * Double(a[i])) }
                    mag += q8_1Slack(type, rowBytes[r], act, count: cols) * 0x1p11
                    let got = Double(y[t * rows + r])
                    #expect(abs(got - want) <= 1e-5 * mag + 1e-30,
                            "\(type) rows=\(rows) tokens=\(nTokens) blocks=\(blocks) [t=\(t), r=\(r)]: \(got) vs \(want)")
                }
            }
        }
    }

    /// K-quant rows go eight at a time for two or more tokens (AVX2KGroups), leftover rows one
    /// by one; each token's result must still be the one-token kernel's, bit for bit, whatever
    /// the token count.
    @Test("K-quant rows give each token the one-token result bit for bit", arguments: [GGMLType.q4_K, .q6_K])
    func kQuantTokenCountInvariant(_ type: GGMLType) throws {
        var rng = SplitMix64(seed: UInt64(type.rawValue) &* 31)
        let rows = 21, cols = 3 * 256
        let bytes = (0..<rows).flatMap { _ in randomRow(type, count: cols, rng: &rng) }
        let storage = TestBytes(bytes)
        let m = try WeightMatrix(name: "w", type: type, rows: rows, cols: cols, data: UnsafeRawPointer(storage.pointer), owner: storage)
        for nTokens in [2, 3, 4, 5, 8, 9, 16, 19] {
            var x: [Float] = []
            for _ in 0..<nTokens { x += randomActivations(count: cols, rng: &rng) }
            var all = [Float](repeating: .nan, count: rows * nTokens)
            x.withUnsafeBufferPointer { xp in all.withUnsafeMutableBufferPointer { m.matmul(xp.baseAddress!, nTokens: nTokens, into: $0.baseAddress!) } }
            for t in 0..<nTokens {
                var one = [Float](repeating: .nan, count: rows)
                x.withUnsafeBufferPointer { xp in one.withUnsafeMutableBufferPointer { m.matmul(xp.baseAddress! + t * cols, nTokens: 1, into: $0.baseAddress!) } }
                for r in 0..<rows {
                    #expect(all[t * rows + r].bitPattern == one[r].bitPattern, "\(type) tokens=\(nTokens) [t=\(t), r=\(r)]")
                }
            }
        }
    }

    /// The largest integer sums the K-quant kernels can meet (every quant and scale at its
    /// extreme, activations all of one sign or alternating) must not overflow their 16-bit
    /// partial sums: eight rows and two tokens (the group kernel) against the generic dot.
    @Test("K-quant extremes do not overflow", arguments: [GGMLType.q4_K, .q6_K])
    func kQuantExtremes(_ type: GGMLType) throws {
        let cols = 2 * 256, rows = 8
        var row = [UInt8](repeating: 0xFF, count: 2 * type.typeSize)
        for b in 0..<2 {
            let base = b * type.typeSize
            if type == .q4_K {
                row[base] = 0x00; row[base + 1] = 0x3C      // d = 1
                row[base + 2] = 0x00; row[base + 3] = 0x3C  // dmin = 1 (scales and mins all 63)
            } else {
                for k in 0..<16 { row[base + 192 + k] = b == 0 ? 0x7F : 0x80 }  // scales 127, then −128
                row[base + 208] = 0x00; row[base + 209] = 0x3C
            }
        }
        let storage = TestBytes(Array((0..<rows).map { _ in row }.joined()))
        let m = try WeightMatrix(name: "w", type: type, rows: rows, cols: cols, data: UnsafeRawPointer(storage.pointer), owner: storage)
        for sign: Float in [1, -1] {
            let x = (0..<2 * cols).map { i in i < cols ? 4 * sign : (i % 2 == 0 ? 4 : -4) }
            var y = [Float](repeating: .nan, count: rows * 2)
            x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { m.matmul(xp.baseAddress!, nTokens: 2, into: $0.baseAddress!) } }
            for t in 0..<2 {
                let want = kernelDotGeneric(type, row, quantizedActivations(Array(x[t * cols..<(t + 1) * cols]), for: type), count: cols)
                for r in 0..<rows {
                    #expect(abs(y[t * rows + r] - want) <= 1e-5 * max(1, abs(want)), "\(type) sign=\(sign) t=\(t) r=\(r): \(y[t * rows + r]) vs \(want)")
                }
            }
        }
    }

    /// One call with several matrices of different types sharing activation formats (as
    /// Qwen2.5-0.5B's Q5_0 q/k with a Q8_0 v): each matrix uses its own kernel.
    @Test("several matrices of mixed types in one call")
    func mixedTypes() throws {
        var rng = SplitMix64(seed: 99)
        let types: [GGMLType] = [.q5_0, .q8_0, .q4_0, .q4_1, .q5_1, .q4_K, .q6_K, .f16]
        let cols = 256
        for nTokens in [1, 6] {
            var matrices: [WeightMatrix] = []
            var rowsOf: [[[UInt8]]] = []
            for (i, type) in types.enumerated() {
                let rows = 3 + i
                let rowBytes = (0..<rows).map { _ in randomRow(type, count: cols, rng: &rng) }
                let storage = TestBytes(rowBytes.flatMap { $0 })
                matrices.append(try WeightMatrix(name: "w\(i)", type: type, rows: rows, cols: cols, data: UnsafeRawPointer(storage.pointer), owner: storage))
                rowsOf.append(rowBytes)
            }
            expectMatchesGeneric(matrices, rows: rowsOf, cols: cols, nTokens: nTokens, rng: &rng)
        }
    }

    /// Regions from several threads at once: one runs on the pool, the others serially on
    /// their callers; all results stay right.
    @Test("concurrent callers")
    func concurrentCallers() async throws {
        let count = 10_000
        await withTaskGroup(of: Bool.self) { group in
            for k in 0..<4 {
                group.addTask {
                    var out = [Int](repeating: 0, count: count)
                    out.withUnsafeMutableBufferPointer { o in
                        let p = o.baseAddress!
                        for _ in 0..<50 {
                            Parallel.forRanges(count, granularity: 4) { s, e in for i in s..<e { p[i] += i + k } }
                        }
                    }
                    return out.enumerated().allSatisfy { $0.element == 50 * ($0.offset + k) }
                }
            }
            for await ok in group { #expect(ok) }
        }
    }
}
