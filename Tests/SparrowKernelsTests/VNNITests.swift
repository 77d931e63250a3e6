#if arch(x86_64)
import SparrowFormats
import SparrowKernels
import SparrowKernelsAVX2
import SparrowKernelsVNNI
import Testing

/// The AVX512-VNNI kernels against the AVX2 ones they replace, called directly (the dispatched
/// path takes only one of them): the same integers, so the same bits. Runs where the CPU has
/// AVX512-VNNI; elsewhere the AVX2 kernels are the dispatched ones and the other suites cover them.
@Suite("VNNI kernels equal the AVX2 kernels", .enabled(if: QuantKernels.useVNNI))
struct VNNITests {
    /// A row of `blocks` blocks with every quant byte `fill` and every f16 scale 1.
    static func extremeRow(_ type: GGMLType, blocks: Int, fill: UInt8) -> [UInt8] {
        var row = [UInt8](repeating: fill, count: blocks * type.typeSize)
        for b in 0..<blocks {
            for o in halfFieldOffsets(type) { row[b * type.typeSize + o] = 0x00; row[b * type.typeSize + o + 1] = 0x3C }
        }
        return row
    }

    /// Eight K-quant rows against 1…9 tokens, random and extreme (all-ones quant bytes) weights;
    /// and repacked (`Interleaved`), the layout every token count reads.
    @Test("K-quant group kernels", arguments: [GGMLType.q4_K, .q6_K])
    func kGroups(_ type: GGMLType) throws {
        var rng = SplitMix64(seed: 77 &+ UInt64(type.rawValue))
        let blocks = 3, cols = blocks * 256, rowBytes = blocks * type.typeSize
        for extreme in [false, true] {
            let rows = (0..<8).flatMap { _ in extreme ? Self.extremeRow(type, blocks: blocks, fill: 0xFF) : randomRow(type, count: cols, rng: &rng) }
            var packedRows = rows
            rows.withUnsafeBytes { src in packedRows.withUnsafeMutableBytes { dst in
                Interleaved.repack(type, src.baseAddress!, rowBytes: rowBytes, blocks: blocks, into: dst.baseAddress!)
            } }
            for nTokens in [1, 2, 5, 9] {
                for packed in [false, true] {
                    let act = (0..<nTokens).flatMap { _ in
                        quantizedActivations(extreme ? [Float](repeating: -4, count: cols) : randomActivations(count: cols, rng: &rng), for: type)
                    }
                    var results: [[Float]] = []
                    let scratch = UnsafeMutableRawPointer.allocate(byteCount: AVX2Dot.kGroupScratchBytes(nTokens: nTokens), alignment: 64)
                    defer { scratch.deallocate() }
                    for vnni in [false, true] {
                        var y = [Float](repeating: .nan, count: 8 * nTokens)
                        (packed ? packedRows : rows).withUnsafeBytes { w in act.withUnsafeBytes { a in y.withUnsafeMutableBufferPointer { yp in
                            let kernel = switch (type == .q4_K, vnni) {
                            case (true, true): VNNIKGroups.q4_KGroup8
                            case (true, false): AVX2Dot.q4_KGroup8
                            case (false, true): VNNIKGroups.q6_KGroup8
                            case (false, false): AVX2Dot.q6_KGroup8
                            }
                            kernel(w.baseAddress!, rowBytes, blocks, a.baseAddress!, a.count / nTokens, nTokens, scratch, yp.baseAddress!, 8, packed)
                        } } }
                        results.append(y)
                    }
                    #expect(results[0].map(\.bitPattern) == results[1].map(\.bitPattern), "\(type) extreme=\(extreme) tokens=\(nTokens) packed=\(packed)")
                    #expect(!results[1].contains { !$0.isFinite })
                }
            }
        }
    }

