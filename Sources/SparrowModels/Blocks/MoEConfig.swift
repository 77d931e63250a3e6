import SparrowFormats

/// Mixture-of-experts hyper-parameters, read from the GGUF keys llama.cpp uses
/// (`LLM_KV_EXPERT_*` in `src/llama-arch.cpp`) and written by `convert_hf_to_gguf.py` from the
/// Hugging Face config (`num_experts`, `num_experts_per_tok`, `moe_intermediate_size`,
/// `shared_expert_intermediate_size`, `norm_topk_prob`).
public struct MoEConfig: Sendable, Equatable {
    /// `{arch}.expert_count` (HF `num_experts`): routed experts per layer.
    public var expertCount: Int
    /// `{arch}.expert_used_count` (HF `num_experts_per_tok`): experts each token is sent to (top-k).
    public var expertUsedCount: Int
    /// `{arch}.expert_feed_forward_length` (HF `moe_intermediate_size`): hidden width of one
    /// routed expert. llama.cpp's default when absent: `feed_forward_length / expert_used_count`.
    public var expertFeedForwardLength: Int
    /// `{arch}.expert_shared_feed_forward_length` (HF `shared_expert_intermediate_size`): hidden
    /// width of the shared expert; 0 when the architecture has none. llama.cpp's default when
    /// absent (for architectures with a shared expert): `feed_forward_length`.
    public var sharedFeedForwardLength: Int
    /// Whether the top-k router probabilities are renormalised to sum to 1 (HF `norm_topk_prob`).
    /// `{arch}.expert_weights_norm` when the file has it, otherwise the architecture's default
    /// (llama.cpp hard-codes false for qwen2moe and true for qwen3moe, matching the released
    /// checkpoints; Qwen's converter writes no key).
    public var normalizeTopK: Bool
    /// `{arch}.expert_weights_scale`: factor applied to the routing weights; 1 when absent or 0
    /// (llama.cpp skips the scale for 0 and 1).
    public var weightsScale: Float

    /// Reads the expert keys of `arch`.
    /// - sharedExpert: whether the architecture has a shared expert (sets the width default).
    /// - normalizeTopKDefault: the architecture's `norm_topk_prob` when the file has no key.
    public init(gguf: GGUFFile, architecture arch: String, feedForwardLength: Int,
                sharedExpert: Bool, normalizeTopKDefault: Bool) throws(ModelError) {
        func int(_ key: String) -> Int? { gguf.metadata["\(arch).\(key)"]?.intValue }
        guard let count = int("expert_count") else {
            throw .format(.missingKey("\(arch).expert_count", expected: "an integer"))
        }
        guard let used = int("expert_used_count") else {
            throw .format(.missingKey("\(arch).expert_used_count", expected: "an integer"))
        }
        expertCount = count
        expertUsedCount = used
        expertFeedForwardLength = int("expert_feed_forward_length") ?? (used > 0 ? feedForwardLength / used : 0)
        sharedFeedForwardLength = sharedExpert ? (int("expert_shared_feed_forward_length") ?? feedForwardLength) : 0
        normalizeTopK = gguf.metadata["\(arch).expert_weights_norm"]?.boolValue ?? normalizeTopKDefault
        let scale = Float(gguf.metadata["\(arch).expert_weights_scale"]?.doubleValue ?? 0)
        weightsScale = scale == 0 ? 1 : scale
        try validate(architecture: arch)
    }

    /// Checks the values fit together; errors name the keys and values.
    public func validate(architecture arch: String = "") throws(ModelError) {
        guard expertCount > 0 else {
            throw .invalidConfig("\(arch).expert_count is \(expertCount); a sparse model needs at least one expert")
        }
        guard expertUsedCount > 0, expertUsedCount <= expertCount else {
            throw .invalidConfig("\(arch).expert_used_count \(expertUsedCount) must be in 1...expert_count (\(expertCount))")
        }
        guard expertFeedForwardLength > 0 else {
            throw .invalidConfig("\(arch).expert_feed_forward_length \(expertFeedForwardLength) must be positive")
        }
        guard sharedFeedForwardLength >= 0 else {
            throw .invalidConfig("\(arch).expert_shared_feed_forward_length \(sharedFeedForwardLength) must not be negative")
        }
        guard weightsScale.isFinite, weightsScale > 0 else {
            throw .invalidConfig("\(arch).expert_weights_scale \(weightsScale) must be a positive number")
        }
    }
}
