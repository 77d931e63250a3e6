import Testing
@testable import SparrowAPI

/// Reasoning and tool-call splitting, fed whole and one character at a time (tags split across tokens).
@Suite("Output parser")
struct OutputParserTests {
    static let qwen = OutputFormat(reasoning: true, toolCalls: true, xmlToolCalls: false)

    /// Feeds `text` in pieces of `step` characters and merges adjacent pieces of one kind; a
    /// streamed call (start + argument pieces) is folded into one `.toolCall`.
    func parse(_ text: String, step: Int, format: OutputFormat = qwen, reasoning: Bool = false, tools: Bool = true,
               prefill: String = "") -> [OutputPiece] {
        var merged: [OutputPiece] = []
        for piece in pieces(text, step: step, format: format, reasoning: reasoning, tools: tools, prefill: prefill) {
            switch (merged.last, piece) {
            case let (.content(a)?, .content(b)): merged[merged.count - 1] = .content(a + b)
            case let (.reasoning(a)?, .reasoning(b)): merged[merged.count - 1] = .reasoning(a + b)
            case let (_, .toolCallStart(name)): merged.append(.toolCall(name: name, arguments: ""))
            case let (.toolCall(name, a)?, .toolCallArguments(b)): merged[merged.count - 1] = .toolCall(name: name, arguments: a + b)
            default: merged.append(piece)
            }
        }
        return merged
    }

    /// The raw pieces of `text` fed `step` characters at a time.
    func pieces(_ text: String, step: Int, format: OutputFormat = qwen, reasoning: Bool = false, tools: Bool = true,
                toolNames: Set<String> = [], prefill: String = "") -> [OutputPiece] {
        var p = OutputParser(format: format, startInReasoning: reasoning, parseTools: tools, toolNames: toolNames)
        var out = p.feed(prefill)
        var i = text.startIndex
        while i < text.endIndex {
            let j = text.index(i, offsetBy: step, limitedBy: text.endIndex) ?? text.endIndex
            out += p.feed(String(text[i..<j]))
            i = j
        }
        return out + p.finish()
    }

    @Test("plain text passes through", arguments: [1, 3, 100])
    func plain(step: Int) {
        #expect(parse("Hello <b>world</b> <thin", step: step) == [.content("Hello <b>world</b> <thin")])
    }

