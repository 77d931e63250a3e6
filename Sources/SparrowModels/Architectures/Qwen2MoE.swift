import SparrowFormats
import SparrowKernels

/// `qwen2moe` GGUF files (Qwen1.5-MoE, Qwen2-57B-A14B; HF `Qwen2MoeForCausalLM`): qwen2's
/// attention (q/k/v biases, NeoX RoPE) and in every layer a mixture of experts with softmax
/// top-k routing *without* renormalisation (`norm_topk_prob` false unless the file says
/// `qwen2moe.expert_weights_norm`), plus a shared expert scaled by `sigmoid(ffn_gate_inp_shexp · x)`.
/// llama.cpp: `src/models/qwen2moe.cpp`.
public enum Qwen2MoE {
    public static func load(_ gguf: GGUFFile, options: LoadOptions = LoadOptions()) throws(ModelError) -> any LanguageModel {
        let config = try TransformerConfig(gguf: gguf, architecture: "qwen2moe", ropeOrdering: .neox)
        let moe = try MoEConfig(gguf: gguf, architecture: "qwen2moe", feedForwardLength: config.feedForwardLength,
                                sharedExpert: true, normalizeTopKDefault: false)
        return try MoETransformer.load(gguf, config: config, moe: moe, options: options) { w, i, rope throws(ModelError) in
            try DenseTransformer.attention(w, layer: i, config: config, rope: rope, biases: true, qkNorm: false)
        }
    }
}
