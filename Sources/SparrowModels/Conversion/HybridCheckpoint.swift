#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SparrowFormats
import SparrowKernels

/// Bytes computed during conversion (a tensor llama.cpp's converter transforms), kept alive by
/// the `SourceTensor` that points into them.
final class ConvertedBytes: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    let count: Int

    init(count: Int) {
        self.count = count
        pointer = .allocate(byteCount: max(count, 1), alignment: 64)
    }

    deinit { pointer.deallocate() }

    var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: pointer, count: count) }
}

/// The hybrid Qwen architectures (qwen3next, qwen35, qwen35moe) as llama.cpp's
/// `convert_hf_to_gguf.py` converts them (`Qwen3NextModel`, `_LinearAttentionVReorderBase`,
/// `Qwen3_5TextModel`, `Qwen3_5MoeTextModel` in conversion/qwen.py).
extension HuggingFaceCheckpoint {
    static let hybridArchitectures: Set<String> = ["qwen3next", "qwen35", "qwen35moe"]

    /// Sizes of the linear-attention layers, from config.json.
    struct LinearAttentionShape {
        var keyHeads: Int, valueHeads: Int, keyDim: Int, valueDim: Int, convKernel: Int
        var valuesPerKey: Int { valueHeads / keyHeads }
        var keyWidth: Int { keyHeads * keyDim }
        var valueWidth: Int { valueHeads * valueDim }

        init(_ c: ParsedJSON) throws(ModelError) {
            func int(_ key: String) throws(ModelError) -> Int {
                guard let v = c[key]?.intValue, v > 0 else {
                    throw .format(.missingKey(key, expected: "a positive integer in config.json"))
                }
                return v
            }
            keyHeads = try int("linear_num_key_heads")
            valueHeads = try int("linear_num_value_heads")
            keyDim = try int("linear_key_head_dim")
            valueDim = try int("linear_value_head_dim")
            convKernel = try int("linear_conv_kernel_dim")
            guard valueHeads % keyHeads == 0 else {
                throw .invalidConfig("linear_num_value_heads \(valueHeads) must be a multiple of linear_num_key_heads \(keyHeads)")
            }
        }
    }

    /// The keys `Qwen3NextModel.set_gguf_parameters` (and `_Qwen35MRopeMixin`) add.
    static func hybridMetadata(_ c: ParsedJSON, arch: String) throws(ModelError) -> [(String, GGUFValue)] {
        func u32(_ v: Int) -> GGUFValue { .uint32(UInt32(clamping: v)) }
        let s = try LinearAttentionShape(c)
        var m: [(String, GGUFValue)] = []
        if let shared = c["shared_expert_intermediate_size"]?.intValue {
            m.append(("\(arch).expert_shared_feed_forward_length", u32(shared)))
        }
        m.append(("\(arch).ssm.conv_kernel", u32(s.convKernel)))
        m.append(("\(arch).ssm.state_size", u32(s.keyDim)))
        m.append(("\(arch).ssm.group_count", u32(s.keyHeads)))
        m.append(("\(arch).ssm.time_step_rank", u32(s.valueHeads)))
        m.append(("\(arch).ssm.inner_size", u32(s.valueDim * s.valueHeads)))
        guard let layers = c["num_hidden_layers"]?.intValue else {
            throw .format(.missingKey("num_hidden_layers", expected: "an integer in config.json"))
        }
        if let types = c["layer_types"]?.arrayValue {
            guard types.count == layers else {
                throw .invalidConfig("layer_types has \(types.count) entries, expected num_hidden_layers (\(layers))")
            }
            var recurrent: [Bool] = []
            for t in types {
                switch t.stringValue {
                case "linear_attention": recurrent.append(true)
                case "full_attention": recurrent.append(false)
                default: throw .invalidConfig("layer_types entry '\(t.text)' is not linear_attention or full_attention")
                }
            }
            m.append(("\(arch).attention.recurrent_layers", .array(.bools(recurrent))))
        }
        m.append(("\(arch).full_attention_interval", u32(c["full_attention_interval"]?.intValue ?? 4)))
        let rope = c["rope_parameters"]
        let headDim = c["head_dim"]?.intValue ?? ((c["hidden_size"]?.intValue ?? 0) / max(c["num_attention_heads"]?.intValue ?? 1, 1))
        let partial = rope?["partial_rotary_factor"]?.doubleValue ?? c["partial_rotary_factor"]?.doubleValue ?? 0.25
        m.append(("\(arch).rope.dimension_count", u32(Int(Double(headDim) * partial))))
        if arch != "qwen3next" {
            var sections = rope?["mrope_section"]?.arrayValue?.compactMap(\.intValue) ?? [11, 11, 10]
            while sections.count < 4 { sections.append(0) }
            m.append(("\(arch).rope.dimension_sections", .array(.ints(sections.prefix(4).map(Int64.init), elementType: 5))))
        }
        if c["attention_bias"]?.boolValue == true {
            throw .invalidConfig("attention_bias true is not supported (Qwen3-Next and Qwen3.5 have none)")
        }
        return m
    }

