import SparrowFormats

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
        var activations: [GGMLType: (buffer: UnsafeMutableRawPointer, rowBytes: Int)] = [:]
        defer { for a in activations.values { a.buffer.deallocate() } }
        for m in matrices where m.cols == cols {
            let format = QuantKernels.activationType(for: m.type)
            guard activations[format] == nil else { continue }
            let actBytes = QuantKernels.activationRowBytes(for: m.type, count: cols)
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(actBytes * nTokens, 1), alignment: 64)
            for t in 0..<nTokens {
                QuantKernels.quantizeActivations(x + t * cols, count: cols, for: m.type, into: buffer + t * actBytes)
            }
            activations[format] = (buffer, actBytes)
        }
        // Per matrix: its first global row, and where its activations are.
        struct Job { let m: WeightMatrix; let y: UnsafeMutablePointer<Float>; let first: Int; let act: UnsafeMutableRawPointer; let actBytes: Int }
        var jobs: [Job] = []
        var total = 0
        for (m, y) in zip(matrices, outputs) where m.cols == cols {
            guard let a = activations[QuantKernels.activationType(for: m.type)] else { continue }
            jobs.append(Job(m: m, y: y, first: total, act: a.buffer, actBytes: a.rowBytes))
            total += m.rows
        }
        // Rows outer, tokens inner: each weight row is read once from memory and reused from
        // cache for every token of a prefill batch.
        Parallel.forRanges(total, granularity: 4, minPerThread: 16) { start, end in
            var j = 0
            while j + 1 < jobs.count && jobs[j + 1].first <= start { j += 1 }
            var g = start
            while g < end {
                let job = jobs[j]
                let m = job.m
                let stop = min(end, job.first + m.rows)
                for r in (g - job.first)..<(stop - job.first) {
                    let row = m.data + r * m.rowBytes
                    for t in 0..<nTokens {
                        job.y[t * m.rows + r] = QuantKernels.dot(m.type, row: row, activations: job.act + t * job.actBytes, count: cols)
                    }
                }
                g = stop
                j += 1
            }
        }
    }

    /// Dequantizes row `index` (an embedding lookup). dst: [cols] f32
    public func row(_ index: Int, into dst: UnsafeMutablePointer<Float>) throws(FormatError) {
        guard index >= 0, index < rows else { throw .badTensor(tensor: name, reason: "row \(index) out of range 0..<\(rows)") }
        try dequantizeRow(type, data + index * rowBytes, dst, count: cols)
    }
}
