import SparrowFormats
#if arch(x86_64)
import SparrowKernelsAVX2
import SparrowKernelsVNNI
#endif

/// A weight matrix viewed in place inside a mapped model file, in any supported ggml type.
///
/// ggml convention: `cols` (ne[0]) is the contiguous input dimension, `rows` (ne[1]) the output.
/// Products follow ggml's CPU path: activations are first quantized to the weight type's
/// `vec_dot_type` (Q8_0, Q8_1, Q8_K, F16, ...) and each output is one quantized dot product,
/// so results track llama.cpp's closely.
public struct WeightMatrix: @unchecked Sendable {
    public let name: String
    public let type: GGMLType
    /// Output features.
    public let rows: Int
    /// Input features (row length).
    public let cols: Int
    /// First byte of row 0; rows are `rowBytes` apart.
    public let data: UnsafeRawPointer
    public let rowBytes: Int
    /// Keeps the mapping (or heap copy) alive.
    public let owner: AnyObject
    /// How the rows are stored.
    public let layout: Layout

    public enum Layout: Sendable {
        /// ggml's: row after row, `rowBytes` apart.
        case rows
        /// Eight rows side by side (`Interleaved`): group g of rows 8g..<8g+8 at `8·g·rowBytes`.
        case interleaved8
    }

    public init(name: String, type: GGMLType, rows: Int, cols: Int, data: UnsafeRawPointer, owner: AnyObject) throws(FormatError) {
        guard type.isSupported else { throw .unknownTensorType(tensor: name, code: type.rawValue) }
        guard let rb = type.rowBytes(cols) else {
            throw .badTensor(tensor: name, reason: "row length \(cols) is not a multiple of the \(type) block size \(type.blockSize)")
        }
        self.name = name
        self.type = type
        self.rows = rows
        self.cols = cols
        self.data = data
        self.rowBytes = rb
        self.owner = owner
        self.layout = .rows
    }

    /// The same matrix with its rows at `data` (a copy of this matrix's bytes, e.g. an expert
    /// paged into a cache slot); `owner` keeps that memory alive.
    public func rebased(to data: UnsafeRawPointer, owner: AnyObject) -> WeightMatrix {
        WeightMatrix(name: name, type: type, rows: rows, cols: cols, data: data, rowBytes: rowBytes, owner: owner, layout: layout)
    }

    private init(name: String, type: GGMLType, rows: Int, cols: Int, data: UnsafeRawPointer, rowBytes: Int, owner: AnyObject,
                 layout: Layout) {
        self.name = name
        self.type = type
        self.rows = rows
        self.cols = cols
        self.data = data
        self.rowBytes = rowBytes
        self.owner = owner
        self.layout = layout
    }

    /// Whether `interleaved()` would repack this matrix: Q5_0 or Q8_0 in whole groups of 8
    /// rows, on a CPU with AVX2, unless `SPARROW_INTERLEAVE=0`.
    public var canInterleave: Bool {
        #if arch(x86_64)
        return layout == .rows && QuantKernels.useAVX2 && Interleaved.enabled && Interleaved.supports(type, rows: rows)
        #else
        return false
        #endif
    }

    /// This matrix repacked eight rows side by side (`Interleaved`) in fresh memory of the same
    /// size, or nil when `canInterleave` is false. The products of one row come out the same
    /// whatever the number of tokens, as with the ggml layout; Q5_0/Q8_0 rows are summed in a
    /// different order (per block instead of per lane), so they differ from the ggml layout's
    /// in the last bits, while K-quant rows give the ggml layout's bits.
    /// - release: called with each ~8 MiB of source rows once they are copied (the loader drops
    ///   those mapped pages, so a large matrix is never resident twice)
    public func interleaved(release: ((UnsafeRawPointer, Int) -> Void)? = nil) -> WeightMatrix? {
        guard canInterleave else { return nil }
        let storage = ByteStorage(count: rows * rowBytes)
        let groupBytes = Interleaved.groupRows * rowBytes
        let groupsPerRelease = max(1, (8 << 20) / groupBytes)
        let groups = rows / Interleaved.groupRows
        let (data, type, rowBytes, blocks, out) = (data, type, rowBytes, cols / type.blockSize, storage.pointer)
        var done = 0
        while done < groups {
            // A batch of groups split across the workers, then its source pages dropped.
            let first = done, n = min(groupsPerRelease, groups - done)
            Parallel.forRanges(n, minPerThread: 4) { g0, g1 in
                for g in first + g0..<first + g1 {
                    Interleaved.repack(type, data + g * groupBytes, rowBytes: rowBytes, blocks: blocks, into: out + g * groupBytes)
                }
            }
            release?(data + done * groupBytes, n * groupBytes)
            done += n
        }
        return WeightMatrix(name: name, type: type, rows: rows, cols: cols, data: storage.pointer, rowBytes: rowBytes,
                            owner: storage, layout: .interleaved8)
    }