    /// The checkpoint name as the converter sees it: a vision-language checkpoint's
    /// `model.language_model.` prefix becomes `model.` (`ModelBase.filter_tensors`), and the
    /// vision tower and the multi-token-prediction head, which Sparrow does not run, map to nil.
    static func hybridName(_ name: String) -> String? {
        if name.hasPrefix("mtp.") || name.hasPrefix("model.mtp.") || name.hasPrefix("model.visual.") || name.hasPrefix("visual.") {
            return nil
        }
        if name.hasPrefix("model.language_model.") { return "model." + name.dropFirst("model.language_model.".count) }
        return name
    }

    /// Converts one tensor of a hybrid layer the way the converter does, or returns nil for a
    /// tensor the generic mapping handles as is.
    /// - rest: the name after `model.layers.<i>.`; b: `blk.<i>.`
    static func hybridTensors(rest: [String], b: String, tensor t: SafetensorsTensor, arch: String,
                              shape s: LinearAttentionShape, owner: AnyObject) throws(ModelError) -> [SourceTensor]? {
        // qwen35/qwen35moe reorder value heads from grouped to tiled when there are more value heads than key heads.
        let reorder = arch != "qwen3next" && s.valueHeads != s.keyHeads
        func rows(_ name: String, shape: [Int], _ order: [Range<Int>]) throws(ModelError) -> SourceTensor {
            try rowSelection(t, name: name, shape: shape, rows: order, owner: owner)
        }
        /// Row blocks of `size` rows for value heads 0..<nV, in tiled order when reordering.
        func valueHeadRows(base: Int, size: Int) -> [Range<Int>] {
            tiledOrder(s, reorder: reorder).map { h in (base + h * size) ..< (base + (h + 1) * size) }
        }
        let d = t.shape.last ?? 0
        switch rest {
        case ["linear_attn", "in_proj_qkvz", "weight"]:
            // Per key head [q | k | v (r heads) | z (r heads)] rows → attn_qkv (all q, all k, all v) and attn_gate (all z).
            let block = 2 * s.keyDim + 2 * s.valuesPerKey * s.valueDim
            guard t.shape == [s.keyHeads * block, d] else {
                throw .shapeMismatch(tensor: b + "in_proj_qkvz", expected: [d, s.keyHeads * block], found: t.ggmlShape)
            }
            let vr = s.valuesPerKey * s.valueDim
            let q = (0..<s.keyHeads).map { h in (h * block) ..< (h * block + s.keyDim) }
            let k = (0..<s.keyHeads).map { h in (h * block + s.keyDim) ..< (h * block + 2 * s.keyDim) }
            let v = (0..<s.keyHeads).map { h in (h * block + 2 * s.keyDim) ..< (h * block + 2 * s.keyDim + vr) }
            let z = (0..<s.keyHeads).map { h in (h * block + 2 * s.keyDim + vr) ..< ((h + 1) * block) }
            return [try rows(b + "attn_qkv.weight", shape: [d, 2 * s.keyWidth + s.valueWidth], q + k + v),
                    try rows(b + "attn_gate.weight", shape: [d, s.valueWidth], z)]
        case ["linear_attn", "in_proj_qkv", "weight"]:
            let qk = 0 ..< 2 * s.keyWidth
            return [try rows(b + "attn_qkv.weight", shape: [d, 2 * s.keyWidth + s.valueWidth],
                             [qk] + valueHeadRows(base: 2 * s.keyWidth, size: s.valueDim))]
        case ["linear_attn", "in_proj_z", "weight"]:
            return [try rows(b + "attn_gate.weight", shape: [d, s.valueWidth], valueHeadRows(base: 0, size: s.valueDim))]
        case ["linear_attn", "in_proj_b", "weight"]:
            return [try rows(b + "ssm_beta.weight", shape: [d, s.valueHeads], valueHeadRows(base: 0, size: 1))]
        case ["linear_attn", "in_proj_a", "weight"]:
            return [try rows(b + "ssm_alpha.weight", shape: [d, s.valueHeads], valueHeadRows(base: 0, size: 1))]
        case ["linear_attn", "in_proj_ba", "weight"]:
            return [try rows(b + "ssm_ba.weight", shape: [d, 2 * s.valueHeads], [0 ..< 2 * s.valueHeads])]
        case ["linear_attn", "conv1d", "weight"]:
            // [channels, 1, kernel] squeezed to ggml [kernel, channels]: one row of taps per channel.
            let channels = 2 * s.keyWidth + s.valueWidth
            guard t.elementCount == channels * s.convKernel, t.shape.first == channels else {
                throw .shapeMismatch(tensor: b + "conv1d", expected: [s.convKernel, 1, channels], found: t.ggmlShape)
            }
            return [try rows(b + "ssm_conv1d.weight", shape: [s.convKernel, channels],
                             [0 ..< 2 * s.keyWidth] + valueHeadRows(base: 2 * s.keyWidth, size: s.valueDim))]
        case ["linear_attn", "dt_bias"], ["linear_attn", "dt_proj", "bias"]:
            return [try perHead(t, name: b + "ssm_dt.bias", s, reorder: reorder, owner: owner) { $0 }]
        case ["linear_attn", "A_log"]:
            return [try perHead(t, name: b + "ssm_a", s, reorder: reorder, owner: owner) { -expf($0) }]
        case ["linear_attn", "norm", "weight"]:
            return [try elementwise(t, name: b + "ssm_norm.weight", shape: [t.elementCount]) { $0 }]
        case ["linear_attn", "out_proj", "weight"]:
            return [try columnSelection(t, name: b + "ssm_out.weight",
                                        columns: valueHeadRows(base: 0, size: s.valueDim), owner: owner)]
        case ["input_layernorm", "weight"]:
            return [try elementwise(t, name: b + "attn_norm.weight", shape: [t.elementCount]) { 1 + $0 }]
        case ["post_attention_layernorm", "weight"]:
            return [try elementwise(t, name: b + "post_attention_norm.weight", shape: [t.elementCount]) { 1 + $0 }]
        case ["self_attn", "q_norm", "weight"]:
            return [try elementwise(t, name: b + "attn_q_norm.weight", shape: [t.elementCount]) { 1 + $0 }]
        case ["self_attn", "k_norm", "weight"]:
            return [try elementwise(t, name: b + "attn_k_norm.weight", shape: [t.elementCount]) { 1 + $0 }]
        case ["mlp", "shared_expert_gate", "weight"]:
            // Kept [1, d] → ggml [d, 1], as the converter writes it.
            return [SourceTensor(name: b + "ffn_gate_inp_shexp.weight", shape: t.ggmlShape, type: t.type,
                                 parts: [UnsafeRawBufferPointer(start: t.data, count: t.byteCount)], owner: owner)]
        case ["mlp", "experts", "gate_up_proj"], ["mlp", "experts", "gate_up_proj", "weight"]:
            // Fused [nExperts, 2·ff, d]: the first ff rows of each expert are the gate, the rest the up projection.
            guard t.shape.count == 3, t.shape[1] % 2 == 0 else {
                throw .shapeMismatch(tensor: b + "experts.gate_up_proj", expected: [d, 2, t.shape.first ?? 0], found: t.ggmlShape)
            }
            let e = t.shape[0], ff = t.shape[1] / 2
            let gate = (0..<e).map { x in (2 * x * ff) ..< (2 * x * ff + ff) }
            let up = (0..<e).map { x in (2 * x * ff + ff) ..< (2 * x + 2) * ff }
            return [try rows(b + "ffn_gate_exps.weight", shape: [t.shape[2], ff, e], gate),
                    try rows(b + "ffn_up_exps.weight", shape: [t.shape[2], ff, e], up)]
        case ["mlp", "experts", "down_proj"], ["mlp", "experts", "down_proj", "weight"]:
            guard t.shape.count == 3 else {
                throw .shapeMismatch(tensor: b + "experts.down_proj", expected: [0, 0, 0], found: t.ggmlShape)
            }
            return [SourceTensor(name: b + "ffn_down_exps.weight", shape: t.ggmlShape, type: t.type,
                                 parts: [UnsafeRawBufferPointer(start: t.data, count: t.byteCount)], owner: owner)]
        default:
            return nil
        }
    }

