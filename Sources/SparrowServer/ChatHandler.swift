import Foundation
import Hummingbird
import SparrowEngine

/// `POST /v1/chat/completions`: template → tokens → scheduler → parsed reply, whole or as SSE.
extension SparrowServer {
    func chatCompletions(request: Request, context: some RequestContext) async throws(APIError) -> Response {
        let body = try await readJSON(request)
        let chat = try ChatRequest.parse(body, vocabularySize: engine.model.config.vocabularySize, maxChoices: configuration.maxChoices)
        try checkModel(chat.model)
        if chat.toolChoice != .none && !outputFormat.toolCalls {
            throw APIError.unsupported("tools", "this model's chat template has no <tool_call> format this server can parse")
        }
        var prompt: String
        do { prompt = try engine.renderChat(requestJSON: chat.templateRequest.serialized, template: templateOverride) } catch {
            throw APIError.from(error)
        }
        // A required or named tool call is forced by starting the reply with the call's opening.
        let forced = forcedPrefix(chat.toolChoice)
        let startInReasoning = forced.isEmpty && outputFormat.reasoning && prompt.trimmingWhitespace.hasSuffix(OutputParser.thinkOpen)
        prompt += forced
        let tokens = engine.tokenize(prompt)
        var generation = chat.generation
        if !chat.maxTokensGiven, let d = configuration.defaultMaxTokens { generation.maxTokens = d }
        try checkContext(promptTokens: tokens.count, maxTokens: generation.maxTokens, given: chat.maxTokensGiven)
        var job = GenerationJob(prompt: tokens, parameters: generation, topLogprobs: chat.topLogprobs, timeout: configuration.requestTimeout)
        if chat.toolChoice == .required {
            // The forced opening ends where the name begins: only an offered name (and its closing) may follow.
            let close = outputFormat.xmlToolCalls ? ">" : "\""
            let options = chat.toolNames.map { $0 + close }
            let pieces = self.pieces
            job.constraint = { ChoiceConstraint(options: options, pieces: pieces) }
        }
        let handles = try submit(job, n: chat.n)
        let reply = ChatReply(id: Self.newID("chatcmpl-"), created: Self.unixTime, model: configuration.modelName,
                              choices: chat.n, format: outputFormat, startInReasoning: startInReasoning,
                              parseTools: chat.toolChoice != .none, toolNames: Set(chat.toolNames), forced: forced, parallelToolCalls: chat.parallelToolCalls,
                              logprobs: chat.topLogprobs != nil)
        let events = Self.merge(handles)
        if chat.stream {
            let includeUsage = chat.includeUsage
            return sseResponse(events: events, handles: handles) { [metrics] event in
                reply.streamChunks(for: event, includeUsage: includeUsage, metrics: metrics)
            }
        }
        for await (i, event) in events {
            if case let .failed(e) = event { for h in handles { h.cancel() }; throw APIError.from(e) }
            if case let .finished(s) = event, i == 0, let t = s.timeToFirstToken { metrics.observeTimeToFirstToken(t) }
            reply.absorb(choice: i, event: event)
        }
        guard reply.allFinished else {
            throw APIError(status: .serviceUnavailable, message: "generation was cancelled", type: "server_error", code: "cancelled")
        }
        return jsonResponse(reply.completionJSON())
    }

    /// What the reply must start with for `tool_choice` required or named.
    func forcedPrefix(_ choice: ToolChoice) -> String {
        switch choice {
        case .none, .auto: return ""
        // Opening the name as well: small models given only the tag tend to close the reply at once.
        case .required: return OutputParser.toolOpen + (outputFormat.xmlToolCalls ? "\n<function=" : "\n{\"name\": \"")
        case let .named(name):
            if outputFormat.xmlToolCalls { return OutputParser.toolOpen + "\n<function=\(name)>\n" }
            var quoted = ""
            JSONValue.quote(name, into: &quoted)
            return OutputParser.toolOpen + "\n{\"name\": \(quoted), \"arguments\": "
        }
    }