    /// y = x · Wᵀ
    /// - x: [nTokens, cols] f32
    /// - y: [nTokens, rows] f32
    public func matmul(_ x: UnsafePointer<Float>, nTokens: Int, into y: UnsafeMutablePointer<Float>) {
        WeightMatrix.matmul([self], x, nTokens: nTokens, into: [y])
    }

    /// Several products of the same input in one pass (q/k/v, gate/up): activations are
    /// quantized once per activation format and all rows are split across the workers in a
    /// single parallel region, so the workers synchronise once instead of once per matrix.
    /// - x: [nTokens, cols] f32, the same `cols` for every matrix
    /// - outputs[i]: [nTokens, matrices[i].rows] f32
    public static func matmul(_ matrices: [WeightMatrix], _ x: UnsafePointer<Float>, nTokens: Int,
                              into outputs: [UnsafeMutablePointer<Float>]) {
        guard let cols = matrices.first?.cols, matrices.count == outputs.count else { return }
        // One quantized copy of x per activation format the matrices need.
        var activations: [GGMLType: Activations] = [:]
        defer { for a in activations.values { a.deallocate() } }
        // −16·Σa per block: the interleaved Q5_0 kernels' offset, and the VNNI Q8_0 kernel's.
        let needSums = matrices.contains { $0.layout == .interleaved8 && ($0.type == .q5_0 || QuantKernels.useVNNI) }
        for m in matrices where m.cols == cols {
            let format = QuantKernels.activationType(for: m.type)
            guard activations[format] == nil else { continue }
            activations[format] = Activations(x, cols: cols, nTokens: nTokens, for: m.type, blockSums: needSums)
        }
        // Per matrix: its first global row, and where its activations are. Each matrix starts
        // on a multiple of 8 global rows and chunks are multiples of 8 rows, so a chunk never
        // splits a group of interleaved rows (the padding rows between matrices compute nothing).
        struct Job { let m: WeightMatrix; let y: UnsafeMutablePointer<Float>; let first: Int; let act: Activations }
        var jobs: [Job] = []
        var total = 0
        for (m, y) in zip(matrices, outputs) where m.cols == cols {
            guard let a = activations[QuantKernels.activationType(for: m.type)] else { continue }
            jobs.append(Job(m: m, y: y, first: total, act: a))
            total += (m.rows + 7) & ~7
        }
        // Rows outer, tokens inner: each weight row is read once from memory and reused from
        // cache for every token of a prefill batch.
        // A chunk streams at least ~32 KB of weights × tokens, so claiming it costs little.
        let work = max(1, jobs.lazy.map(\.m.rowBytes).max() ?? 1) * max(nTokens, 1)
        Parallel.forRanges(total, granularity: 8, minPerThread: 16, minChunk: 32_768 / work) { start, end in
            var j = 0
            while j + 1 < jobs.count && jobs[j + 1].first <= start { j += 1 }
            var g = start
            while g < end && j < jobs.count {
                let job = jobs[j]
                let stop = min(end, job.first + job.m.rows)
                if g < stop { job.m.rows(from: g - job.first, to: stop - job.first, job.act, nTokens: nTokens, into: job.y) }
                j += 1
                if j < jobs.count { g = jobs[j].first }
            }
        }
    }

    #if arch(x86_64)
    /// The AVX2 tile kernel for this weight type, if there is one and the CPU has AVX2.
    var tileType: Block32Type? {
        guard QuantKernels.useAVX2 else { return nil }
        switch type {
        case .q4_0: return .q4_0
        case .q4_1: return .q4_1
        case .q5_0: return .q5_0
        case .q5_1: return .q5_1
        case .q8_0: return .q8_0
        default: return nil
        }
    }
    #endif

