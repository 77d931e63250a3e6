#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SparrowFormats
import SparrowKernels

/// Writes GGUF files from GGUF or Hugging Face sources, converting tensor types the way
/// llama.cpp's `llama-quantize` (`src/llama-quant.cpp`) chooses them: `sparrow quantize`.
public enum GGUFConversion {
    /// Output types `sparrow quantize --type` accepts (the quantizers Sparrow has, each
    /// bit-exact with ggml's reference `quantize_row_*_ref`).
    /// Every convertible tensor gets the requested type; llama.cpp's mixtures (Q4_K_M's Q6_K
    /// for attn_v, ffn_down and output, ...) are not reproduced yet.
    public static let targets: [String: GGMLType] = ["F32": .f32, "F16": .f16, "BF16": .bf16, "Q8_0": .q8_0,
                                                     "Q5_0": .q5_0, "Q4_K": .q4_K, "Q6_K": .q6_K]

    /// llama.cpp's `general.file_type` (`enum llama_ftype`) for each target (Q4_K and Q6_K
    /// as the closest ftypes, Q4_K_S and Q6_K).
    static let fileTypes: [GGMLType: UInt32] = [.f32: 0, .f16: 1, .q8_0: 7, .q5_0: 8, .q4_K: 14, .q6_K: 18, .bf16: 32]

    /// llama.cpp's `tensor_type_fallback` for rows a 256-element block does not divide.
    static let fallbacks: [GGMLType: GGMLType] = [.q4_K: .q5_0, .q6_K: .q8_0]

    /// One planned tensor: where it comes from and the type it is written as.
    public struct Planned: Sendable {
        public var source: SourceTensor
        public var type: GGMLType
        /// Why the type differs from the requested one, if it does for a reason worth telling
        /// (a fallback for an incompatible row length).
        public var note: String?
    }

    /// Progress after each tensor: (tensors done, tensor count, bytes written so far, total bytes, tensor).
    public typealias Progress = (Int, Int, Int, Int, Planned) -> Void

    /// The metadata and tensors of a GGUF file as a conversion source (metadata copied except
    /// the keys the writer sets itself).
    public static func source(_ gguf: GGUFFile) -> (metadata: [(String, GGUFValue)], tensors: [SourceTensor]) {
        let skip: Set<String> = ["general.alignment", "general.file_type", "general.quantization_version"]
        let metadata = gguf.metadataKeys.compactMap { k in gguf.metadata[k].map { (k, $0) } }.filter { !skip.contains($0.0) }
        let tensors = gguf.tensors.map {
            SourceTensor(name: $0.name, shape: $0.shape, type: $0.type,
                         parts: [UnsafeRawBufferPointer(start: $0.data, count: $0.byteCount)], owner: gguf)
        }
        return (metadata, tensors)
    }

    /// Chooses each tensor's output type as llama.cpp does for a plain `--type` (without its
    /// per-tensor mixtures), and its shape as ggml writes it (trailing 1s dropped: [d, 1] is [d]):
    /// only 2-D and 3-D tensors whose name ends in "weight" are converted, except norms, the
    /// MoE router (`ffn_gate_inp`, kept exact for routing) and the small convolution taps of
    /// linear-attention layers (`ssm_conv1d`); the rest become F32 (or stay as
    /// they are if not a float type). A row length the target's block does not divide falls
    /// back as llama.cpp's `tensor_type_fallback` does: Q4_K → Q5_0, Q6_K → Q8_0, otherwise
    /// (or if that does not fit either) F16.
    public static func plan(_ tensors: [SourceTensor], target: GGMLType) -> [Planned] {
        tensors.map { t in
            // Dimensions as ggml counts them (`ggml_n_dims`: trailing 1s do not count), so the
            // shared-expert gate the Python converter writes as [d, 1] stays F32 as in llama-quantize.
            var t = t
            while t.shape.count > 1, t.shape.last == 1 { t.shape.removeLast() }
            let convertible = t.shape.count >= 2 && t.name.hasSuffix("weight") && !t.name.contains("_norm.weight")
                && !t.name.contains("ffn_gate_inp.weight") && !t.name.contains("ssm_conv1d")
            guard convertible else {
                let floatSource: Set<GGMLType> = [.f32, .f16, .bf16]
                return Planned(source: t, type: floatSource.contains(t.type) ? .f32 : t.type, note: nil)
            }
            let cols = t.shape[0]
            if cols % target.blockSize != 0 {
                let fallback = fallbacks[target].flatMap { cols % $0.blockSize == 0 ? $0 : nil } ?? .f16
                return Planned(source: t, type: fallback,
                               note: "row length \(cols) not divisible by \(target)'s block of \(target.blockSize): \(fallback)")
            }
            return Planned(source: t, type: target, note: nil)
        }
    }

