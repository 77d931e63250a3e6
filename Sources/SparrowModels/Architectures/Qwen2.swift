import SparrowFormats
import SparrowKernels

/// `qwen2` GGUF files (Qwen2, Qwen2.5, Qwen2.5-Coder): q/k/v projections carry biases,
/// RoPE in NeoX (half-split) order, separate or tied output embedding.
public enum Qwen2 {
    public static func load(_ gguf: GGUFFile) throws(ModelError) -> any LanguageModel {
        let config = try TransformerConfig(gguf: gguf, architecture: "qwen2", ropeOrdering: .neox)
        return try DenseTransformer.load(gguf, config: config) { w, i, rope throws(ModelError) in
            try DenseTransformer.attention(w, layer: i, config: config, rope: rope, biases: true, qkNorm: false)
        }
    }
}