    /// The output norm, zero-centred in Hugging Face: stored + 1 as the converter does.
    static func hybridOutputNorm(_ t: SafetensorsTensor) throws(ModelError) -> SourceTensor {
        try elementwise(t, name: "output_norm.weight", shape: [t.elementCount]) { 1 + $0 }
    }

    /// Value heads in the order the converted tensor lists them: h itself, or for the tiled
    /// order (`_reorder_v_heads`) position i·nK + kh holding grouped head kh·r + i.
    static func tiledOrder(_ s: LinearAttentionShape, reorder: Bool) -> [Int] {
        guard reorder else { return Array(0..<s.valueHeads) }
        let r = s.valuesPerKey
        return (0..<r).flatMap { i in (0..<s.keyHeads).map { kh in kh * r + i } }
    }

    /// A tensor made of the given row ranges of `t` (Hugging Face row-major [rows, cols]), in
    /// order; no bytes copied.
    static func rowSelection(_ t: SafetensorsTensor, name: String, shape: [Int], rows: [Range<Int>],
                             owner: AnyObject) throws(ModelError) -> SourceTensor {
        let cols = t.shape.last ?? 0
        let rowBytes = cols * t.type.typeSize
        let total = t.shape.count >= 2 ? t.elementCount / max(cols, 1) : 1
        let selected = rows.reduce(0) { $0 + $1.count }
        guard shape.reduce(1, *) == selected * cols, rows.allSatisfy({ $0.lowerBound >= 0 && $0.upperBound <= total }) else {
            throw .shapeMismatch(tensor: name, expected: shape, found: t.ggmlShape)
        }
        return SourceTensor(name: name, shape: shape, type: t.type,
                            parts: rows.map { UnsafeRawBufferPointer(start: t.data + $0.lowerBound * rowBytes, count: $0.count * rowBytes) },
                            owner: owner)
    }