    /// A `text/event-stream` response: each event becomes zero or more `data:` lines; the
    /// stream ends with `data: [DONE]`. A write failure (the client went away) cancels the jobs.
    func sseResponse(events: AsyncStream<(Int, GenerationEvent)>, handles: [GenerationHandle],
                     render: @escaping @Sendable ((Int, GenerationEvent)?) -> [JSONValue]) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        let body = ResponseBody { writer in
            do {
                for await event in events {
                    for chunk in render(event) {
                        try await writer.write(ByteBuffer(string: "data: \(chunk.serialized)\n\n"))
                    }
                }
                for chunk in render(nil) {
                    try await writer.write(ByteBuffer(string: "data: \(chunk.serialized)\n\n"))
                }
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                try await writer.finish(nil)
            } catch {
                for h in handles { h.cancel() }
                throw error
            }
        }
        return Response(status: .ok, headers: headers, body: body)
    }
}

/// The state of one chat reply across its choices: parsers, accumulated text, tool calls,
/// logprobs and usage. A class because the SSE renderer mutates it from one task.
final class ChatReply: @unchecked Sendable {
    let id: String, created: Int, model: String
    let parallelToolCalls: Bool
    let logprobs: Bool
    var choices: [ChoiceState]
    var promptTokens = 0, cachedTokens = 0
    /// The first chunk of each choice (role) has been sent.
    var opened: Set<Int> = []
    var finishedCount = 0

    struct ChoiceState {
        var parser: OutputParser
        var content = ""
        var reasoning = ""
        var toolCalls: [(id: String, name: String, arguments: String)] = []
        var logprobs: [JSONValue] = []
        var finishReason: String?
        var completionTokens = 0
    }

    init(id: String, created: Int, model: String, choices n: Int, format: OutputFormat, startInReasoning: Bool,
         parseTools: Bool, toolNames: Set<String>, forced: String, parallelToolCalls: Bool, logprobs: Bool) {
        self.id = id
        self.created = created
        self.model = model
        self.parallelToolCalls = parallelToolCalls
        self.logprobs = logprobs
        var parser = OutputParser(format: format, startInReasoning: startInReasoning, parseTools: parseTools, toolNames: toolNames)
        _ = parser.feed(forced)
        choices = Array(repeating: ChoiceState(parser: parser), count: n)
    }

    var allFinished: Bool { choices.allSatisfy { $0.finishReason != nil } }

    /// Folds an event into choice `i`; returns the parsed pieces and the token's logprobs entry.
    @discardableResult
    func absorb(choice i: Int, event: GenerationEvent) -> (pieces: [OutputPiece], logprob: JSONValue?) {
        var pieces: [OutputPiece] = []
        var lp: JSONValue?
        switch event {
        case let .token(t):
            pieces = choices[i].parser.feed(t.text)
            if logprobs, let chosen = t.logprob {
                lp = Self.logprobJSON(chosen, top: t.topLogprobs)
                choices[i].logprobs.append(lp ?? .null)
            }
        case let .text(s):
            pieces = choices[i].parser.feed(s)
        case let .finished(summary):
            pieces = choices[i].parser.finish()
            promptTokens = summary.promptTokens
            if i == 0 { cachedTokens = summary.cachedPromptTokens }
            choices[i].completionTokens = summary.completionTokens
        case .failed:
            break
        }
        var kept: [OutputPiece] = []
        for p in pieces {
            switch p {
            case let .content(s): choices[i].content += s; kept.append(p)
            case let .reasoning(s): choices[i].reasoning += s; kept.append(p)
            case let .toolCall(name, args):
                // parallel_tool_calls: false keeps the first call only.
                if !parallelToolCalls && !choices[i].toolCalls.isEmpty { continue }
                choices[i].toolCalls.append((SparrowServer.newID("call_"), name, args))
                kept.append(p)
            }
        }
        if case let .finished(summary) = event {
            choices[i].finishReason = !choices[i].toolCalls.isEmpty ? "tool_calls" : summary.finishReason.rawValue
            finishedCount += 1
        }
        return (kept, lp)
    }

    static func logprobJSON(_ t: TokenLogprob, top: [TokenLogprob]) -> JSONValue {
        func entry(_ x: TokenLogprob) -> [(String, JSONValue)] {
            [("token", .string(x.text)), ("logprob", .double(Double(x.logprob))), ("bytes", .array(x.bytes.map { .int(Int($0)) }))]
        }
        return .object(entry(t) + [("top_logprobs", .array(top.map { .object(entry($0)) }))])
    }

    var usage: JSONValue {
        let completion = choices.reduce(0) { $0 + $1.completionTokens }
        return .object([
            ("prompt_tokens", .int(promptTokens)), ("completion_tokens", .int(completion)),
            ("total_tokens", .int(promptTokens + completion)),
            ("prompt_tokens_details", .object([("cached_tokens", .int(cachedTokens))])),
        ])
    }

