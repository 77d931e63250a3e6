import Testing
@testable import SparrowEngine
@testable import SparrowAPI

/// The SSE chunks of a streamed chat reply with tool calls, as the OpenAI client reassembles them.
@Suite("Chat reply streaming")
struct ChatReplyTests {
    static let qwen = OutputFormat(reasoning: true, toolCalls: true, xmlToolCalls: false)

    func reply(forced: String = "", parallel: Bool = true) -> ChatReply {
        ChatReply(id: "chatcmpl-test", created: 0, model: "m", choices: 1, format: Self.qwen, startInReasoning: false,
                  parseTools: true, toolNames: ["get_weather", "get_time"], forced: forced, parallelToolCalls: parallel,
                  logprobs: false)
    }

    /// Streams `text` a few characters per event; returns each chunk's `delta.tool_calls` entries.
    func toolDeltas(_ r: ChatReply, _ text: String, step: Int = 3) -> [JSONValue] {
        var chunks: [JSONValue] = []
        var i = text.startIndex
        while i < text.endIndex {
            let j = text.index(i, offsetBy: step, limitedBy: text.endIndex) ?? text.endIndex
            chunks += r.streamChunks(for: (0, .text(String(text[i..<j]))), includeUsage: false)
            i = j
        }
        let summary = GenerationSummary(finishReason: .stop, promptTokens: 5, cachedPromptTokens: 0, completionTokens: 9,
                                        timeToFirstToken: nil, totalSeconds: 0)
        chunks += r.streamChunks(for: (0, .finished(summary)), includeUsage: false)
        var deltas: [JSONValue] = []
        for c in chunks {
            guard case let .array(choices)? = c["choices"], let choice = choices.first,
                  case let .array(calls)? = choice["delta"]?["tool_calls"] else { continue }
            deltas += calls
        }
        return deltas
    }

    /// What the openai client does with the deltas: per index, the first id/name, concatenated arguments.
    func assemble(_ deltas: [JSONValue]) -> [Int: (id: String, name: String, arguments: String)] {
        var calls: [Int: (id: String, name: String, arguments: String)] = [:]
        for d in deltas {
            guard case let .int(index)? = d["index"] else { continue }
            var c = calls[index] ?? ("", "", "")
            if case let .string(id)? = d["id"], c.id.isEmpty { c.id = id }
            if case let .string(n)? = d["function"]?["name"] { c.name += n }
            if case let .string(a)? = d["function"]?["arguments"] { c.arguments += a }
            calls[index] = c
        }
        return calls
    }

    @Test("a forced call's name arrives first, then its arguments in several deltas")
    func namedCall() throws {
        let r = reply(forced: "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": ")
        let deltas = toolDeltas(r, "{\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>")
        #expect(deltas.count > 3)
        // Only the first delta of a call carries its id, type and name.
        #expect(deltas.first?["id"] != nil && deltas.first?["type"] == .string("function"))
        #expect(deltas.dropFirst().allSatisfy { $0["id"] == nil && $0["function"]?["name"] == nil })
        let calls = assemble(deltas)
        #expect(calls.count == 1)
        #expect(calls[0]?.name == "get_weather")
        let args = try JSONValue.parse(calls[0]?.arguments ?? "")
        #expect(args["city"] == .string("Paris"))
        // The non-streamed view of the same reply agrees.
        guard case let .array(choices)? = r.completionJSON()["choices"],
              case let .array(toolCalls)? = choices.first?["message"]?["tool_calls"] else { Issue.record("no tool_calls"); return }
        #expect(toolCalls.first?["function"]?["arguments"] == .string(calls[0]?.arguments ?? ""))
        #expect(choices.first?["finish_reason"] == .string("tool_calls"))
    }

    @Test("two calls stream under indexes 0 and 1; parallel_tool_calls false keeps only the first")
    func twoCalls() {
        let text = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": \"CET\"}}\n</tool_call>"
        let both = assemble(toolDeltas(reply(), text))
        #expect(both[0]?.name == "get_weather" && both[0]?.arguments == "{\"city\": \"Oslo\"}")
        #expect(both[1]?.name == "get_time" && both[1]?.arguments == "{\"zone\": \"CET\"}")
        #expect(both[0]?.id != both[1]?.id)
        let first = assemble(toolDeltas(reply(parallel: false), text))
        #expect(first.count == 1 && first[0]?.arguments == "{\"city\": \"Oslo\"}")
    }
}
