import SparrowFormats

/// A tensor to be written to a GGUF file: its llama.cpp name and ggml shape, and the bytes it
/// is made of, in place in a mapped file.
public struct SourceTensor: @unchecked Sendable {
    /// GGUF name, e.g. `blk.0.ffn_gate_exps.weight`.
    public var name: String
    /// ggml order: `shape[0]` is the row length.
    public var shape: [Int]
    /// Element type of the source bytes.
    public var type: GGMLType
    /// Pieces whose concatenation is the tensor, each a whole number of rows: one for an
    /// ordinary tensor, one per expert for a stacked-experts tensor.
    public var parts: [UnsafeRawBufferPointer]
    /// Keeps the mapping(s) the parts point into alive.
    public var owner: AnyObject

    public var elementCount: Int { shape.reduce(1, *) }
}

/// A Hugging Face checkpoint directory (`config.json` + safetensors) seen as the GGUF file
/// llama.cpp's `convert_hf_to_gguf.py` writes for it: the metadata keys, and every tensor under
/// its GGUF name (per-expert tensors stacked into `ffn_*_exps`), without copying weights.
///
/// Supported: `Qwen2ForCausalLM`, `Qwen3ForCausalLM`, `Qwen2MoeForCausalLM`,
/// `Qwen3MoeForCausalLM` (all NeoX RoPE, so no q/k row permutation is needed, unlike llama),
/// and the hybrid `Qwen3NextForCausalLM`, `Qwen3_5ForCausalLM`, `Qwen3_5MoeForCausalLM` and
/// the text part of `Qwen3_5ForConditionalGeneration` / `Qwen3_5MoeForConditionalGeneration`
/// (the converter's transforms: zero-centred norms + 1, A = −exp(A_log), value heads reordered
/// to llama.cpp's tiled order for qwen3.5, qwen3next's in_proj_qkvz split; see
/// HybridCheckpoint.swift). Vision towers and multi-token-prediction heads are left out.
/// The vocabulary is not converted: the resulting file runs from token ids (tests,
/// `forward`), and needs a tokenizer from elsewhere for text.
public final class HuggingFaceCheckpoint: @unchecked Sendable {
    /// HF `architectures[0]` → GGUF `general.architecture`.
    public static let architectures: [String: String] = [
        "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3",
        "Qwen2MoeForCausalLM": "qwen2moe", "Qwen3MoeForCausalLM": "qwen3moe",
        "Qwen3NextForCausalLM": "qwen3next",
        "Qwen3_5ForCausalLM": "qwen35", "Qwen3_5ForConditionalGeneration": "qwen35",
        "Qwen3_5MoeForCausalLM": "qwen35moe", "Qwen3_5MoeForConditionalGeneration": "qwen35moe",
    ]

    public let architecture: String
    /// GGUF metadata, in writing order.
    public let metadata: [(String, GGUFValue)]
    /// Tensors in writing order: global ones, then layer by layer.
    public let tensors: [SourceTensor]
    public let checkpoint: SafetensorsCheckpoint

    /// - directory: holds `config.json` and `model.safetensors` or a sharded index.
    public init(directory: String) throws(ModelError) {
        let configFile: MappedFile
        var config: ParsedJSON
        do {
            configFile = try MappedFile(path: directory + "/config.json")
            config = try ParsedJSON.parse(configFile.bytes)
            checkpoint = try SafetensorsCheckpoint(path: directory)
        } catch {
            throw .format(error)
        }
        // Vision-language checkpoints nest the text model's keys in text_config; the converter
        // reads them merged over the top level (TextModel.__init__). ParsedJSON's subscript
        // takes the first occurrence, so the text keys go first.
        if case let .object(outer) = config, case let .object(inner)? = config["text_config"] {
            config = .object(inner + outer)
        }
        guard let hfArch = config["architectures"]?.arrayValue?.first?.stringValue else {
            throw .format(.missingKey("architectures", expected: "a list naming the model class in config.json"))
        }
        guard let arch = Self.architectures[hfArch] else {
            throw .unsupportedArchitecture(hfArch, supported: Self.architectures.keys.sorted())
        }
        architecture = arch
        metadata = try Self.metadata(config, arch: arch)
        tensors = try Self.tensors(checkpoint, config: config, arch: arch)
    }