    /// Three interleaved groups of 8 rows (one 512-bit pair and a last odd group) against 1…9
    /// tokens, random and extreme weights: the AVX2 kernel, the VNNI group kernel and the VNNI
    /// pairs (`VNNIInterleaved.matmul`).
    @Test("interleaved Q5_0/Q8_0 group kernels", arguments: [GGMLType.q5_0, .q8_0])
    func interleaved(_ type: GGMLType) throws {
        var rng = SplitMix64(seed: 99 &+ UInt64(type.rawValue))
        let blocks = 5, cols = blocks * 32, rowBytes = blocks * type.typeSize, groups = 3
        let kind: InterleavedType = type == .q5_0 ? .q5_0 : .q8_0
        for extreme in [false, true] {
            let rows = (0..<8 * groups).flatMap { _ in
                extreme ? Self.extremeRow(type, blocks: blocks, fill: 0x80) : randomRow(type, count: cols, rng: &rng)
            }
            var packed = [UInt8](repeating: 0, count: rows.count)
            rows.withUnsafeBytes { src in packed.withUnsafeMutableBytes { dst in
                for g in 0..<groups {
                    Interleaved.repack(type, src.baseAddress! + 8 * g * rowBytes, rowBytes: rowBytes, blocks: blocks,
                                       into: dst.baseAddress! + 8 * g * rowBytes)
                }
            } }
            for nTokens in [1, 2, 5, 9] {
                let act = (0..<nTokens).flatMap { _ in
                    quantizedActivations(extreme ? [Float](repeating: 4, count: cols) : randomActivations(count: cols, rng: &rng), for: type)
                }
                let actRowBytes = act.count / nTokens
                var scales = [Float](repeating: 0, count: 2 * blocks * nTokens)
                var sums = [Int32](repeating: 0, count: blocks * nTokens)
                act.withUnsafeBytes { a in
                    for t in 0..<nTokens {
                        sums.withUnsafeMutableBufferPointer { AVX2Interleaved.q8_0Sums(a.baseAddress! + t * actRowBytes, blocks: blocks, into: $0.baseAddress! + t * blocks) }
                        for b in 0..<blocks {
                            scales[t * 2 * blocks + 2 * b] = Float(Float16(bitPattern: a.load(fromByteOffset: t * actRowBytes + 34 * b, as: UInt16.self)))
                        }
                    }
                }
                var results: [[Float]] = []
                var vnniKernel: AVX2Interleaved.GroupKernel = VNNIInterleaved.q8_0Group
                if type == .q5_0 { vnniKernel = VNNIInterleaved.q5_0Group }
                for kernel in 0..<3 {
                    var y = [Float](repeating: .nan, count: 8 * groups * nTokens)
                    packed.withUnsafeBytes { w in act.withUnsafeBytes { a in y.withUnsafeMutableBufferPointer { yp in
                        if kernel == 2 {
                            VNNIInterleaved.matmul(kind, w.baseAddress!, groups: groups, blocks: blocks, act: a.baseAddress!,
                                                   actRowBytes: actRowBytes, scales: scales, scaleStride: 2 * blocks, sums: sums,
                                                   sumStride: blocks, nTokens: nTokens, y: yp.baseAddress!, yStride: 8 * groups)
                        } else {
                            AVX2Interleaved.matmul(kind, w.baseAddress!, groups: groups, blocks: blocks, act: a.baseAddress!,
                                                   actRowBytes: actRowBytes, scales: scales, scaleStride: 2 * blocks, sums: sums,
                                                   sumStride: blocks, nTokens: nTokens, y: yp.baseAddress!, yStride: 8 * groups,
                                                   kernel: kernel == 1 ? vnniKernel : nil)
                        }
                    } } }
                    results.append(y)
                }
                for k in 1..<3 {
                    #expect(results[0].map(\.bitPattern) == results[k].map(\.bitPattern), "\(type) extreme=\(extreme) tokens=\(nTokens) kernel=\(k)")
                    #expect(!results[k].contains { !$0.isFinite })
                }
            }
        }
    }
}
#endif