    /// `t` [rows, cols] with its columns rearranged into the given ranges, in order (copied).
    static func columnSelection(_ t: SafetensorsTensor, name: String, columns: [Range<Int>],
                                owner: AnyObject) throws(ModelError) -> SourceTensor {
        guard t.shape.count == 2 else { throw .shapeMismatch(tensor: name, expected: [0, 0], found: t.ggmlShape) }
        let rowCount = t.shape[0], cols = t.shape[1], size = t.type.typeSize
        guard columns.reduce(0, { $0 + $1.count }) == cols, columns.allSatisfy({ $0.upperBound <= cols }) else {
            throw .shapeMismatch(tensor: name, expected: [cols, rowCount], found: t.ggmlShape)
        }
        let out = ConvertedBytes(count: t.byteCount)
        for r in 0..<rowCount {
            var at = r * cols * size
            for c in columns {
                (out.pointer + at).copyMemory(from: t.data + (r * cols + c.lowerBound) * size, byteCount: c.count * size)
                at += c.count * size
            }
        }
        return SourceTensor(name: name, shape: t.ggmlShape, type: t.type, parts: [out.buffer], owner: out)
    }

    /// A per-value-head vector [nV] through `f`, in tiled order when reordering.
    static func perHead(_ t: SafetensorsTensor, name: String, _ s: LinearAttentionShape, reorder: Bool,
                        owner: AnyObject, _ f: (Float) -> Float) throws(ModelError) -> SourceTensor {
        guard t.elementCount == s.valueHeads else { throw .shapeMismatch(tensor: name, expected: [s.valueHeads], found: t.ggmlShape) }
        let order = tiledOrder(s, reorder: reorder)
        let permuted = ConvertedBytes(count: t.byteCount)
        let size = t.type.typeSize
        for (i, h) in order.enumerated() { (permuted.pointer + i * size).copyMemory(from: t.data + h * size, byteCount: size) }
        return try elementwise(name: name, type: t.type, shape: [s.valueHeads], data: UnsafeRawPointer(permuted.pointer),
                               count: t.elementCount, f)
    }

    /// `f` applied to every element of a float tensor, rounded back to its type as torch
    /// computes `data_torch + 1` or `-torch.exp(data_torch)` in the tensor's own dtype.
    static func elementwise(_ t: SafetensorsTensor, name: String, shape: [Int], _ f: (Float) -> Float) throws(ModelError) -> SourceTensor {
        try elementwise(name: name, type: t.type, shape: shape, data: t.data, count: t.elementCount, f)
    }

    static func elementwise(name: String, type: GGMLType, shape: [Int], data: UnsafeRawPointer, count: Int,
                            _ f: (Float) -> Float) throws(ModelError) -> SourceTensor {
        guard [GGMLType.f32, .f16, .bf16].contains(type) else {
            throw .invalidConfig("tensor \(name) is \(type); the converter's arithmetic on it needs F32, F16 or BF16")
        }
        let values = FloatBuffer(count: count, zeroed: false)  // [count] f32
        do { try dequantizeRow(type, data, values.pointer, count: count) } catch { throw .format(error) }
        for i in 0..<count { values.pointer[i] = f(values.pointer[i]) }
        let out = ConvertedBytes(count: count * type.typeSize)
        switch type {
        case .f16: HalfRows.toF16(values.pointer, count: count, into: out.pointer)
        case .bf16: HalfRows.toBF16(values.pointer, count: count, into: out.pointer)
        default: out.pointer.copyMemory(from: values.pointer, byteCount: count * 4)
        }
        return SourceTensor(name: name, shape: shape, type: type, parts: [out.buffer], owner: out)
    }
}