    /// The keys `convert_hf_to_gguf.py` writes for these architectures (TextModel and
    /// Qwen2MoeModel `set_gguf_parameters`). Unsupported options are errors, never dropped.
    static func metadata(_ c: ParsedJSON, arch: String) throws(ModelError) -> [(String, GGUFValue)] {
        func int(_ key: String) throws(ModelError) -> Int {
            guard let v = c[key]?.intValue else { throw .format(.missingKey(key, expected: "an integer in config.json")) }
            return v
        }
        func u32(_ v: Int) -> GGUFValue { .uint32(UInt32(clamping: v)) }
        var m: [(String, GGUFValue)] = [("general.architecture", .string(arch))]
        m.append(("\(arch).context_length", u32(try int("max_position_embeddings"))))
        m.append(("\(arch).embedding_length", u32(try int("hidden_size"))))
        m.append(("\(arch).block_count", u32(try int("num_hidden_layers"))))
        if let ff = c["intermediate_size"]?.intValue {
            m.append(("\(arch).feed_forward_length", u32(ff)))
        } else if arch != "qwen35moe" {  // Qwen3.5-MoE has no dense layers and no intermediate_size
            throw .format(.missingKey("intermediate_size", expected: "an integer in config.json"))
        }
        let heads = try int("num_attention_heads")
        m.append(("\(arch).attention.head_count", u32(heads)))
        m.append(("\(arch).attention.head_count_kv", u32(c["num_key_value_heads"]?.intValue ?? heads)))
        if let headDim = c["head_dim"]?.intValue {
            m.append(("\(arch).attention.key_length", u32(headDim)))
            m.append(("\(arch).attention.value_length", u32(headDim)))
        }
        // transformers ≥ 5 writes rope_parameters {rope_theta, rope_type}; older configs rope_theta.
        let rope = c["rope_parameters"]
        if let type = rope?["rope_type"]?.stringValue, type != "default" {
            throw .invalidConfig("rope_type '\(type)' is not supported yet (only 'default')")
        }
        if let scaling = c["rope_scaling"], case .object = scaling {
            throw .invalidConfig("rope_scaling \(scaling.text.isEmpty ? "(set)" : scaling.text) is not supported yet")
        }
        let theta = rope?["rope_theta"]?.doubleValue ?? c["rope_theta"]?.doubleValue ?? 10000
        m.append(("\(arch).rope.freq_base", .float32(Float(theta))))
        m.append(("\(arch).attention.layer_norm_rms_epsilon", .float32(Float(c["rms_norm_eps"]?.doubleValue ?? 1e-6))))
        if let act = c["hidden_act"]?.stringValue, act != "silu" {
            throw .invalidConfig("hidden_act '\(act)' is not supported (these architectures use silu)")
        }
        if c["use_sliding_window"]?.boolValue == true {
            throw .invalidConfig("use_sliding_window true is not supported")
        }
        if arch.hasSuffix("moe") || arch == "qwen3next" {
            guard let experts = c["num_experts"]?.intValue ?? c["num_local_experts"]?.intValue else {
                throw .format(.missingKey("num_experts", expected: "an integer in config.json"))
            }
            if let dense = c["mlp_only_layers"]?.arrayValue, !dense.isEmpty {
                throw .invalidConfig("mlp_only_layers \(dense.map(\.text)) (dense layers in a MoE model) is not supported, as in llama.cpp")
            }
            if let step = c["decoder_sparse_step"]?.intValue, step != 1 {
                throw .invalidConfig("decoder_sparse_step \(step) is not supported (every layer must be sparse), as in llama.cpp")
            }
            m.append(("\(arch).expert_count", u32(experts)))
            m.append(("\(arch).expert_used_count", u32(try int("num_experts_per_tok"))))
            m.append(("\(arch).expert_feed_forward_length", u32(try int("moe_intermediate_size"))))
            if arch == "qwen2moe" {
                m.append(("\(arch).expert_shared_feed_forward_length", u32(try int("shared_expert_intermediate_size"))))
            }
            if arch == "qwen3next" || arch == "qwen35moe" {
                _ = try int("shared_expert_intermediate_size")  // required; written by hybridMetadata
            }
            if let norm = c["norm_topk_prob"]?.boolValue {
                m.append(("\(arch).expert_weights_norm", .bool(norm)))
            }
        }
        if hybridArchitectures.contains(arch) { m += try hybridMetadata(c, arch: arch) }
        return m
    }

