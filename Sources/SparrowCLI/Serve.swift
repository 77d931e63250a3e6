import ArgumentParser
import Foundation
import Hummingbird
import SparrowEngine
import SparrowServer

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a model over an OpenAI-compatible HTTP API (see docs/server.md).")

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Address to bind (default 127.0.0.1, loopback only).") var host: String = "127.0.0.1"
    @Option(help: "TCP port (0 = any free port, printed on stderr).") var port: Int = 8080
    @Option(help: "The model id clients send and /v1/models lists (default: the --model name or file name).") var modelName: String?
    @Option(help: "Accepted API key (repeatable). Also read from $SPARROW_API_KEY.") var apiKey: [String] = []
    @Option(help: "File of API keys, one per line.") var apiKeyFile: String?
    @Option(help: "Sequences decoded together (continuous batching width).") var parallel: Int = 8
    @Option(help: "Sequence caches kept for prefix reuse (default: --parallel).") var cacheSlots: Int = 0
    @Option(help: "Requests that may wait before new ones get 429.") var queueSize: Int = 64
    @Option(help: "Prompt tokens prefilled per forward step.") var prefillChunk: Int = 512
    @Option(help: "Largest request body in bytes.") var maxRequestBytes: Int = 4 << 20
    @Option(help: "Seconds a request may run before it is abandoned.") var requestTimeout: Double = 600
    @Option(help: "Largest n (choices per request).") var maxChoices: Int = 8
    @Option(help: "A Jinja chat template file to use instead of the model's own.") var chatTemplate: String?

    func run() async throws {
        let engine = try modelOptions.load()
        var config = ServerConfiguration()
        config.host = host
        config.port = port
        config.modelName = modelName ?? Self.defaultName(modelOptions.model)
        var keys = Set(apiKey)
        if let env = ProcessInfo.processInfo.environment["SPARROW_API_KEY"], !env.isEmpty { keys.insert(env) }
        if let apiKeyFile { keys.formUnion(try ServerConfiguration.apiKeys(fromFile: apiKeyFile)) }
        config.apiKeys = keys
        config.maxRequestBytes = maxRequestBytes
        config.requestTimeout = requestTimeout
        config.maxChoices = maxChoices
        config.scheduler.maxSequences = parallel
        config.scheduler.cacheSlots = cacheSlots
        config.scheduler.queueCapacity = queueSize
        config.scheduler.prefillChunk = prefillChunk
        var template: String?
        if let chatTemplate {
            guard let data = FileManager.default.contents(atPath: chatTemplate) else {
                throw ValidationError("cannot read --chat-template \(chatTemplate)")
            }
            template = String(decoding: data, as: UTF8.self)
        }
        let server = try SparrowServer(engine: engine, configuration: config, templateSource: template)
        let name = config.modelName, host = config.host, auth = keys.isEmpty ? "no API key" : "API key required"
        let app = server.buildApplication { port in
            writeStderr("sparrow serve: \(name) on http://\(host):\(port) (\(auth))\n")
        }
        try await app.runService()
        // SIGINT/SIGTERM stopped the listener; let running generations finish.
        server.scheduler.shutdown()
    }

    /// `qwen2.5-coder-0.5b` stays as is; `/path/to/file.gguf` becomes `file`.
    static func defaultName(_ model: String) -> String {
        if ModelStore.entry(model) != nil && !model.contains("/") { return model }
        let base = (model as NSString).lastPathComponent
        return base.hasSuffix(".gguf") ? String(base.dropLast(5)) : base
    }
}
