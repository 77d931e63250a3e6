import ArgumentParser
import Foundation
import Hummingbird
import SparrowEngine
import SparrowModels
import SparrowServer

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a model over an OpenAI-compatible HTTP API (see docs/server.md).")

    @Option(help: "A YAML configuration file (keys in docs/server.md); flags given here override its values.")
    var config: String?

    // Every setting is optional here so that only the flags actually given override the file;
    // the defaults live in ServeSettings / ServerConfiguration and are applied after merging.
    @Option(help: "A GGUF file, or a model name from `sparrow pull --list` (default \(ModelStore.defaultModel)).") var model: String?
    @Option(help: "Context length in tokens (default: the model's, at most 4096).") var context: Int?
    @Option(help: "Worker threads (default: all cores).") var threads: Int?
    @Option(help: "KV cache precision: f16 (default, as llama.cpp) or f32.") var kvType: String?
    @Option(help: "Address to bind (default 127.0.0.1, loopback only).") var host: String?
    @Option(help: "TCP port (default 8080; 0 = any free port, printed on stderr).") var port: Int?
    @Option(help: "The model id clients send and /v1/models lists (default: the --model name or file name).") var modelName: String?
    @Option(help: "Accepted API key (repeatable; replaces the file's api_keys). Also read from $SPARROW_API_KEY.") var apiKey: [String] = []
    @Option(help: "File of API keys, one per line.") var apiKeyFile: String?
    @Option(help: "Sequences decoded together (continuous batching width; default 8).") var parallel: Int?
    @Option(help: "Sequence caches kept for prefix reuse (default: --parallel).") var cacheSlots: Int?
    @Option(help: "Requests that may wait before new ones get 429 (default 64).") var queueSize: Int?
    @Option(help: "Prompt tokens prefilled per forward step (default 512).") var prefillChunk: Int?
    @Option(help: "Largest request body in bytes (default 4194304).") var maxRequestBytes: Int?
    @Option(help: "Seconds a request may run before it is abandoned (default 600).") var requestTimeout: Double?
    @Option(help: "Largest n (choices per request; default 8).") var maxChoices: Int?
    @Option(help: "A Jinja chat template file to use instead of the model's own.") var chatTemplate: String?
    @Option(help: "Memory for keys/values of prompt prefixes kept after their slots moved on, e.g. 256MiB; 0 = off (default 256MiB).") var prefixCache: String?
    @OptionGroup var memory: MemoryOptions

    /// The settings given as flags; nil where a flag was not given.
    func flagSettings() throws -> ServeSettings {
        ServeSettings(
            model: model, modelName: modelName, context: context, threads: threads,
            kvType: try kvType.map(ModelOptions.kvCacheType), host: host, port: port,
            apiKeys: apiKey.isEmpty ? nil : apiKey, apiKeyFile: apiKeyFile,
            parallel: parallel, cacheSlots: cacheSlots, queueSize: queueSize, prefillChunk: prefillChunk,
            maxRequestBytes: maxRequestBytes, requestTimeout: requestTimeout, maxChoices: maxChoices,
            chatTemplate: chatTemplate, prefixCache: try prefixCacheBytes(), memoryBudget: try memory.budgetBytes(),
            expertHalfLife: memory.expertHalfLife, expertPrefetch: try memory.prefetch())
    }

    func prefixCacheBytes() throws -> Int? {
        guard let prefixCache else { return nil }
        do { return try MemorySize.parse(prefixCache, allowZero: true) } catch { throw ValidationError("--prefix-cache: \(error)") }
    }

    func run() async throws {
        var settings = ServeSettings()
        if let config { settings = try ServeSettings(contentsOfFile: config) }
        settings = settings.overriding(with: try flagSettings())
        // Everything that can be checked without the model is checked before loading it.
        let serverConfig = try settings.serverConfiguration()
        let template = try settings.chatTemplateSource()
        let engine = try ModelOptions.loadEngine(
            model: settings.resolvedModel, context: settings.context, threads: settings.threads,
            kvType: settings.kvType ?? .f16,
            offload: try MemoryOptions.offload(budget: settings.memoryBudget, halfLife: settings.expertHalfLife,
                                               prefetch: settings.expertPrefetch))
        let server = try SparrowServer(engine: engine, configuration: serverConfig, templateSource: template)
        let name = serverConfig.modelName, host = serverConfig.host
        let auth = serverConfig.apiKeys.isEmpty ? "no API key" : "API key required"
        let app = server.buildApplication { port in
            writeStderr("sparrow serve: \(name) on http://\(host):\(port) (\(auth))\n")
        }
        try await app.runService()
        // SIGINT/SIGTERM stopped the listener; let running generations finish.
        server.scheduler.shutdown()
    }
}
