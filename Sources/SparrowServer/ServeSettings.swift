import Foundation
import SparrowEngine
import SparrowKernels

/// Every setting of `sparrow serve`, as one layer of configuration: the command-line flags, or a
/// `--config` YAML file (`ServeSettings(yaml:path:)`). A nil field was not given in this layer.
///
/// Layers combine with `overriding(with:)` — flags over the file — and the defaults are applied
/// last, by `resolvedModel`, `resolvedModelName` and `serverConfiguration(environment:)`. Each
/// field names its file key and flag; docs/server.md has the table.
public struct ServeSettings: Sendable, Equatable {
    /// `model`, `--model`: a GGUF path or a catalog name. Default `ModelStore.defaultModel`.
    public var model: String?
    /// `model_name`, `--model-name`: the id in `model` and `/v1/models`. Default: from `model`.
    public var modelName: String?
    /// `context`, `--context`: tokens per sequence. Default: the model's, at most 4096. Bounds ≥ 1
    /// (and at most the model's trained context, checked when it loads).
    public var context: Int?
    /// `threads`, `--threads`: compute threads. Default: all cores. Bounds ≥ 1.
    public var threads: Int?
    /// `kv_type`, `--kv-type`: KV cache precision. Default `f16`.
    public var kvType: KVCacheType?
    /// `host`, `--host`: bind address. Default `127.0.0.1`. Not empty.
    public var host: String?
    /// `port`, `--port`. Default 8080. Bounds `ServerConfiguration.portRange` (0 = any free port).
    public var port: Int?
    /// `api_keys`, `--api-key` (repeatable): accepted keys. Default none.
    public var apiKeys: [String]?
    /// `api_key_file`, `--api-key-file`: more keys, one per line (`#` comments). Default none.
    public var apiKeyFile: String?
    /// `parallel`, `--parallel`: sequences decoded together. Default 8.
    /// Bounds `SchedulerConfiguration.maxSequencesRange`.
    public var parallel: Int?
    /// `cache_slots`, `--cache-slots`: sequence caches kept for prefix reuse. Default 0 (= parallel).
    /// Bounds 0 or parallel...`SchedulerConfiguration.cacheSlotsLimit`.
    public var cacheSlots: Int?
    /// `queue_size`, `--queue-size`: requests that may wait; beyond that 429. Default 64.
    /// Bounds `SchedulerConfiguration.queueCapacityRange`.
    public var queueSize: Int?
    /// `prefill_chunk`, `--prefill-chunk`: prompt tokens per forward step. Default 512.
    /// Bounds `SchedulerConfiguration.prefillChunkRange`.
    public var prefillChunk: Int?
    /// `max_request_bytes`, `--max-request-bytes`: largest body (413 beyond). Default 4 MiB.
    /// Bounds `ServerConfiguration.maxRequestBytesRange`.
    public var maxRequestBytes: Int?
    /// `request_timeout`, `--request-timeout`: seconds before a request is abandoned (408).
    /// Default 600. Bounds > 0.
    public var requestTimeout: Double?
    /// `max_choices`, `--max-choices`: largest `n`. Default 8. Bounds `ServerConfiguration.maxChoicesRange`.
    public var maxChoices: Int?
    /// `chat_template`, `--chat-template`: a Jinja file used instead of the model's template.
    /// Default none (the model's own).
    public var chatTemplate: String?
    /// `prefix_cache`, `--prefix-cache`: bytes of keys/values of prompt prefixes kept after
    /// their sequence slots moved on (the file takes `256MiB`-style text or an integer; `0` is
    /// off). Default 256 MiB. Bounds ≥ 0.
    public var prefixCache: Int?
    /// `memory_budget`, `--memory-budget`: resident weight memory at most, in bytes (the file
    /// takes `8GiB`-style text or an integer). Default none (`$SPARROW_MEMORY_BUDGET`, else no
    /// limit). Bounds ≥ 1 byte.
    public var memoryBudget: Int?
    /// `expert_half_life`, `--expert-half-life`: the expert cache's usage half-life in tokens.
    /// Default 16. Bounds > 0; needs a memory budget.
    public var expertHalfLife: Double?
    /// `expert_prefetch`, `--expert-prefetch`: read ahead the next layer's predicted experts.
    /// Default off; needs a memory budget.
    public var expertPrefetch: Bool?

