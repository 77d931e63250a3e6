import SparrowSampling

/// How the scheduler batches and queues. One struct for the area; `validate()` names the bad
/// value and the fix.
public struct SchedulerConfiguration: Sendable, Equatable {
    /// Sequences decoded together in one forward step (continuous batching width).
    /// Default 8. Bounds 1...256.
    public var maxSequences: Int = 8
    /// Sequence caches kept for prefix reuse, busy or idle (each holds up to the context length
    /// of keys/values; pages are only touched as they fill). Default 0 = `maxSequences`.
    /// Bounds 0 or maxSequences...1024.
    public var cacheSlots: Int = 0
    /// Requests that may wait for a free sequence before new ones are refused (HTTP 429).
    /// Default 64. Bounds 0...100_000.
    public var queueCapacity: Int = 64
    /// Prompt tokens one forward step may prefill across all sequences; long prompts are split
    /// into chunks of at most this many so decoding sequences keep producing tokens. Default 512.
    /// Bounds 1...65_536.
    public var prefillChunk: Int = 512
    /// A cached prefix held by another slot is copied into a free slot when it is at least this
    /// many tokens longer than the free slot's own match, and a new job waits for a running
    /// one still prefilling that many more shared tokens (copying a token's keys/values costs
    /// far less than computing it). Default 16. Bounds ≥ 1.
    public var minPrefixCopy: Int = 16
    /// Bytes of keys/values of prompt prefixes kept after their slots moved on (`PrefixCache`:
    /// 16-token blocks hashed by prefix, least recently used evicted). 0 = off. Default
    /// 256 MiB. Unused by models with a recurrent state. Bounds ≥ 0.
    public var prefixCacheBytes: Int = 256 << 20

    /// Bounds of `maxSequences`, `cacheSlots` (besides 0), `queueCapacity` and `prefillChunk`:
    /// the one source for `validate()` and for the configuration file's checks.
    public static let maxSequencesRange = 1...256
    public static let cacheSlotsLimit = 1024
    public static let queueCapacityRange = 0...100_000
    public static let prefillChunkRange = 1...65_536

    public init() {}

    /// Slots actually allocated.
    public var effectiveCacheSlots: Int { cacheSlots == 0 ? maxSequences : cacheSlots }

    public func validate() throws(EngineError) {
        guard Self.maxSequencesRange.contains(maxSequences) else {
            throw .invalidParameter("parallel sequences \(maxSequences) must be in \(Self.maxSequencesRange)")
        }
        guard cacheSlots == 0 || (maxSequences...Self.cacheSlotsLimit).contains(cacheSlots) else {
            throw .invalidParameter("cache slots \(cacheSlots) must be 0 (= parallel) or in \(maxSequences)...\(Self.cacheSlotsLimit) (at least the parallel sequences)")
        }
        guard Self.queueCapacityRange.contains(queueCapacity) else {
            throw .invalidParameter("queue capacity \(queueCapacity) must be in \(Self.queueCapacityRange)")
        }
        guard Self.prefillChunkRange.contains(prefillChunk) else {
            throw .invalidParameter("prefill chunk \(prefillChunk) must be in \(Self.prefillChunkRange) tokens")
        }
        guard minPrefixCopy >= 1 else { throw .invalidParameter("minimum prefix copy \(minPrefixCopy) must be ≥ 1") }
        guard prefixCacheBytes >= 0 else { throw .invalidParameter("prefix cache \(prefixCacheBytes) bytes must be ≥ 0") }
    }
}

/// One generation request as the scheduler takes it: a tokenized prompt and how to continue it.
public struct GenerationJob: Sendable {
    public var prompt: [Int32]
    public var parameters: GenerationParameters
    /// nil: no log-probabilities; k ≥ 0: the chosen token's log-probability and the k most
    /// likely alternatives at each step.
    public var topLogprobs: Int?
    /// Seconds after submission at which the request is abandoned with `.timedOut`; nil = none.
    public var timeout: Double?
    /// Makes the constraint each sequence of this job samples under (nil = unconstrained).
    public var constraint: (@Sendable () -> any TokenConstraint)?

    public init(prompt: [Int32], parameters: GenerationParameters, topLogprobs: Int? = nil, timeout: Double? = nil,
                constraint: (@Sendable () -> any TokenConstraint)? = nil) {
        self.prompt = prompt
        self.parameters = parameters
        self.topLogprobs = topLogprobs
        self.timeout = timeout
        self.constraint = constraint
    }
}

/// Log-probability of one token (natural log, from the model's raw logits, before bias,
/// penalties and truncation).
public struct TokenLogprob: Sendable, Equatable {
    public var token: Int32
    /// The token's bytes as text (invalid UTF-8 replaced) and the raw bytes.
    public var text: String
    public var bytes: [UInt8]
    public var logprob: Float
}

/// One generated token.
public struct GeneratedToken: Sendable {
    public var id: Int32
    /// Text released with this token (empty while a multi-byte character or a possible stop
    /// string is still incomplete).
    public var text: String
    /// Set when the job asked for log-probabilities: the chosen token, then the alternatives.
    public var logprob: TokenLogprob?
    public var topLogprobs: [TokenLogprob]
}

/// Counts reported when a job ends.
public struct GenerationSummary: Sendable {
    public var finishReason: FinishReason
    public var promptTokens: Int
    /// Prompt tokens whose keys/values came from the prefix cache.
    public var cachedPromptTokens: Int
    public var completionTokens: Int
    /// Seconds from submission to the first generated token (nil if none).
    public var timeToFirstToken: Double?
    /// Seconds from submission to the end.
    public var totalSeconds: Double
}

/// What a job's event stream yields, in order: tokens, then exactly one `finished` or `failed`.
public enum GenerationEvent: Sendable {
    case token(GeneratedToken)
    /// Trailing text released at the end (held back for a possible stop string or incomplete UTF-8).
    case text(String)
    case finished(GenerationSummary)
    case failed(EngineError)
}

/// A snapshot of the scheduler for metrics.
public struct SchedulerStats: Sendable {
    public var queued: Int
    public var active: Int
    public var promptTokens: Int
    public var cachedPromptTokens: Int
    public var completionTokens: Int
    public var steps: Int
    /// Sequence-steps summed over forward steps (average batch = batchedSequences / steps).
    public var batchedSequences: Int
    /// Bytes and blocks the prefix cache holds, and prompt tokens it restored (part of
    /// `cachedPromptTokens`).
    public var prefixCacheBytes = 0
    public var prefixCacheBlocks = 0
    public var prefixCacheRestoredTokens = 0
}
