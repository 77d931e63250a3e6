import Foundation
import Hummingbird
import SparrowEngine

/// `POST /v1/completions` (the legacy text API): a raw prompt, no template, no parsing.
extension SparrowServer {
    func completions(request: Request, context: some RequestContext) async throws(APIError) -> Response {
        let body = try await readJSON(request)
        var f = try RequestFields(body)
        guard let model = try f.string("model") else { throw APIError.invalidParameter("model", "model is required") }
        let vocab = engine.model.config.vocabularySize
        var tokens: [Int32]
        var promptText: String
        let rawPrompt = f.value("prompt")
        if case let .string(s)? = rawPrompt {
            promptText = s
            tokens = engine.tokenize(s)
        } else if case let .array(items)? = rawPrompt, items.count == 1, case let .string(s) = items[0] {
            promptText = s
            tokens = engine.tokenize(s)
        } else if case let .array(items)? = rawPrompt, !items.isEmpty,
                  items.allSatisfy({ if case .int = $0 { return true } else { return false } }) {
            tokens = []
            for item in items {
                guard case let .int(t) = item, t >= 0, t < vocab else {
                    throw APIError.invalidParameter("prompt", "prompt token ids must be in 0..<\(vocab)")
                }
                tokens.append(Int32(t))
            }
            promptText = engine.tokenizer.decode(tokens)
        } else if rawPrompt == nil {
            throw APIError.invalidParameter("prompt", "prompt is required")
        } else {
            throw APIError.unsupported("prompt", "prompt must be a string, a one-string array, or an array of token ids (batches of prompts are not supported)")
        }
        guard !tokens.isEmpty else { throw APIError.invalidParameter("prompt", "prompt must not be empty") }
        let stream = try f.bool("stream") ?? false
        let includeUsage = try SamplingFields.streamOptions(&f, stream: stream)
        let n = try f.int("n", in: 1...configuration.maxChoices) ?? 1
        if let best = try f.int("best_of", in: 1...configuration.maxChoices), best != n {
            throw APIError.unsupported("best_of", "best_of other than n is not supported")
        }
        let echo = try f.bool("echo") ?? false
        if let suffix = try f.string("suffix"), !suffix.isEmpty {
            throw APIError.unsupported("suffix", "suffix (fill-in-the-middle) is not supported")
        }
        var generation = try SamplingFields.read(&f, vocabularySize: vocab)
        let maxGiven = try f.int("max_tokens", in: 0...Int(Int32.max))
        generation.maxTokens = maxGiven ?? 16  // OpenAI's default for this endpoint
        let logprobs = try f.int("logprobs", in: 0...20)
        try f.rejectUnknown(ignorable: ["user"])
        try checkModel(model)
        try checkContext(promptTokens: tokens.count, maxTokens: generation.maxTokens, given: true)

        let job = GenerationJob(prompt: tokens, parameters: generation, topLogprobs: logprobs, timeout: configuration.requestTimeout)
        let handles = try submit(job, n: n)
        let reply = TextReply(id: Self.newID("cmpl-"), created: Self.unixTime, model: configuration.modelName,
                              choices: n, echo: echo ? promptText : nil, logprobs: logprobs != nil)
        let events = Self.merge(handles)
        if stream {
            return sseResponse(events: events, handles: handles) { event in
                reply.streamChunks(for: event, includeUsage: includeUsage)
            }
        }
        for await (i, event) in events {
            if case let .failed(e) = event { for h in handles { h.cancel() }; throw APIError.from(e) }
            _ = reply.absorb(choice: i, event: event)
        }
        guard reply.allFinished else {
            throw APIError(status: .serviceUnavailable, message: "generation was cancelled", type: "server_error", code: "cancelled")
        }
        return jsonResponse(reply.completionJSON())
    }
}

/// The state of one text completion across its choices.
final class TextReply: @unchecked Sendable {
    let id: String, created: Int, model: String
    let echo: String?
    let logprobs: Bool
    var texts: [String]
    /// Legacy logprobs columns per choice.
    var tokens: [[String]], tokenLogprobs: [[Double]], topLogprobs: [[JSONValue]], offsets: [[Int]]
    var finish: [String?]
    var completionTokens: [Int]
    var promptTokens = 0, cachedTokens = 0
    var echoed: Set<Int> = []

