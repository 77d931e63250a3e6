import Foundation
import Hummingbird
import SparrowAPI
import SparrowEngine
import SparrowTokenizer

/// The OpenAI-compatible server: one engine, one scheduler, the HTTP routes.
///
/// `buildApplication` is the plain factory `sparrow serve` runs; tests call it the same way.
public final class SparrowServer: Sendable {
    public let engine: Engine
    public let scheduler: Scheduler
    public let configuration: ServerConfiguration
    /// A chat template that replaces the file's own (`--chat-template`).
    let templateOverride: ChatTemplate?
    /// The template's source, to tell which reasoning / tool-call markup the model uses.
    let outputFormat: OutputFormat
    let metrics = ServerMetrics()
    /// Token bytes for constraints (tool names under `tool_choice: required`).
    let pieces: TokenPieces

    /// - templateSource: a Jinja chat template to use instead of the model file's own.
    public init(engine: Engine, configuration: ServerConfiguration, templateSource: String? = nil) throws(EngineError) {
        try configuration.validate()
        self.engine = engine
        self.configuration = configuration
        if let templateSource {
            do { templateOverride = try ChatTemplate(source: templateSource) } catch { throw .template(error) }
        } else {
            templateOverride = nil
        }
        let source = templateSource ?? engine.gguf.metadata["tokenizer.chat_template"]?.stringValue ?? ""
        outputFormat = OutputFormat(templateSource: source)
        pieces = TokenPieces(tokenizer: engine.tokenizer)
        scheduler = try Scheduler(engine: engine, configuration: configuration.scheduler)
    }

    /// The HTTP application: routes, API-key check, error rendering, request metrics.
    /// Logging follows Hummingbird's default logger (`LOG_LEVEL=debug` for more).
    public func buildApplication(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router()
        router.add(middleware: RequestMetricsMiddleware(metrics: metrics))
        router.add(middleware: APIKeyMiddleware(keys: configuration.apiKeys))
        router.get("/health") { _, _ -> Response in
            jsonResponse(.object([("status", .string("ok"))]))
        }
        router.get("/metrics") { [self] _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4"
            return Response(status: .ok, headers: headers,
                             body: ResponseBody(byteBuffer: ByteBuffer(string: metrics.render(scheduler: scheduler.snapshot()))))
        }
        router.get("/v1/models") { [self] _, _ -> Response in
            jsonResponse(.object([("object", .string("list")), ("data", .array([modelObject]))]))
        }
        router.get("/v1/models/:id") { [self] _, context -> Response in
            let id = context.parameters.get("id") ?? ""
            guard id == configuration.modelName else { throw APIError.modelNotFound(id, available: [configuration.modelName]) }
            return jsonResponse(modelObject)
        }
        router.post("/v1/chat/completions") { [self] request, context -> Response in
            try await chatCompletions(request: request, context: context)
        }
        router.post("/v1/completions") { [self] request, context -> Response in
            try await completions(request: request, context: context)
        }
        return Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port), serverName: "sparrow"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) })
    }

    var modelObject: JSONValue {
        .object([("id", .string(configuration.modelName)), ("object", .string("model")), ("created", .int(0)),
                 ("owned_by", .string("sparrow")),
                 ("context_length", .int(engine.contextLength))])
    }

    /// Reads the body within the size limit and parses it as JSON.
    func readJSON(_ request: Request) async throws(APIError) -> JSONValue {
        var req = request
        let buffer: ByteBuffer
        do { buffer = try await req.collectBody(upTo: configuration.maxRequestBytes) } catch {
            throw APIError.tooLarge(limit: configuration.maxRequestBytes)
        }
        guard let text = buffer.getString(at: buffer.readerIndex, length: buffer.readableBytes) else {
            throw APIError.invalidRequest("the request body is not UTF-8", code: "invalid_json")
        }
        return try JSONValue.parse(text)
    }

    /// Refuses a `model` this server does not serve.
    func checkModel(_ name: String) throws(APIError) {
        guard name == configuration.modelName else { throw APIError.modelNotFound(name, available: [configuration.modelName]) }
    }

    /// Checks the prompt against the context: OpenAI refuses (400) rather than truncates.
    func checkContext(promptTokens: Int, maxTokens: Int, given: Bool) throws(APIError) {
        let ctx = engine.contextLength
        if promptTokens >= ctx || (given && promptTokens + maxTokens > ctx) {
            throw APIError.from(.promptTooLong(promptTokens: promptTokens + (given ? maxTokens : 1), context: ctx))
        }
    }

    /// Submits `n` copies of a job; on a refusal, cancels the ones already queued.
    func submit(_ job: GenerationJob, n: Int) throws(APIError) -> [GenerationHandle] {
        var handles: [GenerationHandle] = []
        for _ in 0..<n {
            do { handles.append(try scheduler.submit(job)) } catch {
                for h in handles { h.cancel() }
                throw APIError.from(error)
            }
        }
        return handles
    }

    /// Events of several jobs as one stream of (choice index, event).
    static func merge(_ handles: [GenerationHandle]) -> AsyncStream<(Int, GenerationEvent)> {
        let (stream, continuation) = AsyncStream<(Int, GenerationEvent)>.makeStream()
        let task = Task {
            await withTaskGroup(of: Void.self) { group in
                for (i, h) in handles.enumerated() {
                    group.addTask { for await e in h.events { continuation.yield((i, e)) } }
                }
            }
            continuation.finish()
        }
        continuation.onTermination = { reason in
            if case .cancelled = reason {
                task.cancel()
                for h in handles { h.cancel() }
            }
        }
        return stream
    }


    static var unixTime: Int { Int(Date().timeIntervalSince1970) }
}

/// Requires `Authorization: Bearer KEY` with a configured key on every route but `/health`.
struct APIKeyMiddleware<Context: RequestContext>: RouterMiddleware {
    let keys: Set<String>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard !keys.isEmpty, request.uri.path != "/health" else { return try await next(request, context) }
        let header = request.headers[.authorization] ?? ""
        let prefix = "Bearer "
        guard header.hasPrefix(prefix), keys.contains(String(header.dropFirst(prefix.count)).trimmingWhitespace) else {
            throw APIError.unauthorized
        }
        return try await next(request, context)
    }
}

/// Counts requests by endpoint and status and times them, errors included.
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = Date()
        metrics.started()
        let endpoint = request.uri.path.hasPrefix("/v1/models/") ? "/v1/models/{id}" : request.uri.path
        let known = ["/health", "/metrics", "/v1/models", "/v1/models/{id}", "/v1/chat/completions", "/v1/completions"]
        let label = known.contains(endpoint) ? endpoint : "other"
        do {
            let response = try await next(request, context)
            metrics.finished(endpoint: label, status: Int(response.status.code), seconds: Date().timeIntervalSince(start))
            return response
        } catch let e as HTTPResponseError {
            metrics.finished(endpoint: label, status: Int(e.status.code), seconds: Date().timeIntervalSince(start))
            throw e
        } catch {
            metrics.finished(endpoint: label, status: 500, seconds: Date().timeIntervalSince(start))
            throw error
        }
    }
}

/// OpenAI-shaped errors render themselves as HTTP responses.
extension APIError: HTTPResponseError {
    public var status: HTTPResponse.Status { HTTPResponse.Status(code: statusCode) }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        jsonResponse(json, status: status)
    }
}

/// A JSON response with the right content type.
func jsonResponse(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
    var headers = HTTPFields()
    headers[.contentType] = "application/json"
    return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: value.serialized)))
}
