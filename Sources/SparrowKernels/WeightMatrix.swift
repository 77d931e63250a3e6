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
        let actBytes = QuantKernels.activationRowBytes(for: type, count: cols)
        let act = UnsafeMutableRawPointer.allocate(byteCount: max(actBytes * nTokens, 1), alignment: 64)
        defer { act.deallocate() }
        for t in 0..<nTokens {
            QuantKernels.quantizeActivations(x + t * cols, count: cols, for: type, into: act + t * actBytes)
        }
        let type = self.type, cols = self.cols, rows = self.rows, rowBytes = self.rowBytes, data = self.data
        // Rows outer, tokens inner: each weight row is read once from memory and reused from
        // cache for every token of a prefill batch.
        Parallel.forRanges(rows, granularity: 4, minPerThread: 16) { start, end in
            for r in start..<end {
                let row = data + r * rowBytes
                for t in 0..<nTokens {
                    y[t * rows + r] = QuantKernels.dot(type, row: row, activations: act + t * actBytes, count: cols)
                }
            }
        }
    }

    /// Dequantizes row `index` (an embedding lookup). dst: [cols] f32
    public func row(_ index: Int, into dst: UnsafeMutablePointer<Float>) throws(FormatError) {
        guard index >= 0, index < rows else { throw .badTensor(tensor: name, reason: "row \(index) out of range 0..<\(rows)") }
        try dequantizeRow(type, data + index * rowBytes, dst, count: cols)
    }
}
