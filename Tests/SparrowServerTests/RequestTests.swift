import Testing
@testable import SparrowAPI

/// Request validation: every parameter is understood or refused with its name.
@Suite("Chat request parsing")
struct RequestTests {
    func parse(_ json: String) throws(APIError) -> ChatRequest {
        try ChatRequest.parse(try JSONValue.parse(json), vocabularySize: 1000, maxChoices: 8)
    }

    func error(_ json: String) -> APIError? {
        do { _ = try parse(json); return nil } catch { return error }
    }

    @Test("a full request maps onto generation parameters")
    func full() throws {
        let r = try parse("""
        {"model": "m", "messages": [{"role": "developer", "content": [{"type": "text", "text": "be brief"}]},
                                    {"role": "user", "content": "hi"}],
         "temperature": 0.5, "top_p": 0.9, "top_k": 7, "min_p": 0.1, "seed": 3, "stop": "END", "n": 2,
         "presence_penalty": 1, "frequency_penalty": -1, "logit_bias": {"12": -100}, "max_tokens": 9,
         "logprobs": true, "top_logprobs": 2, "stream": true, "stream_options": {"include_usage": true}, "user": "u1"}
        """)
        #expect(r.generation.sampling.temperature == 0.5 && r.generation.sampling.topK == 7)
        #expect(r.generation.sampling.seed == 3 && r.generation.sampling.logitBias == [12: -100])
        #expect(r.generation.stop == ["END"] && r.generation.maxTokens == 9 && r.maxTokensGiven)
        #expect(r.n == 2 && r.stream && r.includeUsage && r.topLogprobs == 2)
        #expect(r.templateRequest["messages"] == .array([
            .object([("role", .string("system")), ("content", .string("be brief"))]),
            .object([("role", .string("user")), ("content", .string("hi"))]),
        ]))
        #expect(r.templateRequest["add_generation_prompt"] == .bool(true))
    }

    @Test("tools, tool_choice and tool-call arguments")
    func tools() throws {
        let r = try parse("""
        {"model": "m", "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
         "tool_choice": {"type": "function", "function": {"name": "f"}},
         "messages": [{"role": "user", "content": "x"},
                      {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\\"a\\": 1}"}}]},
                      {"role": "tool", "tool_call_id": "c1", "content": "ok"}]}
        """)
        #expect(r.toolChoice == .named("f"))
        guard case let .array(msgs)? = r.templateRequest["messages"], case let .array(calls)? = msgs[1]["tool_calls"] else {
            Issue.record("no tool calls"); return
        }
        #expect(calls[0]["function"]?["arguments"] == .object([("a", .int(1))]))
        #expect(error(#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "auto"}"#)?.param == "tool_choice")
    }

    @Test("thinking from chat_template_kwargs or reasoning_effort")
    func thinking() throws {
        let a = try parse(#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "none"}"#)
        #expect(a.enableThinking == false && a.templateRequest["enable_thinking"] == .bool(false))
        let b = try parse(#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": {"enable_thinking": true}}"#)
        #expect(b.enableThinking == true)
    }

    @Test("bad parameters name themselves", arguments: [
        (#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 3}"#, "temperature"),
        (#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 99}"#, "n"),
        (#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}"#, "top_logprobs"),
        (#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "seed": "x"}"#, "seed"),
        (#"{"model": "m", "messages": [{"role": "user"}]}"#, "messages[0].content"),
        (#"{"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}"#, "messages[0].content[0]"),
        (#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "wat": 1}"#, "wat"),
        (#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema"}}"#, "response_format.json_schema"),
        (#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "string", "pattern": "a+"}}}}"#, "response_format.json_schema.schema.pattern"),
        (#"{"messages": [{"role": "user", "content": "x"}]}"#, "model"),
    ])
    func bad(json: String, param: String) {
        let e = error(json)
        #expect(e?.statusCode == 400)
        #expect(e?.param == param)
    }

    @Test("malformed JSON is a 400 with code invalid_json")
    func malformed() {
        do { _ = try JSONValue.parse("{\"a\": ") ; Issue.record("parsed") } catch {
            #expect(error.statusCode == 400 && error.code == "invalid_json")
        }
    }

    @Test("JSON round trip keeps key order")
    func order() throws {
        let text = #"{"z":1,"a":[true,null,"x\n"],"m":{"k":2.5}}"#
        #expect(try JSONValue.parse(text).serialized == text)
    }
}
