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

/// How a model is built, beyond what its file says.
public struct LoadOptions: Sendable {
    /// Pages the routed experts into a cache bounded by a memory budget (`ExpertStore`); nil:
    /// experts are read in place from the mapped file. Only sparse architectures use it;
    /// `ModelRegistry.load` refuses a store the model did not register all experts with.
    public var experts: ExpertStore?

    public init(experts: ExpertStore? = nil) { self.experts = experts }
}

/// Maps `general.architecture` to a loader. Adding an architecture is one line here plus its
/// file in Architectures/ (see docs/adding-a-model.md).
public enum ModelRegistry {
    public typealias Loader = @Sendable (GGUFFile, LoadOptions) throws(ModelError) -> any LanguageModel

    public static let loaders: [String: Loader] = [
        "llama": { gguf, _ throws(ModelError) in try Llama.load(gguf) },
        "qwen2": { gguf, _ throws(ModelError) in try Qwen2.load(gguf) },
        "qwen3": { gguf, _ throws(ModelError) in try Qwen3.load(gguf) },
        "qwen2moe": { gguf, options throws(ModelError) in try Qwen2MoE.load(gguf, options: options) },
        "qwen3moe": { gguf, options throws(ModelError) in try Qwen3MoE.load(gguf, options: options) },
        "qwen3next": { gguf, options throws(ModelError) in try Qwen3Next.load(gguf, options: options) },
        "qwen35": { gguf, options throws(ModelError) in try Qwen35.load(gguf, options: options) },
        "qwen35moe": { gguf, options throws(ModelError) in try Qwen35MoE.load(gguf, options: options) },
    ]

    /// Loads the model a GGUF file describes.
    public static func load(_ gguf: GGUFFile, options: LoadOptions = LoadOptions()) throws(ModelError) -> any LanguageModel {
        guard let arch = gguf.architecture else { throw .format(.missingKey("general.architecture", expected: "a string")) }
        guard let loader = loaders[arch] else { throw .unsupportedArchitecture(arch, supported: loaders.keys.sorted()) }
        let model = try loader(gguf, options)
        if let store = options.experts, store.registeredExperts != store.plan.expertCount {
            throw .invalidConfig("\(arch) bound \(store.registeredExperts) of the file's \(store.plan.expertCount) routed experts"
                + " for paging; this architecture cannot run under a memory budget")
        }
        return model
    }
}