    /// Maps every checkpoint tensor to its GGUF name; a tensor that maps to nothing is an error.
    static func tensors(_ ckpt: SafetensorsCheckpoint, config c: ParsedJSON, arch: String) throws(ModelError) -> [SourceTensor] {
        let tied = c["tie_word_embeddings"]?.boolValue ?? false
        var single: [String: SafetensorsTensor] = [:]           // GGUF name → tensor
        var experts: [String: [Int: SafetensorsTensor]] = [:]   // GGUF name → expert index → tensor
        let projections = ["q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
                           "gate_proj": "gate", "up_proj": "up", "down_proj": "down"]
        let hybrid = hybridArchitectures.contains(arch)
        let linear = hybrid ? try LinearAttentionShape(c) : nil
        var converted: [SourceTensor] = []                      // tensors the converter transforms
        for (checkpointName, t) in ckpt.tensorsByName {
            var name = checkpointName
            if hybrid {
                guard let n = hybridName(checkpointName) else { continue }
                name = n
            }
            let parts = name.split(separator: ".").map(String.init)
            var target: String?
            if hybrid, let linear, parts.count >= 4, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]),
               let produced = try hybridTensors(rest: Array(parts[3...]), b: "blk.\(layer).", tensor: t, arch: arch,
                                                shape: linear, owner: ckpt) {
                converted += produced
                continue
            }
            if hybrid, parts == ["model", "norm", "weight"] {
                converted.append(try hybridOutputNorm(t))
                continue
            }
            switch parts {
            case ["model", "embed_tokens", "weight"]: target = "token_embd.weight"
            case ["model", "norm", "weight"]: target = "output_norm.weight"
            case ["lm_head", "weight"]:
                if tied { continue }  // the same values as the embedding; llama.cpp's converter drops it too
                target = "output.weight"
            default:
                guard parts.count >= 5, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]) else { break }
                let b = "blk.\(layer)."
                let rest = Array(parts[3...])
                switch rest {
                case ["input_layernorm", "weight"]: target = b + "attn_norm.weight"
                case ["post_attention_layernorm", "weight"]: target = b + "ffn_norm.weight"
                case ["self_attn", "q_norm", "weight"]: target = b + "attn_q_norm.weight"
                case ["self_attn", "k_norm", "weight"]: target = b + "attn_k_norm.weight"
                case ["mlp", "gate", "weight"]: target = b + "ffn_gate_inp.weight"
                case ["mlp", "shared_expert_gate", "weight"]: target = b + "ffn_gate_inp_shexp.weight"
                default:
                    if rest.count == 3, rest[0] == "self_attn", let p = projections[rest[1]], p.hasPrefix("attn") {
                        target = b + p + "." + rest[2]
                    } else if rest.count == 3, rest[0] == "mlp", rest[2] == "weight", let p = projections[rest[1]], !p.hasPrefix("attn") {
                        target = b + "ffn_\(p).weight"
                    } else if rest.count == 4, rest[0] == "mlp", rest[1] == "shared_expert", rest[3] == "weight",
                              let p = projections[rest[2]], !p.hasPrefix("attn") {
                        target = b + "ffn_\(p)_shexp.weight"
                    } else if rest.count == 5, rest[0] == "mlp", rest[1] == "experts", let e = Int(rest[2]), rest[4] == "weight",
                              let p = projections[rest[3]], !p.hasPrefix("attn") {
                        experts[b + "ffn_\(p)_exps.weight", default: [:]][e] = t
                        continue
                    }
                }
            }
            guard let target else {
                throw .invalidConfig("checkpoint tensor '\(checkpointName)' has no GGUF equivalent for \(arch)")
            }
            single[target] = t
        }
        var out: [SourceTensor] = converted
        for (name, t) in single {
            // HF's shared-expert gate is [1, d]; llama.cpp binds ffn_gate_inp_shexp as [d].
            let shape = name.hasSuffix("ffn_gate_inp_shexp.weight") ? [t.elementCount] : t.ggmlShape
            out.append(SourceTensor(name: name, shape: shape, type: t.type,
                                    parts: [UnsafeRawBufferPointer(start: t.data, count: t.byteCount)], owner: ckpt))
        }
        for (name, byIndex) in experts {
            let count = byIndex.count
            var parts: [UnsafeRawBufferPointer] = []
            guard let first = byIndex[0] else { throw .missingTensor("\(name) expert 0") }
            for e in 0..<count {
                guard let t = byIndex[e] else { throw .missingTensor("\(name) expert \(e) (of \(count))") }
                guard t.shape == first.shape, t.type == first.type else {
                    throw .shapeMismatch(tensor: "\(name) expert \(e)", expected: first.ggmlShape, found: t.ggmlShape)
                }
                parts.append(UnsafeRawBufferPointer(start: t.data, count: t.byteCount))
            }
            out.append(SourceTensor(name: name, shape: first.ggmlShape + [count], type: first.type, parts: parts, owner: ckpt))
        }
        // Deterministic order: global tensors, then by layer and name.
        func key(_ n: String) -> (Int, String) {
            let p = n.split(separator: ".")
            return p.first == "blk" && p.count > 1 ? (Int(p[1]) ?? 0, n) : (-1, n)
        }
        return out.sorted { key($0.name) < key($1.name) }
    }
}
