import SparrowFormats
import SparrowKernels

/// `qwen35moe` GGUF files (Qwen3.5-35B-A3B, Qwen3.6-35B-A3B; HF `Qwen3_5MoeForCausalLM`, and the
/// text part of `Qwen3_5MoeForConditionalGeneration`): qwen35's layers (Gated DeltaNet with
/// tiled value heads, gated attention with M-RoPE reduced to NeoX for text) with, in every
/// layer, a mixture of experts (softmax top-k, always renormalised: Hugging Face's router
/// divides by the top-k sum unconditionally and llama.cpp hard-codes it) plus a sigmoid-gated
/// shared expert. The file has no dense `feed_forward_length`. llama.cpp: `src/models/qwen35moe.cpp`.
public enum Qwen35MoE {
    public static func load(_ gguf: GGUFFile, options: LoadOptions = LoadOptions()) throws(ModelError) -> any LanguageModel {
        let arch = "qwen35moe"
        let config = try HybridTransformer.trunkConfig(
            TransformerConfig(gguf: gguf, architecture: arch, ropeOrdering: .neox, feedForwardDefault: 0), gguf: gguf)
        let deltaNet = try DeltaNetConfig(gguf: gguf, architecture: arch, blockCount: config.blockCount, grouping: .tiled)
        let moe = try MoEConfig(gguf: gguf, architecture: arch, feedForwardLength: config.feedForwardLength,
                                sharedExpert: true, normalizeTopKDefault: true)
        return try HybridTransformer.load(gguf, config: config, deltaNet: deltaNet, moe: moe, options: options)
    }
}