    /// y[t, r] for rows `from..<to` and every token.
    @inline(__always)
    func rows(from: Int, to: Int, _ act: Activations, nTokens: Int, into y: UnsafeMutablePointer<Float>) {
        #if arch(x86_64)
        if layout == .interleaved8, type == .q5_0 || type == .q8_0, let scales = act.scales {
            // `from` and `to` are multiples of 8 (see `matmul`).
            let t: InterleavedType = type == .q5_0 ? .q5_0 : .q8_0
            if QuantKernels.useVNNI {
                // `matmul` computes −16·Σa / −128·Σa sums whenever VNNI is in use.
                VNNIInterleaved.matmul(t, data + from * rowBytes, groups: (to - from) / 8, blocks: cols / 32,
                                       act: act.buffer, actRowBytes: act.rowBytes, scales: scales, scaleStride: act.scaleStride,
                                       sums: act.blockSums!, sumStride: cols / 32, nTokens: nTokens, y: y + from, yStride: rows)
            } else {
                AVX2Interleaved.matmul(t, data + from * rowBytes, groups: (to - from) / 8, blocks: cols / 32,
                                       act: act.buffer, actRowBytes: act.rowBytes, scales: scales, scaleStride: act.scaleStride,
                                       sums: act.blockSums, sumStride: cols / 32, nTokens: nTokens, y: y + from, yStride: rows)
            }
            return
        }
        if let tile = tileType, let scales = act.scales {
            AVX2Tiles.matmul(tile, data + from * rowBytes, rowBytes: rowBytes, nRows: to - from,
                             act: act.buffer, actRowBytes: act.rowBytes, scales: scales, scaleStride: act.scaleStride,
                             nTokens: nTokens, blocks: cols / 32, y: y + from, yStride: rows)
            return
        }
        if nTokens >= 2 || layout == .interleaved8, QuantKernels.useAVX2, type == .q4_K || type == .q6_K {
            // Batched decode and prefill: groups of 8 rows transposed on the fly
            // (AVX2KGroups), each superblock unpacked once per chunk of tokens whose
            // activations (≤ 192 KB) stay in L2; leftover rows one by one, same arithmetic.
            // Interleaved matrices are stored transposed (`Interleaved`), for any token count.
            let blocks = cols / 256, ab = act.rowBytes
            let chunk = AVX2Interleaved.tokenChunk(nTokens: nTokens, actRowBytes: ab)
            let scratch = UnsafeMutableRawPointer.allocate(byteCount: AVX2Dot.kGroupScratchBytes(nTokens: chunk), alignment: 64)
            defer { scratch.deallocate() }
            let groupsEnd = from + (to - from) / 8 * 8, packed = layout == .interleaved8
            let kernel = switch (type == .q4_K, QuantKernels.useVNNI) {
            case (true, true): VNNIKGroups.q4_KGroup8
            case (true, false): AVX2Dot.q4_KGroup8
            case (false, true): VNNIKGroups.q6_KGroup8
            case (false, false): AVX2Dot.q6_KGroup8
            }
            var t0 = 0
            while t0 < nTokens {
                let n = min(chunk, nTokens - t0)
                var r = from
                while r < groupsEnd {
                    kernel(data + r * rowBytes, rowBytes, blocks, act.buffer + t0 * ab, ab, n, scratch, y + t0 * rows + r, rows, packed)
                    r += 8
                }
                t0 += n
            }
            for r in groupsEnd..<to {
                for t in 0..<nTokens {
                    y[t * rows + r] = QuantKernels.dot(type, row: data + r * rowBytes, activations: act.buffer + t * ab, count: cols)
                }
            }
            return
        }
        #endif
        for r in from..<to {
            let row = data + r * rowBytes
            for t in 0..<nTokens {
                y[t * rows + r] = QuantKernels.dot(type, row: row, activations: act.buffer + t * act.rowBytes, count: cols)
            }
        }
    }

