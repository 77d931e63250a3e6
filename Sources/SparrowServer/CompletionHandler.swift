import Foundation
import Hummingbird
import SparrowAPI
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
        let reply = TextReply(id: newID("cmpl-"), created: Self.unixTime, model: configuration.modelName,
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
            throw APIError(status: 503, message: "generation was cancelled", type: "server_error", code: "cancelled")
        }
        return jsonResponse(reply.completionJSON())
    }
}