    /// Writes `tensors` converted to `target` (per `plan`) with `metadata` to `path`, streaming
    /// one tensor at a time (memory stays at one row buffer plus one tensor's output).
    /// - Returns: the plan that was written.
    @discardableResult
    public static func write(path: String, metadata: [(String, GGUFValue)], tensors: [SourceTensor], target: GGMLType,
                             progress: Progress? = nil) throws(ModelError) -> [Planned] {
        guard let fileType = fileTypes[target] else {
            throw .invalidConfig("--type \(target) is not supported (supported: \(targets.keys.sorted().joined(separator: ", ")))")
        }
        let planned = plan(tensors, target: target)
        let alignment = 32

        // Output sizes and offsets are known before any data is converted.
        var sizes: [Int] = []
        for p in planned {
            let cols = p.source.shape[0], rows = cols == 0 ? 0 : p.source.elementCount / cols
            guard let rb = p.type.rowBytes(cols), p.source.type.rowBytes(cols) != nil else {
                throw .format(.badTensor(tensor: p.source.name, reason: "row length \(cols) does not fit \(p.source.type) → \(p.type)"))
            }
            let sourceBytes = p.source.parts.reduce(0) { $0 + $1.count }
            guard sourceBytes == rows * (p.source.type.rowBytes(cols) ?? 0) else {
                throw .format(.badTensor(tensor: p.source.name, reason: "\(sourceBytes) source bytes for shape \(p.source.shape) of \(p.source.type)"))
            }
            sizes.append(rows * rb)
        }

        // Header: the metadata through GGUFWriter (alignment 1 and an explicit general.alignment,
        // so it writes the key/value section unpadded), then the tensor infos.
        var meta = metadata.filter { $0.0 != "general.alignment" && $0.0 != "general.file_type" && $0.0 != "general.quantization_version" }
        meta.append(("general.file_type", .uint32(fileType)))
        if target.blockSize > 1 { meta.append(("general.quantization_version", .uint32(2))) }
        meta.append(("general.alignment", .uint32(UInt32(alignment))))
        var w = GGUFWriter()
        w.metadata = meta
        w.alignment = 1
        var header = w.serialize()
        withUnsafeBytes(of: UInt64(planned.count).littleEndian) { header.replaceSubrange(8..<16, with: $0) }
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { header += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { header += $0 } }
        var offset = 0
        for (p, size) in zip(planned, sizes) {
            u64(UInt64(p.source.name.utf8.count)); header += Array(p.source.name.utf8)
            u32(UInt32(p.source.shape.count))
            for d in p.source.shape { u64(UInt64(d)) }
            u32(p.type.rawValue)
            u64(UInt64(offset))
            offset += (size + alignment - 1) / alignment * alignment
        }
        while header.count % alignment != 0 { header.append(0) }
        let total = header.count + offset

        guard let file = fopen(path, "wb") else {
            throw .format(.io(path: path, reason: String(cString: strerror(errno))))
        }
        defer { fclose(file) }
        func put(_ bytes: [UInt8], count: Int? = nil) throws(ModelError) {
            let n = count ?? bytes.count
            let ok = bytes.withUnsafeBytes { n == 0 || fwrite($0.baseAddress, 1, n, file) == n }
            guard ok else { throw .format(.io(path: path, reason: "write failed: \(String(cString: strerror(errno)))")) }
        }
        try put(header)
        var written = header.count
        let padding = [UInt8](repeating: 0, count: alignment)
        for (i, (p, size)) in zip(planned, sizes).enumerated() {
            let data = try convert(p)
            guard data.count == size else {
                throw .format(.badTensor(tensor: p.source.name, reason: "converted to \(data.count) bytes, planned \(size)"))
            }
            try put(data)
            let pad = (alignment - size % alignment) % alignment
            try put(padding, count: pad)
            written += size + pad
            progress?(i + 1, planned.count, written, total, p)
        }
        guard fflush(file) == 0 else { throw .format(.io(path: path, reason: "flush failed: \(String(cString: strerror(errno)))")) }
        return planned
    }

    /// One tensor's bytes in its planned type. Same type: copied as is; otherwise each row is
    /// widened to f32 (exact for float sources, ggml's dequantization for quantized ones) and
    /// encoded with ggml's reference conversion.
    static func convert(_ p: Planned) throws(ModelError) -> [UInt8] {
        let src = p.source
        let cols = src.shape[0]
        if p.type == src.type {
            var out: [UInt8] = []
            out.reserveCapacity(src.parts.reduce(0) { $0 + $1.count })
            for part in src.parts { out += part }
            return out
        }
        guard let srcRow = src.type.rowBytes(cols), let dstRow = p.type.rowBytes(cols) else { return [] }
        let rows = src.parts.reduce(0) { $0 + $1.count } / max(srcRow, 1)
        var out = [UInt8](repeating: 0, count: rows * dstRow)
        let row = FloatBuffer(count: cols, zeroed: false)  // [cols] f32
        var r = 0
        var failure: ModelError?
        out.withUnsafeMutableBytes { dst in
            guard let base = dst.baseAddress else { return }
            for part in src.parts {
                guard let partBase = part.baseAddress, failure == nil else { continue }
                for j in 0..<(part.count / srcRow) {
                    do throws(FormatError) { try dequantizeRow(src.type, partBase + j * srcRow, row.pointer, count: cols) } catch {
                        failure = .format(error)
                        return
                    }
                    let o = base + r * dstRow
                    switch p.type {
                    case .f32: o.copyMemory(from: row.pointer, byteCount: cols * 4)
                    case .f16: HalfRows.toF16(row.pointer, count: cols, into: o)
                    case .bf16: HalfRows.toBF16(row.pointer, count: cols, into: o)
                    case .q8_0: QuantKernels.quantizeRowQ8_0(row.pointer, count: cols, into: o)
                    case .q5_0: WeightQuantizer.quantizeRowQ5_0(row.pointer, count: cols, into: o)
                    case .q4_K: WeightQuantizer.quantizeRowQ4_K(row.pointer, count: cols, into: o)
                    case .q6_K: WeightQuantizer.quantizeRowQ6_K(row.pointer, count: cols, into: o)
                    default:
                        failure = .invalidConfig("no encoder for \(p.type) (tensor \(src.name))")
                        return
                    }
                    r += 1
                }
            }
        }
        if let failure { throw failure }
        return out
    }
}
