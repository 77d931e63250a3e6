import SparrowFormats
import SparrowKernels

/// A causal language model: tokens in, next-token logits out.
///
/// The engine calls `makeCache` once per sequence, then `forward` with the prompt (prefill) and
/// afterwards once per generated token (decode). Implementations are immutable after loading and
/// safe to share between sequences; all per-sequence state lives in the cache.
public protocol LanguageModel: AnyObject, Sendable {
    /// Sizes and names callers need (vocabulary, context).
    var config: TransformerConfig { get }

    /// A cache for one sequence of at most `capacity` tokens, storing keys/values as `type`.
    func makeCache(capacity: Int, type: KVCacheType) -> KVCache

    /// Runs `tokens` at positions `cache.count ..< cache.count + tokens.count`, appends their
    /// keys/values to `cache`, and returns logits.
    /// - Returns: [vocab] f32 for the last token, or [tokens.count, vocab] when `allLogits`.
    func forward(_ tokens: [Int32], cache: KVCache, allLogits: Bool) throws(ModelError) -> [Float]

    /// One step of continuous batching: runs several sequences, each with its own tokens and
    /// cache, and returns the last token's logits of each, in order.
    ///
    /// The server's scheduler calls this once per step with every active sequence (a prefill
    /// chunk or the one token a decoding sequence sampled last). The result must equal calling
    /// `forward(tokens, cache: cache, allLogits: false)` on each sequence in turn; that is what
    /// the default does. A model that overrides it runs all sequences' tokens through each
    /// weight matrix together (weights read once per step instead of once per sequence) and
    /// attention per sequence on its own cache. Every cache must be distinct.
    /// - Returns: one [vocab] f32 array per sequence. On a throw, caches of sequences before the
    ///   failing one may have advanced.
    func forwardBatch(_ sequences: [BatchSequence]) throws(ModelError) -> [[Float]]
}

/// One sequence of a batched forward step.
public struct BatchSequence: Sendable {
    /// Tokens to run at positions `cache.count ..< cache.count + tokens.count`; not empty.
    public var tokens: [Int32]
    public var cache: KVCache

    public init(tokens: [Int32], cache: KVCache) {
        self.tokens = tokens
        self.cache = cache
    }
}

extension LanguageModel {
    /// A cache with llama.cpp's default f16 keys/values.
    public func makeCache(capacity: Int) -> KVCache { makeCache(capacity: capacity, type: .f16) }

    /// Runs the sequences one after another through `forward` (correct for every model; models
    /// whose layers can batch override it for speed).
    public func forwardBatch(_ sequences: [BatchSequence]) throws(ModelError) -> [[Float]] {
        var out: [[Float]] = []
        out.reserveCapacity(sequences.count)
        for s in sequences { out.append(try forward(s.tokens, cache: s.cache, allLogits: false)) }
        return out
    }
}

/// Maps `general.architecture` to a loader. Adding an architecture is one line here plus its
/// file in Architectures/ (see docs/adding-a-model.md).
public enum ModelRegistry {
    public typealias Loader = @Sendable (GGUFFile) throws(ModelError) -> any LanguageModel

    public static let loaders: [String: Loader] = [
        "llama": { gguf throws(ModelError) in try Llama.load(gguf) },
        "qwen2": { gguf throws(ModelError) in try Qwen2.load(gguf) },
        "qwen3": { gguf throws(ModelError) in try Qwen3.load(gguf) },
        "qwen2moe": { gguf throws(ModelError) in try Qwen2MoE.load(gguf) },
        "qwen3moe": { gguf throws(ModelError) in try Qwen3MoE.load(gguf) },
        "qwen3next": { gguf throws(ModelError) in try Qwen3Next.load(gguf) },
        "qwen35": { gguf throws(ModelError) in try Qwen35.load(gguf) },
        "qwen35moe": { gguf throws(ModelError) in try Qwen35MoE.load(gguf) },
    ]

    /// Loads the model a GGUF file describes.
    public static func load(_ gguf: GGUFFile) throws(ModelError) -> any LanguageModel {
        guard let arch = gguf.architecture else { throw .format(.missingKey("general.architecture", expected: "a string")) }
        guard let loader = loaders[arch] else { throw .unsupportedArchitecture(arch, supported: loaders.keys.sorted()) }
        return try loader(gguf)
    }
}
