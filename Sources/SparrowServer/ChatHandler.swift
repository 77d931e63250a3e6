import Foundation
import Hummingbird
import SparrowAPI
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
        if let schema = chat.responseSchema {
            // A reasoning model thinks freely first; the JSON starts after </think>.
            let after = startInReasoning ? OutputParser.thinkClose : nil
            let pieces = self.pieces
            job.constraint = { JSONConstraint(schema: schema, pieces: pieces, activateAfter: after) }
        }
        let handles = try submit(job, n: chat.n)
        let reply = ChatReply(id: newID("chatcmpl-"), created: Self.unixTime, model: configuration.modelName,
                              choices: chat.n, format: outputFormat, startInReasoning: startInReasoning,
                              parseTools: chat.toolChoice != .none, toolNames: Set(chat.toolNames), forced: forced, parallelToolCalls: chat.parallelToolCalls,
                              logprobs: chat.topLogprobs != nil)
        let events = Self.merge(handles)
        if chat.stream {
            let includeUsage = chat.includeUsage
            return sseResponse(events: events, handles: handles) { [metrics] event in
                if case let (0, .finished(s))? = event, let t = s.timeToFirstToken { metrics.observeTimeToFirstToken(t) }
                return reply.streamChunks(for: event, includeUsage: includeUsage)
            }
        }
        for await (i, event) in events {
            if case let .failed(e) = event { for h in handles { h.cancel() }; throw APIError.from(e) }
            if case let .finished(s) = event, i == 0, let t = s.timeToFirstToken { metrics.observeTimeToFirstToken(t) }
            reply.absorb(choice: i, event: event)
        }
        guard reply.allFinished else {
            throw APIError(status: 503, message: "generation was cancelled", type: "server_error", code: "cancelled")
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
