import SparrowFormats
import SparrowKernels

/// Binds GGUF tensors by their exact llama.cpp names, checking shapes. Weights are read in
/// place from the mapping, except small f16/bf16 norm vectors converted to f32 and, on CPUs
/// with AVX2, dense Q5_0/Q8_0/Q4_K/Q6_K matrices repacked eight rows side by side
/// (`WeightMatrix.interleaved()`), whose mapped pages are then released so resident memory
/// stays the file's size.
public struct WeightLoader {
    public let gguf: GGUFFile
    /// Pages the routed experts when the model runs under a memory budget (MoE loaders register
    /// every layer's experts with it); nil: experts are read in place from the mapping.
    public let offload: ExpertStore?

    public init(gguf: GGUFFile, offload: ExpertStore? = nil) {
        self.gguf = gguf
        self.offload = offload
    }

    public func has(_ name: String) -> Bool { gguf.tensorsByName[name] != nil }

    /// A matrix with `cols` inputs and `rows` outputs (GGUF shape [cols, rows]).
    public func matrix(_ name: String, rows: Int, cols: Int) throws(ModelError) -> WeightMatrix {
        guard let t = gguf.tensorsByName[name] else { throw .missingTensor(name) }
        guard t.shape == [cols, rows] else { throw .shapeMismatch(tensor: name, expected: [cols, rows], found: t.shape) }
        let m: WeightMatrix
        do {
            m = try WeightMatrix(name: name, type: t.type, rows: rows, cols: cols, data: t.data, owner: gguf)
        } catch {
            throw .format(error)
        }
        // The input embedding is only read a row per token, unless the output layer is tied to it.
        guard name != "token_embd.weight" || !has("output.weight"),
              let packed = m.interleaved(release: { gguf.file.release($0, count: $1) }) else { return m }
        // Each batch released only its whole pages; this drops the pages batches shared.
        gguf.file.release(t.data, count: t.byteCount)
        return packed
    }

    public func optionalMatrix(_ name: String, rows: Int, cols: Int) throws(ModelError) -> WeightMatrix? {
        has(name) ? try matrix(name, rows: rows, cols: cols) : nil
    }

    /// A 1-D vector of `count` elements as f32 (norm weights, biases).
    public func vector(_ name: String, count: Int) throws(ModelError) -> FloatBuffer {
        guard let t = gguf.tensorsByName[name] else { throw .missingTensor(name) }
        guard t.elementCount == count, t.shape[0] == count else { throw .shapeMismatch(tensor: name, expected: [count], found: t.shape) }
        let out = FloatBuffer(count: count, zeroed: false)
        do {
            try dequantizeRow(t.type, t.data, out.pointer, count: count)
        } catch {
            throw .format(error)
        }
        return out
    }

    public func optionalVector(_ name: String, count: Int) throws(ModelError) -> FloatBuffer? {
        has(name) ? try vector(name, count: count) : nil
    }

    /// A small tensor of exactly `shape` (ggml order) as f32, row after row (e.g. the
    /// convolution taps `ssm_conv1d` [kernel, channels] → [channels][kernel]).
    public func floats(_ name: String, shape: [Int]) throws(ModelError) -> FloatBuffer {
        guard let t = gguf.tensorsByName[name] else { throw .missingTensor(name) }
        guard t.shape == shape, let rowLength = shape.first, rowLength > 0 else {
            throw .shapeMismatch(tensor: name, expected: shape, found: t.shape)
        }
        guard let rowBytes = t.type.rowBytes(rowLength) else {
            throw .format(.badTensor(tensor: name, reason: "row length \(rowLength) is not a multiple of the \(t.type) block size \(t.type.blockSize)"))
        }
        let rows = t.elementCount / rowLength
        let out = FloatBuffer(count: t.elementCount, zeroed: false)
        do {
            for r in 0..<rows { try dequantizeRow(t.type, t.data + r * rowBytes, out.pointer + r * rowLength, count: rowLength) }
        } catch {
            throw .format(error)
        }
        return out
    }
}

extension WeightLoader {
    /// The `count` matrices of a stacked-experts tensor (GGUF shape [cols, rows, count], e.g.
    /// `ffn_gate_exps` [d, ffExp, nExperts]), each a view of its slice of the mapping; no copy.
    public func experts(_ name: String, count: Int, rows: Int, cols: Int) throws(ModelError) -> [WeightMatrix] {
        guard let t = gguf.tensorsByName[name] else { throw .missingTensor(name) }
        guard t.shape == [cols, rows, count] else {
            throw .shapeMismatch(tensor: name, expected: [cols, rows, count], found: t.shape)
        }
        guard let rowBytes = t.type.rowBytes(cols) else {
            throw .format(.badTensor(tensor: name, reason: "row length \(cols) is not a multiple of the \(t.type) block size \(t.type.blockSize)"))
        }
        var out: [WeightMatrix] = []
        out.reserveCapacity(count)
        for e in 0..<count {
            do {
                out.append(try WeightMatrix(name: "\(name)[\(e)]", type: t.type, rows: rows, cols: cols,
                                            data: t.data + e * rows * rowBytes, owner: gguf))
            } catch {
                throw .format(error)
            }
        }
        return out
    }
}