    public init(model: String? = nil, modelName: String? = nil, context: Int? = nil, threads: Int? = nil,
                kvType: KVCacheType? = nil, host: String? = nil, port: Int? = nil, apiKeys: [String]? = nil,
                apiKeyFile: String? = nil, parallel: Int? = nil, cacheSlots: Int? = nil, queueSize: Int? = nil,
                prefillChunk: Int? = nil, maxRequestBytes: Int? = nil, requestTimeout: Double? = nil,
                maxChoices: Int? = nil, chatTemplate: String? = nil, prefixCache: Int? = nil, memoryBudget: Int? = nil,
                expertHalfLife: Double? = nil, expertPrefetch: Bool? = nil) {
        self.model = model
        self.modelName = modelName
        self.context = context
        self.threads = threads
        self.kvType = kvType
        self.host = host
        self.port = port
        self.apiKeys = apiKeys
        self.apiKeyFile = apiKeyFile
        self.parallel = parallel
        self.cacheSlots = cacheSlots
        self.queueSize = queueSize
        self.prefillChunk = prefillChunk
        self.maxRequestBytes = maxRequestBytes
        self.requestTimeout = requestTimeout
        self.maxChoices = maxChoices
        self.chatTemplate = chatTemplate
        self.prefixCache = prefixCache
        self.memoryBudget = memoryBudget
        self.expertHalfLife = expertHalfLife
        self.expertPrefetch = expertPrefetch
    }

    /// This layer with every field that `top` sets replaced by `top`'s value: how command-line
    /// flags override the file (`file.overriding(with: flags)`). A list (`api_keys`) is replaced
    /// whole, not merged.
    public func overriding(with top: ServeSettings) -> ServeSettings {
        ServeSettings(
            model: top.model ?? model, modelName: top.modelName ?? modelName,
            context: top.context ?? context, threads: top.threads ?? threads, kvType: top.kvType ?? kvType,
            host: top.host ?? host, port: top.port ?? port,
            apiKeys: top.apiKeys ?? apiKeys, apiKeyFile: top.apiKeyFile ?? apiKeyFile,
            parallel: top.parallel ?? parallel, cacheSlots: top.cacheSlots ?? cacheSlots,
            queueSize: top.queueSize ?? queueSize, prefillChunk: top.prefillChunk ?? prefillChunk,
            maxRequestBytes: top.maxRequestBytes ?? maxRequestBytes,
            requestTimeout: top.requestTimeout ?? requestTimeout, maxChoices: top.maxChoices ?? maxChoices,
            chatTemplate: top.chatTemplate ?? chatTemplate, prefixCache: top.prefixCache ?? prefixCache,
            memoryBudget: top.memoryBudget ?? memoryBudget,
            expertHalfLife: top.expertHalfLife ?? expertHalfLife, expertPrefetch: top.expertPrefetch ?? expertPrefetch)
    }

    // MARK: Defaults

    /// The model to load: `model`, else the default catalog model.
    public var resolvedModel: String { model ?? ModelStore.defaultModel }

    /// The served id: `model_name`, else derived from the model (`defaultModelName(for:)`).
    public var resolvedModelName: String { modelName ?? Self.defaultModelName(for: resolvedModel) }

    /// `qwen2.5-coder-0.5b` stays as is; `/path/to/file.gguf` becomes `file`.
    public static func defaultModelName(for model: String) -> String {
        if ModelStore.entry(model) != nil && !model.contains("/") { return model }
        let base = (model as NSString).lastPathComponent
        return base.hasSuffix(".gguf") ? String(base.dropLast(5)) : base
    }

    /// The server's configuration with every unset field at its default. The accepted API keys
    /// are `api_keys`, plus those in `api_key_file`, plus `$SPARROW_API_KEY` when `environment`
    /// has it. Checked with `ServerConfiguration.validate()`, so cross-field limits (cache slots
    /// against parallel) and flag values get the same bounds as the file's.
    public func serverConfiguration(
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(EngineError) -> ServerConfiguration {
        var config = ServerConfiguration()
        config.modelName = resolvedModelName
        if let host { config.host = host }
        if let port { config.port = port }
        var keys = Set(apiKeys ?? [])
        if let env = environment["SPARROW_API_KEY"], !env.isEmpty { keys.insert(env) }
        if let apiKeyFile { keys.formUnion(try ServerConfiguration.apiKeys(fromFile: apiKeyFile)) }
        config.apiKeys = keys
        if let maxRequestBytes { config.maxRequestBytes = maxRequestBytes }
        if let requestTimeout { config.requestTimeout = requestTimeout }
        if let maxChoices { config.maxChoices = maxChoices }
        if let parallel { config.scheduler.maxSequences = parallel }
        if let cacheSlots { config.scheduler.cacheSlots = cacheSlots }
        if let queueSize { config.scheduler.queueCapacity = queueSize }
        if let prefillChunk { config.scheduler.prefillChunk = prefillChunk }
        if let prefixCache { config.scheduler.prefixCacheBytes = prefixCache }
        try config.validate()
        return config
    }

    /// The chat template file's text, or nil when `chat_template` is not set.
    public func chatTemplateSource() throws(EngineError) -> String? {
        guard let chatTemplate else { return nil }
        guard let data = FileManager.default.contents(atPath: chatTemplate) else {
            throw .invalidParameter("cannot read the chat template file \(chatTemplate)")
        }
        return String(decoding: data, as: UTF8.self)
    }
}