    /// Dequantizes row `index` (an embedding lookup). dst: [cols] f32
    public func row(_ index: Int, into dst: UnsafeMutablePointer<Float>) throws(FormatError) {
        guard index >= 0, index < rows else { throw .badTensor(tensor: name, reason: "row \(index) out of range 0..<\(rows)") }
        guard layout == .interleaved8 else {
            try dequantizeRow(type, data + index * rowBytes, dst, count: cols)
            return
        }
        let row = UnsafeMutableRawPointer.allocate(byteCount: rowBytes, alignment: 16)
        defer { row.deallocate() }
        let g = index / Interleaved.groupRows
        Interleaved.unpack(type, group: data + g * Interleaved.groupRows * rowBytes, lane: index % Interleaved.groupRows,
                           blocks: cols / type.blockSize, into: row)
        try dequantizeRow(type, row, dst, count: cols)
    }
}

/// Activations quantized for one activation format: [nTokens] rows of `rowBytes`, plus, for
/// Q8_0/Q8_1 when the AVX2 tile kernels are in use, the block scales as f32 (d, s) pairs,
/// `scaleStride` floats per token.
struct Activations: @unchecked Sendable {
    let buffer: UnsafeMutableRawPointer
    let rowBytes: Int
    let scales: UnsafeMutablePointer<Float>?
    let scaleStride: Int
    /// Q8_0 with `blockSums`: −16 · Σ of each block's 32 quants, `cols / 32` per token (the
    /// interleaved Q5_0 kernel's offset term).
    var blockSums: UnsafeMutablePointer<Int32>? = nil
    init(_ x: UnsafePointer<Float>, cols: Int, nTokens: Int, for weight: GGMLType, blockSums wantSums: Bool = false) {
        rowBytes = QuantKernels.activationRowBytes(for: weight, count: cols)
        buffer = UnsafeMutableRawPointer.allocate(byteCount: max(rowBytes * nTokens, 1), alignment: 64)
        let (buffer, rowBytes) = (buffer, rowBytes)
        // Tokens split across the workers for a prefill (a decode step's few tokens take less
        // than a region's start-up).
        Parallel.forRanges(nTokens, minPerThread: 8) { t0, t1 in
            for t in t0..<t1 {
                QuantKernels.quantizeActivations(x + t * cols, count: cols, for: weight, into: buffer + t * rowBytes)
            }
        }
        #if arch(x86_64)
        let format = QuantKernels.activationType(for: weight)
        if QuantKernels.useAVX2, format == .q8_0, wantSums {
            let blocks = cols / 32
            let sums = UnsafeMutablePointer<Int32>.allocate(capacity: max(blocks * nTokens, 1))
            for t in 0..<nTokens { AVX2Interleaved.q8_0Sums(buffer + t * rowBytes, blocks: blocks, into: sums + t * blocks) }
            blockSums = sums
        }
        guard QuantKernels.useAVX2, format == .q8_0 || format == .q8_1 else {
            scales = nil
            scaleStride = 0
            return
        }
        // Q8_0: f16 d at 0 (34-byte blocks); Q8_1: f16 d at 0, f16 s at 2 (36-byte blocks).
        let blocks = cols / 32
        let blockBytes = rowBytes / max(blocks, 1)
        let hasS = format == .q8_1
        scaleStride = 2 * blocks
        let sc = UnsafeMutablePointer<Float>.allocate(capacity: max(scaleStride * nTokens, 1))
        for t in 0..<nTokens {
            for b in 0..<blocks {
                let blk = buffer + t * rowBytes + b * blockBytes
                sc[t * scaleStride + 2 * b] = fp16ToFloat(UInt16(littleEndian: blk.loadUnaligned(as: UInt16.self)))
                sc[t * scaleStride + 2 * b + 1] = hasS ? fp16ToFloat(UInt16(littleEndian: blk.loadUnaligned(fromByteOffset: 2, as: UInt16.self))) : 0
            }
        }
        scales = sc
        #else
        scales = nil
        scaleStride = 0
        #endif
    }

    func deallocate() {
        buffer.deallocate()
        scales?.deallocate()
        blockSums?.deallocate()
    }
}

/// Heap bytes owned by a matrix (a repacked copy of its weights).
final class ByteStorage: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    init(count: Int) { pointer = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 64) }
    deinit { pointer.deallocate() }
}
