import SparrowEngine

/// The state of one text completion across its choices.
package final class TextReply: @unchecked Sendable {
    package let id: String, created: Int, model: String
    package let echo: String?
    package let logprobs: Bool
    package var texts: [String]
    /// Legacy logprobs columns per choice.
    package var tokens: [[String]], tokenLogprobs: [[Double]], topLogprobs: [[JSONValue]], offsets: [[Int]]
    package var finish: [String?]
    package var completionTokens: [Int]
    package var promptTokens = 0, cachedTokens = 0
    package var echoed: Set<Int> = []

    package init(id: String, created: Int, model: String, choices n: Int, echo: String?, logprobs: Bool) {
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

    package var allFinished: Bool { finish.allSatisfy { $0 != nil } }

    /// Folds an event in; returns the text it added and its logprobs columns, if any.
    package func absorb(choice i: Int, event: GenerationEvent) -> (text: String, logprobs: JSONValue?) {
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

    package var usage: JSONValue {
        let completion = completionTokens.reduce(0, +)
        return .object([
            ("prompt_tokens", .int(promptTokens)), ("completion_tokens", .int(completion)),
            ("total_tokens", .int(promptTokens + completion)),
            ("prompt_tokens_details", .object([("cached_tokens", .int(cachedTokens))])),
        ])
    }

    package func completionJSON() -> JSONValue {
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

    package func streamChunks(for item: (Int, GenerationEvent)?, includeUsage: Bool) -> [JSONValue] {
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
