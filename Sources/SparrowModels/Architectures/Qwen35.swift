import SparrowFormats
import SparrowKernels

/// `qwen35` GGUF files (dense Qwen3.5 / Qwen3.6; HF `Qwen3_5ForCausalLM`, and the text part of
/// `Qwen3_5ForConditionalGeneration`): Gated DeltaNet linear-attention layers and gated
/// full-attention layers (`attention.recurrent_layers`), each followed by a SwiGLU MLP.
///
/// Attention is qwen3next's (output gate, q/k RMSNorm) with interleaved M-RoPE
/// (`rope.dimension_sections`); for text every token's temporal, height and width positions
/// are equal, and interleaved M-RoPE then rotates exactly as NeoX RoPE on the first
/// `rope.dimension_count` dims, which is what runs here (Sparrow feeds text only). Linear
/// attention reads value heads in llama.cpp's tiled order (value head h reads key head h % nK),
/// into which its converter reorders Hugging Face's grouped heads; β and α are separate
/// projections (`ssm_beta`, `ssm_alpha`). llama.cpp: `src/models/qwen35.cpp`.
public enum Qwen35 {
    public static func load(_ gguf: GGUFFile, options: LoadOptions = LoadOptions()) throws(ModelError) -> any LanguageModel {
        let arch = "qwen35"
        let config = try HybridTransformer.trunkConfig(
            TransformerConfig(gguf: gguf, architecture: arch, ropeOrdering: .neox), gguf: gguf)
        let deltaNet = try DeltaNetConfig(gguf: gguf, architecture: arch, blockCount: config.blockCount, grouping: .tiled)
        return try HybridTransformer.load(gguf, config: config, deltaNet: deltaNet, moe: nil, options: options)
    }
}
