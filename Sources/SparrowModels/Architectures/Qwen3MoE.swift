import SparrowFormats
import SparrowKernels

/// `qwen3moe` GGUF files (Qwen3-30B-A3B, Qwen3-235B-A22B; HF `Qwen3MoeForCausalLM`): qwen3's
/// attention (no biases, per-head q/k RMSNorm before NeoX RoPE, head dim from
/// `qwen3moe.attention.key_length`) and in every layer a mixture of experts with softmax top-k
/// routing renormalised to sum to 1 (`norm_topk_prob` true unless the file says
/// `qwen3moe.expert_weights_norm`), no shared expert. llama.cpp: `src/models/qwen3moe.cpp`.
public enum Qwen3MoE {
    public static func load(_ gguf: GGUFFile, options: LoadOptions = LoadOptions()) throws(ModelError) -> any LanguageModel {
        let config = try TransformerConfig(gguf: gguf, architecture: "qwen3moe", ropeOrdering: .neox)
        let moe = try MoEConfig(gguf: gguf, architecture: "qwen3moe", feedForwardLength: config.feedForwardLength,
                                sharedExpert: false, normalizeTopKDefault: true)
        return try MoETransformer.load(gguf, config: config, moe: moe, options: options) { w, i, rope throws(ModelError) in
            try DenseTransformer.attention(w, layer: i, config: config, rope: rope, biases: false, qkNorm: true)
        }
    }
}
