import SparrowFormats
import SparrowKernels

/// Hyper-parameters of a dense decoder-only transformer, read from GGUF metadata keys
/// `{arch}.*` (the names llama.cpp's `llama-arch.cpp` uses).
public struct TransformerConfig: Sendable, Equatable {
    /// `general.architecture`, e.g. "qwen2".
    public var architecture: String
    /// `{arch}.embedding_length`: width of the residual stream.
    public var embeddingLength: Int
    /// `{arch}.block_count`: number of decoder layers.
    public var blockCount: Int
    /// `{arch}.attention.head_count`: query heads.
    public var headCount: Int
    /// `{arch}.attention.head_count_kv`: key/value heads (grouped-query attention); default = headCount.
    public var headCountKV: Int
    /// `{arch}.attention.key_length`: per-head dimension; default embeddingLength / headCount.
    public var headDim: Int
    /// `{arch}.feed_forward_length`: MLP hidden width; 0 for a sparse model whose file has no
    /// dense width (qwen35moe).
    public var feedForwardLength: Int
    /// `{arch}.context_length`: context the model was trained for (tokens).
    public var contextLength: Int
    /// `{arch}.attention.layer_norm_rms_epsilon`.
    public var rmsEpsilon: Float
    /// `{arch}.rope.freq_base` (default 10000).
    public var ropeBase: Float
    /// `{arch}.rope.dimension_count` (default headDim).
    public var ropeDimensions: Int
    /// Pair ordering of RoPE; fixed per architecture (see each architecture file).
    public var ropeOrdering: RoPE.Ordering
    /// Vocabulary size, from the embedding tensor's shape.
    public var vocabularySize: Int

    /// Reads the common keys for `arch` from a GGUF file.
    /// - feedForwardDefault: the width when the file has no `feed_forward_length` (nil: required).
    public init(gguf: GGUFFile, architecture arch: String, ropeOrdering: RoPE.Ordering,
                feedForwardDefault: Int? = nil) throws(ModelError) {
        func int(_ key: String, default d: Int? = nil) throws(ModelError) -> Int {
            if let v = gguf.metadata["\(arch).\(key)"]?.intValue { return v }
            if let d { return d }
            throw .format(.missingKey("\(arch).\(key)", expected: "an integer"))
        }
        func float(_ key: String, default d: Float? = nil) throws(ModelError) -> Float {
            if let v = gguf.metadata["\(arch).\(key)"]?.doubleValue { return Float(v) }
            if let d { return d }
            throw .format(.missingKey("\(arch).\(key)", expected: "a number"))
        }
        architecture = arch
        embeddingLength = try int("embedding_length")
        blockCount = try int("block_count")
        headCount = try int("attention.head_count")
        headCountKV = try int("attention.head_count_kv", default: headCount)
        guard headCount > 0 else { throw .invalidConfig("attention.head_count is 0") }
        headDim = try int("attention.key_length", default: embeddingLength / headCount)
        feedForwardLength = try int("feed_forward_length", default: feedForwardDefault)
        contextLength = try int("context_length", default: 2048)
        rmsEpsilon = try float("attention.layer_norm_rms_epsilon", default: 1e-6)
        ropeBase = try float("rope.freq_base", default: 10000)
        ropeDimensions = try int("rope.dimension_count", default: headDim)
        self.ropeOrdering = ropeOrdering
        guard let embd = gguf.tensorsByName["token_embd.weight"], embd.shape.count == 2 else {
            throw .missingTensor("token_embd.weight")
        }
        vocabularySize = embd.shape[1]
        try validate()
    }

    /// Checks the values fit together; errors name the values.
    public func validate() throws(ModelError) {
        guard embeddingLength > 0, blockCount > 0 else {
            throw .invalidConfig("embedding_length \(embeddingLength) and block_count \(blockCount) must be positive")
        }
        guard feedForwardLength >= 0 else {
            throw .invalidConfig("feed_forward_length \(feedForwardLength) must not be negative")
        }
        guard headCountKV > 0, headCount % headCountKV == 0 else {
            throw .invalidConfig("head_count \(headCount) must be a multiple of head_count_kv \(headCountKV)")
        }
        guard headDim > 0, ropeDimensions > 0, ropeDimensions <= headDim, ropeDimensions % 2 == 0 else {
            throw .invalidConfig("rope.dimension_count \(ropeDimensions) must be even and ≤ head dim \(headDim)")
        }
        guard contextLength > 0 else { throw .invalidConfig("context_length \(contextLength) must be positive") }
    }
}