    init(id: String, created: Int, model: String, choices n: Int, echo: String?, logprobs: Bool) {
        self.id = id
        self.created = created
        self.model = model
        self.echo = echo
        self.logprobs = logprobs
        texts = Array(repeating: echo ?? "", count: n)
        tokens = Array(repeating: [], count: n)
        tokenLogprobs = Array(repeating: [], count: n)
        topLogprobs = Array(repeating: [], count: n)
        offsets = Array(repeating: [], count: n)
        finish = Array(repeating: nil, count: n)
        completionTokens = Array(repeating: 0, count: n)
    }

    var allFinished: Bool { finish.allSatisfy { $0 != nil } }

    /// Folds an event in; returns the text it added and its logprobs columns, if any.
    func absorb(choice i: Int, event: GenerationEvent) -> (text: String, logprobs: JSONValue?) {
        switch event {
        case let .token(t):
            var lp: JSONValue?
            if logprobs, let chosen = t.logprob {
                let offset = texts[i].utf8.count
                tokens[i].append(chosen.text)
                tokenLogprobs[i].append(Double(chosen.logprob))
                let top = JSONValue.object(t.topLogprobs.map { ($0.text, .double(Double($0.logprob))) })
                topLogprobs[i].append(top)
                offsets[i].append(offset)
                lp = .object([("tokens", .array([.string(chosen.text)])), ("token_logprobs", .array([.double(Double(chosen.logprob))])),
                              ("top_logprobs", .array([top])), ("text_offset", .array([.int(offset)]))])
            }
            texts[i] += t.text
            return (t.text, lp)
        case let .text(s):
            texts[i] += s
            return (s, nil)
        case let .finished(s):
            finish[i] = s.finishReason.rawValue
            completionTokens[i] = s.completionTokens
            promptTokens = s.promptTokens
            if i == 0 { cachedTokens = s.cachedPromptTokens }
            return ("", nil)
        case .failed:
            return ("", nil)
        }
    }

    var usage: JSONValue {
        let completion = completionTokens.reduce(0, +)
        return .object([
            ("prompt_tokens", .int(promptTokens)), ("completion_tokens", .int(completion)),
            ("total_tokens", .int(promptTokens + completion)),
            ("prompt_tokens_details", .object([("cached_tokens", .int(cachedTokens))])),
        ])
    }

    func completionJSON() -> JSONValue {
        let list: [JSONValue] = texts.indices.map { i in
            let lp: JSONValue = logprobs ? .object([
                ("tokens", .array(tokens[i].map(JSONValue.string))), ("token_logprobs", .array(tokenLogprobs[i].map(JSONValue.double))),
                ("top_logprobs", .array(topLogprobs[i])), ("text_offset", .array(offsets[i].map(JSONValue.int))),
            ]) : .null
            return .object([("index", .int(i)), ("text", .string(texts[i])), ("logprobs", lp),
                            ("finish_reason", .string(finish[i] ?? "stop"))])
        }
        return .object([("id", .string(id)), ("object", .string("text_completion")), ("created", .int(created)),
                        ("model", .string(model)), ("choices", .array(list)), ("usage", usage)])
    }

    func streamChunks(for item: (Int, GenerationEvent)?, includeUsage: Bool) -> [JSONValue] {
        func chunk(_ choices: [JSONValue], usage: JSONValue? = nil) -> JSONValue {
            var pairs: [(String, JSONValue)] = [("id", .string(id)), ("object", .string("text_completion")), ("created", .int(created)),
                                                ("model", .string(model)), ("choices", .array(choices))]
            if includeUsage { pairs.append(("usage", usage ?? .null)) }
            return .object(pairs)
        }
        guard let (i, event) = item else { return includeUsage ? [chunk([], usage: usage)] : [] }
        if case let .failed(e) = event { return [APIError.from(e).json] }
        var out: [JSONValue] = []
        if let echo, !echoed.contains(i) {
            echoed.insert(i)
            out.append(chunk([.object([("index", .int(i)), ("text", .string(echo)), ("logprobs", .null), ("finish_reason", .null)])]))
        }
        let (text, lp) = absorb(choice: i, event: event)
        let reason: JSONValue = finish[i].map(JSONValue.string) ?? .null
        if !text.isEmpty || lp != nil || reason != .null {
            out.append(chunk([.object([("index", .int(i)), ("text", .string(text)), ("logprobs", lp ?? .null), ("finish_reason", reason)])]))
        }
        return out
    }
}
