import SparrowFormats
import SparrowKernels

/// `qwen3` GGUF files (dense Qwen3): no q/k/v biases; per-head RMSNorm on q and k
/// (`attn_q_norm`, `attn_k_norm`, [headDim]) before RoPE; NeoX RoPE; head dim from
/// `qwen3.attention.key_length` (128), which need not equal embedding / heads.
public enum Qwen3 {
    public static func load(_ gguf: GGUFFile) throws(ModelError) -> any LanguageModel {
        let config = try TransformerConfig(gguf: gguf, architecture: "qwen3", ropeOrdering: .neox)
        return try DenseTransformer.load(gguf, config: config) { w, i, rope throws(ModelError) in
            try DenseTransformer.attention(w, layer: i, config: config, rope: rope, biases: false, qkNorm: true)
        }
    }
}
