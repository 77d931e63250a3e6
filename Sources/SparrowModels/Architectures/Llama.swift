import SparrowFormats
import SparrowKernels

/// `llama` GGUF files (Llama 2/3, SmolLM2, ...). llama.cpp's converter permutes Q/K rows so
/// that RoPE rotates adjacent pairs (`LLAMA_ROPE_TYPE_NORM`); no biases, no q/k norm.
/// Output embedding tied to `token_embd` when `output.weight` is absent (SmolLM2).
public enum Llama {
    public static func load(_ gguf: GGUFFile) throws(ModelError) -> any LanguageModel {
        let config = try TransformerConfig(gguf: gguf, architecture: "llama", ropeOrdering: .normal)
        return try DenseTransformer.load(gguf, config: config) { w, i, rope throws(ModelError) in
            try DenseTransformer.attention(w, layer: i, config: config, rope: rope, biases: true, qkNorm: false)
        }
    }
}
