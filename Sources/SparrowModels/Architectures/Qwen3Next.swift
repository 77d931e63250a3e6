import SparrowFormats
import SparrowKernels

/// `qwen3next` GGUF files (Qwen3-Next-80B-A3B; HF `Qwen3NextForCausalLM`): a hybrid of Gated
/// DeltaNet linear-attention layers and gated full-attention layers (`attention.recurrent_layers`,
/// by default three linear layers then one attention layer), every layer with a mixture of
/// experts (softmax top-k, renormalised unless the file says `qwen3next.expert_weights_norm`
/// false, as llama.cpp hard-codes it) plus a sigmoid-gated shared expert.
///
/// Attention: q projection carries a per-head output gate, per-head q/k RMSNorm, NeoX RoPE on
/// the first `rope.dimension_count` dims (a quarter of the head). Linear attention: the value
/// heads keep Hugging Face's grouped order (value head h reads key head h / (nV/nK)), β and α
/// come from the fused `ssm_ba`. llama.cpp: `src/models/qwen3next.cpp`.
public enum Qwen3Next {
    public static func load(_ gguf: GGUFFile, options: LoadOptions = LoadOptions()) throws(ModelError) -> any LanguageModel {
        let arch = "qwen3next"
        let config = try HybridTransformer.trunkConfig(
            TransformerConfig(gguf: gguf, architecture: arch, ropeOrdering: .neox), gguf: gguf)
        let deltaNet = try DeltaNetConfig(gguf: gguf, architecture: arch, blockCount: config.blockCount, grouping: .grouped)
        let moe = try MoEConfig(gguf: gguf, architecture: arch, feedForwardLength: config.feedForwardLength,
                                sharedExpert: true, normalizeTopKDefault: true)
        return try HybridTransformer.load(gguf, config: config, deltaNet: deltaNet, moe: moe, options: options)
    }
}
