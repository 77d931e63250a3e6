import SparrowEngine

/// The state of one chat reply across its choices: parsers, accumulated text, tool calls,
/// logprobs and usage. A class because the SSE renderer mutates it from one task.
package final class ChatReply: @unchecked Sendable {
    package let id: String, created: Int, model: String
    package let parallelToolCalls: Bool
    package let logprobs: Bool
    package var choices: [ChoiceState]
    package var promptTokens = 0, cachedTokens = 0
    /// The first chunk of each choice (role) has been sent.
    package var opened: Set<Int> = []
    package var finishedCount = 0

    package struct ChoiceState {
        var parser: OutputParser
        var content = ""
        var reasoning = ""
        var toolCalls: [(id: String, name: String, arguments: String)] = []
        var logprobs: [JSONValue] = []
        var finishReason: String?
        var completionTokens = 0
        /// Pieces parsed from the forced opening, delivered with the first event.
        var forcedPieces: [OutputPiece] = []
        /// A streamed call beyond the first with `parallel_tool_calls: false`: its pieces are dropped.
        var droppingCall = false
    }

    package init(id: String, created: Int, model: String, choices n: Int, format: OutputFormat, startInReasoning: Bool,
         parseTools: Bool, toolNames: Set<String>, forced: String, parallelToolCalls: Bool, logprobs: Bool) {
        self.id = id
        self.created = created
        self.model = model
        self.parallelToolCalls = parallelToolCalls
        self.logprobs = logprobs
        var parser = OutputParser(format: format, startInReasoning: startInReasoning, parseTools: parseTools, toolNames: toolNames)
        let forcedPieces = parser.feed(forced)
        choices = Array(repeating: ChoiceState(parser: parser, forcedPieces: forcedPieces), count: n)
    }

    package var allFinished: Bool { choices.allSatisfy { $0.finishReason != nil } }

    /// Folds an event into choice `i`; returns the parsed pieces and the token's logprobs entry.
    @discardableResult
    package func absorb(choice i: Int, event: GenerationEvent) -> (pieces: [OutputPiece], logprob: JSONValue?) {
        var pieces = choices[i].forcedPieces
        choices[i].forcedPieces = []
        var lp: JSONValue?
        switch event {
        case let .token(t):
            pieces += choices[i].parser.feed(t.text)
            if logprobs, let chosen = t.logprob {
                lp = Self.logprobJSON(chosen, top: t.topLogprobs)
                choices[i].logprobs.append(lp ?? .null)
            }
        case let .text(s):
            pieces += choices[i].parser.feed(s)
        case let .finished(summary):
            pieces += choices[i].parser.finish()
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
                choices[i].toolCalls.append((newID("call_"), name, args))
                kept.append(p)
            case let .toolCallStart(name):
                choices[i].droppingCall = !parallelToolCalls && !choices[i].toolCalls.isEmpty
                if choices[i].droppingCall { continue }
                choices[i].toolCalls.append((newID("call_"), name, ""))
                kept.append(p)
            case let .toolCallArguments(s):
                if choices[i].droppingCall || choices[i].toolCalls.isEmpty { continue }
                choices[i].toolCalls[choices[i].toolCalls.count - 1].arguments += s
                kept.append(p)
            }
        }
        if case let .finished(summary) = event {
            choices[i].finishReason = !choices[i].toolCalls.isEmpty ? "tool_calls" : summary.finishReason.rawValue
            finishedCount += 1
        }
        return (kept, lp)
    }

    package static func logprobJSON(_ t: TokenLogprob, top: [TokenLogprob]) -> JSONValue {
        func entry(_ x: TokenLogprob) -> [(String, JSONValue)] {
            [("token", .string(x.text)), ("logprob", .double(Double(x.logprob))), ("bytes", .array(x.bytes.map { .int(Int($0)) }))]
        }
        return .object(entry(t) + [("top_logprobs", .array(top.map { .object(entry($0)) }))])
    }

    package var usage: JSONValue {
        let completion = choices.reduce(0) { $0 + $1.completionTokens }
        return .object([
            ("prompt_tokens", .int(promptTokens)), ("completion_tokens", .int(completion)),
            ("total_tokens", .int(promptTokens + completion)),
            ("prompt_tokens_details", .object([("cached_tokens", .int(cachedTokens))])),
        ])
    }

    /// The non-streamed `chat.completion` object.
    package func completionJSON() -> JSONValue {
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

    package func chunk(_ choices: [JSONValue], usage: JSONValue? = nil, includeUsage: Bool) -> JSONValue {
        var pairs: [(String, JSONValue)] = [
            ("id", .string(id)), ("object", .string("chat.completion.chunk")), ("created", .int(created)),
            ("model", .string(model)), ("choices", .array(choices)),
        ]
        if includeUsage { pairs.append(("usage", usage ?? .null)) }
        return .object(pairs)
    }

    /// SSE chunks for one event (nil: the end of all choices).
    package func streamChunks(for item: (Int, GenerationEvent)?, includeUsage: Bool) -> [JSONValue] {
        guard let (i, event) = item else {
            return includeUsage ? [chunk([], usage: usage, includeUsage: true)] : []
        }
        if case let .failed(e) = event {
            return [APIError.from(e).json]
        }
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
        // The index of the call the next arguments belong to.
        var callIndex = callsBefore - 1
        func callDelta(_ fields: [(String, JSONValue)]) -> [(String, JSONValue)] {
            [("tool_calls", .array([.object([("index", .int(callIndex))] + fields)]))]
        }
        /// A call's first delta: the next index, its id, type and name, and `arguments`.
        func startDelta(_ name: String, _ arguments: String) -> [(String, JSONValue)] {
            callIndex += 1
            return callDelta([("id", .string(choices[i].toolCalls[callIndex].id)), ("type", .string("function")),
                              ("function", .object([("name", .string(name)), ("arguments", .string(arguments))]))])
        }
        for p in pieces {
            let delta: [(String, JSONValue)]
            switch p {
            case let .content(s): delta = [("content", .string(s))]
            case let .reasoning(s): delta = [("reasoning_content", .string(s))]
            case let .toolCall(name, args): delta = startDelta(name, args)
            case let .toolCallStart(name): delta = startDelta(name, "")
            case let .toolCallArguments(s):
                delta = callDelta([("function", .object([("arguments", .string(s))]))])
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