    @Test("think blocks become reasoning, never content", arguments: [1, 2, 5, 100])
    func reasoning(step: Int) {
        #expect(parse("<think>\nLet me see.\n</think>\n\nThe answer is 42.", step: step)
                == [.reasoning("\nLet me see.\n"), .content("The answer is 42.")])
        // The prompt opened the block (Qwen3.5): everything up to </think> is reasoning.
        #expect(parse("pondering</think>\n\nDone", step: step, reasoning: true) == [.reasoning("pondering"), .content("Done")])
        // Cut off while thinking: it stays reasoning.
        #expect(parse("still thinking", step: step, reasoning: true) == [.reasoning("still thinking")])
    }

    @Test("Hermes JSON tool calls", arguments: [1, 4, 100])
    func jsonCalls(step: Int) {
        let text = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>"
        let pieces = parse(text, step: step)
        // Streamed in small steps the newline before the tag is already out; the reply trims it.
        guard case let .content(lead)? = pieces.first else { Issue.record("no content"); return }
        #expect(lead.trimmingWhitespace == "Let me check.")
        #expect(Array(pieces.dropFirst()) == [
            .toolCall(name: "get_weather", arguments: "{\"city\": \"Paris\"}"),
            .toolCall(name: "get_time", arguments: "{}"),
        ])
    }

    @Test("a JSON call streams: its name first, then its arguments piece by piece", arguments: [1, 3])
    func streamedJSONCall(step: Int) {
        let args = "{\"code\": \"if x { y() } \\\" }\", \"n\": [1, {\"k\": 2}]}"
        let text = "<tool_call>\n{\"name\": \"run\", \"arguments\": \(args)}\n</tool_call>"
        let out = pieces(text, step: step)
        #expect(out.first == .toolCallStart(name: "run"))
        let fragments = out.dropFirst().map { p -> String in if case let .toolCallArguments(s) = p { return s } else { return "?" } }
        #expect(fragments.count > 3)
        // Braces inside strings (and an escaped quote) do not end the object early.
        #expect(fragments.joined() == args)
        #expect(parse(text, step: step) == [.toolCall(name: "run", arguments: args)])
    }

    @Test("a call body of another shape is parsed whole at the end")
    func unstreamedShapes() {
        // Arguments before the name, and arguments as a JSON string.
        #expect(pieces("<tool_call>{\"arguments\": {\"a\": 1}, \"name\": \"f\"}</tool_call>", step: 2)
                == [.toolCall(name: "f", arguments: "{\"a\":1}")])
        #expect(pieces("<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": 1}\"}</tool_call>", step: 2)
                == [.toolCall(name: "f", arguments: "{\"a\":1}")])
    }

    @Test("header matching: incomplete, mismatch, matched")
    func header() {
        #expect(CallStream.jsonHeader("{\"na") == .incomplete)
        #expect(CallStream.jsonHeader("{ \"name\" : \"a\\\"b\" ,\n \"param") == .incomplete)
        #expect(CallStream.jsonHeader("{\"name\": \"f\", \"args\"") == .mismatch)
        #expect(CallStream.jsonHeader("[") == .mismatch)
        #expect(CallStream.jsonHeader("{ \"name\" : \"a\\\"b\" ,\n \"parameters\": {\"x\"")
                == .matched(name: "a\"b", arguments: "{\"x\""))
    }

    @Test("a reply that is only bare call JSON naming an offered tool is a call; other JSON is content", arguments: [1, 7, 100])
    func bareCalls(step: Int) {
        func run(_ text: String) -> [OutputPiece] { pieces(text, step: step, toolNames: ["get_weather"]) }
        #expect(run("\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}")
                == [.toolCall(name: "get_weather", arguments: "{\"city\":\"Paris\"}")])
        #expect(run("{\"name\": \"other\", \"arguments\": {}}") == [.content("{\"name\": \"other\", \"arguments\": {}}")])
        #expect(run("{\"a\": 1} and text") == [.content("{\"a\": 1} and text")])
        // Pretty-printed inside a ```json fence (what Qwen2.5-Coder-0.5B sometimes writes).
        #expect(run("```json\n{\n  \"name\": \"get_weather\",\n  \"arguments\": {\n    \"city\": \"Paris\"\n  }\n}\n```")
                == [.toolCall(name: "get_weather", arguments: "{\"city\":\"Paris\"}")])
        // A code block that is not a call stays content, and streams.
        let code = "```python\nprint(1)\n```"
        #expect(run(code).map { piece -> String in if case let .content(c) = piece { return c } else { return "?" } }.joined() == code)
    }

    @Test("a forced prefix is parsed as if generated")
    func prefill() {
        #expect(parse("{\"city\": \"Oslo\"}}\n</tool_call>", step: 2, prefill: "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": ")
                == [.toolCall(name: "get_weather", arguments: "{\"city\": \"Oslo\"}")])
    }

    @Test("Qwen3-Coder XML tool calls")
    func xmlCalls() {
        let format = OutputFormat(reasoning: false, toolCalls: true, xmlToolCalls: true)
        let text = "<tool_call>\n<function=search>\n<parameter=query>\nswift actors\n</parameter>\n<parameter=limit>\n5\n</parameter>\n</function>\n</tool_call>"
        #expect(parse(text, step: 3, format: format) == [.toolCall(name: "search", arguments: "{\"query\":\"swift actors\",\"limit\":5}")])
        // Streamed: the name at <function=…>, then one piece per closed parameter.
        #expect(pieces(text, step: 1, format: format) == [
            .toolCallStart(name: "search"), .toolCallArguments("{\"query\":\"swift actors\""),
            .toolCallArguments(",\"limit\":5"), .toolCallArguments("}"),
        ])
        #expect(pieces("<tool_call>\n<function=now>\n</function>\n</tool_call>", step: 2, format: format)
                == [.toolCallStart(name: "now"), .toolCallArguments("{}")])
    }

    @Test("a malformed or unfinished call is returned as text, and tools off means text")
    func malformed() {
        #expect(parse("<tool_call>\nnot json\n</tool_call>", step: 1) == [.content("<tool_call>\nnot json\n</tool_call>")])
        #expect(parse("<tool_call>\n{\"name\": \"f\", \"argu", step: 1) == [.content("<tool_call>\n{\"name\": \"f\", \"argu</tool_call>")])
        #expect(parse("<tool_call>{}</tool_call>", step: 100, tools: false) == [.content("<tool_call>{}</tool_call>")])
    }
}