    /// The non-streamed `chat.completion` object.
    func completionJSON() -> JSONValue {
        let list: [JSONValue] = choices.enumerated().map { i, c in
            var message: [(String, JSONValue)] = [("role", .string("assistant"))]
            let content = c.toolCalls.isEmpty ? c.content : c.content.trimmingWhitespace
            message.append(("content", content.isEmpty && !c.toolCalls.isEmpty ? .null : .string(content)))
            let reasoning = c.reasoning.trimmingWhitespace
            if !reasoning.isEmpty { message.append(("reasoning_content", .string(reasoning))) }
            if !c.toolCalls.isEmpty {
                message.append(("tool_calls", .array(c.toolCalls.map { call in
                    .object([("id", .string(call.id)), ("type", .string("function")),
                             ("function", .object([("name", .string(call.name)), ("arguments", .string(call.arguments))]))])
                })))
            }
            return .object([
                ("index", .int(i)), ("message", .object(message)),
                ("logprobs", logprobs ? .object([("content", .array(c.logprobs))]) : .null),
                ("finish_reason", .string(c.finishReason ?? "stop")),
            ])
        }
        return .object([
            ("id", .string(id)), ("object", .string("chat.completion")), ("created", .int(created)),
            ("model", .string(model)), ("choices", .array(list)), ("usage", usage),
        ])
    }

    func chunk(_ choices: [JSONValue], usage: JSONValue? = nil, includeUsage: Bool) -> JSONValue {
        var pairs: [(String, JSONValue)] = [
            ("id", .string(id)), ("object", .string("chat.completion.chunk")), ("created", .int(created)),
            ("model", .string(model)), ("choices", .array(choices)),
        ]
        if includeUsage { pairs.append(("usage", usage ?? .null)) }
        return .object(pairs)
    }

    /// SSE chunks for one event (nil: the end of all choices).
    func streamChunks(for item: (Int, GenerationEvent)?, includeUsage: Bool, metrics: ServerMetrics) -> [JSONValue] {
        guard let (i, event) = item else {
            return includeUsage ? [chunk([], usage: usage, includeUsage: true)] : []
        }
        if case let .failed(e) = event {
            return [APIError.from(e).json]
        }
        if case let .finished(s) = event, i == 0, let t = s.timeToFirstToken { metrics.observeTimeToFirstToken(t) }
        var out: [JSONValue] = []
        func choice(_ delta: [(String, JSONValue)], logprob: JSONValue? = nil, finish: String? = nil) -> JSONValue {
            var c: [(String, JSONValue)] = [("index", .int(i)), ("delta", .object(delta))]
            if logprobs { c.append(("logprobs", logprob.map { .object([("content", .array([$0]))]) } ?? .null)) }
            c.append(("finish_reason", finish.map(JSONValue.string) ?? .null))
            return .object(c)
        }
        if !opened.contains(i) {
            opened.insert(i)
            out.append(chunk([choice([("role", .string("assistant")), ("content", .string(""))])], includeUsage: includeUsage))
        }
        let callsBefore = choices[i].toolCalls.count
        let (pieces, lp) = absorb(choice: i, event: event)
        var pendingLogprob = lp
        var callIndex = callsBefore
        for p in pieces {
            let delta: [(String, JSONValue)]
            switch p {
            case let .content(s): delta = [("content", .string(s))]
            case let .reasoning(s): delta = [("reasoning_content", .string(s))]
            case let .toolCall(name, args):
                let call = choices[i].toolCalls[callIndex]
                delta = [("tool_calls", .array([.object([
                    ("index", .int(callIndex)), ("id", .string(call.id)), ("type", .string("function")),
                    ("function", .object([("name", .string(name)), ("arguments", .string(args))])),
                ])]))]
                callIndex += 1
            }
            out.append(chunk([choice(delta, logprob: pendingLogprob)], includeUsage: includeUsage))
            pendingLogprob = nil
        }
        if let l = pendingLogprob { out.append(chunk([choice([], logprob: l)], includeUsage: includeUsage)) }
        if case .finished = event {
            out.append(chunk([choice([], finish: choices[i].finishReason)], includeUsage: includeUsage))
        }
        return out
    }
}
