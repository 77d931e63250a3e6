import SparrowEngine

/// Which tool calls a chat request allows or demands (OpenAI `tool_choice`).
package enum ToolChoice: Equatable {
    /// No tools offered, or `"none"`: the tools are not shown to the model and output is plain text.
    case none
    case auto
    /// The reply must be one or more tool calls.
    case required
    /// The reply must call this function.
    case named(String)
}

/// A validated `POST /v1/chat/completions` body.
package struct ChatRequest {
    package var model: String
    /// What the chat template renders: `messages`, `tools`, `add_generation_prompt`, and any
    /// `chat_template_kwargs` (e.g. `enable_thinking`).
    package var templateRequest: JSONValue
    package var toolNames: [String]
    package var toolChoice: ToolChoice
    package var parallelToolCalls: Bool
    package var n: Int
    package var stream: Bool
    package var includeUsage: Bool
    package var generation: GenerationParameters
    /// Whether the client set max_tokens / max_completion_tokens (then it must fit the context).
    package var maxTokensGiven: Bool
    /// nil: no logprobs; k: logprobs with k alternatives.
    package var topLogprobs: Int?
    /// The requested thinking mode, if the request set one.
    package var enableThinking: Bool?
    /// `response_format` json_object / json_schema, compiled for constrained decoding.
    package var responseSchema: SchemaNode?

    /// Parses and validates; every key is either understood or refused.
    package static func parse(_ body: JSONValue, vocabularySize: Int, maxChoices: Int) throws(APIError) -> ChatRequest {
        var f = try RequestFields(body)
        guard let model = try f.string("model") else { throw APIError.invalidParameter("model", "model is required") }
        guard let rawMessages = try f.array("messages") else { throw APIError.invalidParameter("messages", "messages is required") }
        guard !rawMessages.isEmpty else { throw APIError.invalidParameter("messages", "messages must not be empty") }
        var messages: [JSONValue] = []
        for (i, m) in rawMessages.enumerated() { messages.append(try normalizeMessage(m, index: i)) }

        // Tools and tool_choice.
        var tools: [JSONValue] = []
        var toolNames: [String] = []
        if let rawTools = try f.array("tools") {
            for (i, t) in rawTools.enumerated() {
                let (tool, name) = try validateTool(t, index: i)
                tools.append(tool)
                toolNames.append(name)
            }
        }
        var choice: ToolChoice = tools.isEmpty ? .none : .auto
        if let c = f.value("tool_choice") {
            guard !tools.isEmpty else { throw APIError.invalidParameter("tool_choice", "tool_choice is only allowed when tools are given") }
            switch c {
            case .string("none"): choice = .none
            case .string("auto"): choice = .auto
            case .string("required"): choice = .required
            case .object:
                var o = try RequestFields(c, path: "tool_choice.", what: "tool_choice")
                guard try o.string("type") == "function", let fn = o.value("function") else {
                    throw APIError.invalidParameter("tool_choice", "tool_choice must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}")
                }
                try o.rejectUnknown()
                var fo = try RequestFields(fn, path: "tool_choice.function.", what: "tool_choice.function")
                guard let name = try fo.string("name") else { throw APIError.invalidParameter("tool_choice.function.name", "tool_choice.function.name is required") }
                try fo.rejectUnknown()
                guard toolNames.contains(name) else {
                    throw APIError.invalidParameter("tool_choice", "tool_choice names '\(name)', which is not among the tools (\(toolNames.joined(separator: ", ")))")
                }
                choice = .named(name)
            default:
                throw APIError.invalidParameter("tool_choice", "tool_choice must be \"none\", \"auto\", \"required\" or a named function")
            }
        }
        let parallel = try f.bool("parallel_tool_calls") ?? true

        // Thinking: chat_template_kwargs.enable_thinking, or reasoning_effort.
        var kwargs: [(String, JSONValue)] = []
        if let k = f.value("chat_template_kwargs") {
            guard case let .object(pairs) = k else { throw APIError.invalidParameter("chat_template_kwargs", "chat_template_kwargs must be an object") }
            for (key, _) in pairs where ["messages", "tools", "add_generation_prompt", "bos_token", "eos_token"].contains(key) {
                throw APIError.invalidParameter("chat_template_kwargs", "chat_template_kwargs may not set '\(key)'")
            }
            kwargs = pairs
        }
        var thinking: Bool?
        if let effort = try f.string("reasoning_effort") {
            switch effort {
            case "none": thinking = false
            case "minimal", "low", "medium", "high": thinking = true
            default: throw APIError.invalidParameter("reasoning_effort", "reasoning_effort must be none, minimal, low, medium or high, got '\(effort)'")
            }
        }
        if let v = kwargs.last(where: { $0.0 == "enable_thinking" })?.1 {
            guard case let .bool(b) = v else { throw APIError.invalidParameter("chat_template_kwargs", "chat_template_kwargs.enable_thinking must be a boolean") }
            if let t = thinking, t != b {
                throw APIError.invalidParameter("reasoning_effort", "reasoning_effort and chat_template_kwargs.enable_thinking disagree")
            }
            thinking = b
        } else if let t = thinking {
            kwargs.append(("enable_thinking", .bool(t)))
        }

        var responseSchema: SchemaNode?
        if let rf = f.value("response_format") {
            responseSchema = try SchemaCompiler.responseFormat(rf)
            if responseSchema != nil && choice != .none {
                throw APIError.unsupported("response_format", "response_format JSON modes cannot be combined with tools in one request")
            }
        }

        let stream = try f.bool("stream") ?? false
        let includeUsage = try SamplingFields.streamOptions(&f, stream: stream)
        let n = try f.int("n", in: 1...maxChoices) ?? 1
        var generation = try SamplingFields.read(&f, vocabularySize: vocabularySize)
        let maxTokens = try f.int("max_completion_tokens", in: 1...Int(Int32.max))
        let legacyMax = try f.int("max_tokens", in: 1...Int(Int32.max))
        if let a = maxTokens, let b = legacyMax, a != b {
            throw APIError.invalidParameter("max_tokens", "max_tokens (\(b)) and max_completion_tokens (\(a)) disagree; send one")
        }
        generation.maxTokens = maxTokens ?? legacyMax ?? Int(Int32.max)
        var top: Int?
        let logprobs = try f.bool("logprobs") ?? false
        if let k = try f.int("top_logprobs", in: 0...20) {
            guard logprobs else { throw APIError.invalidParameter("top_logprobs", "top_logprobs requires logprobs: true") }
            top = k
        } else if logprobs {
            top = 0
        }
        try f.rejectUnknown(ignorable: ["user"])

        var request: [(String, JSONValue)] = [("messages", .array(messages))]
        if choice != .none { request.append(("tools", .array(tools))) }
        request.append(("add_generation_prompt", .bool(true)))
        request += kwargs
        return ChatRequest(model: model, templateRequest: .object(request), toolNames: toolNames, toolChoice: choice,
                           parallelToolCalls: parallel, n: n, stream: stream, includeUsage: includeUsage,
                           generation: generation, maxTokensGiven: maxTokens != nil || legacyMax != nil,
                           topLogprobs: top, enableThinking: thinking, responseSchema: responseSchema)
    }

    /// Checks one message and brings it to the shape chat templates expect: text parts joined
    /// into one string, `developer` as `system`, tool-call arguments as JSON objects.
    package static func normalizeMessage(_ m: JSONValue, index i: Int) throws(APIError) -> JSONValue {
        let p = "messages[\(i)]."
        var f = try RequestFields(m, path: p, what: "messages[\(i)]")
        guard var role = try f.string("role") else { throw APIError.invalidParameter(p + "role", "\(p)role is required") }
        guard ["system", "developer", "user", "assistant", "tool"].contains(role) else {
            throw APIError.invalidParameter(p + "role", "\(p)role '\(role)' must be system, developer, user, assistant or tool")
        }
        if role == "developer" { role = "system" }
        var out: [(String, JSONValue)] = [("role", .string(role))]
        var content: String?
        if let c = f.value("content") {
            switch c {
            case let .string(s): content = s
            case let .array(parts):
                var text = ""
                for (j, part) in parts.enumerated() {
                    var pf = try RequestFields(part, path: "\(p)content[\(j)].", what: "\(p)content[\(j)]")
                    let type = try pf.string("type")
                    guard type == "text", let t = try pf.string("text") else {
                        throw APIError.unsupported("\(p)content[\(j)]", "content parts of type '\(type ?? "?")' are not supported; only text")
                    }
                    try pf.rejectUnknown()
                    text += t
                }
                content = text
            default: throw APIError.invalidParameter(p + "content", "\(p)content must be a string or an array of text parts")
            }
        }
        if let name = try f.string("name") { out.append(("name", .string(name))) }
        var toolCalls: [JSONValue] = []
        if let calls = try f.array("tool_calls") {
            guard role == "assistant" else { throw APIError.invalidParameter(p + "tool_calls", "only assistant messages carry tool_calls") }
            for (j, call) in calls.enumerated() {
                let cp = "\(p)tool_calls[\(j)]."
                var cf = try RequestFields(call, path: cp, what: "\(p)tool_calls[\(j)]")
                let id = try cf.string("id")
                if let t = try cf.string("type"), t != "function" { throw APIError.invalidParameter(cp + "type", "\(cp)type must be function") }
                guard let fn = cf.value("function") else { throw APIError.invalidParameter(cp + "function", "\(cp)function is required") }
                try cf.rejectUnknown()
                var ff = try RequestFields(fn, path: cp + "function.", what: cp + "function")
                guard let name = try ff.string("name") else { throw APIError.invalidParameter(cp + "function.name", "\(cp)function.name is required") }
                var arguments: JSONValue = .object([])
                if let a = ff.value("arguments") {
                    switch a {
                    case let .string(s):
                        guard let parsed = try? JSONValue.parse(s), case .object = parsed else {
                            throw APIError.invalidParameter(cp + "function.arguments", "\(cp)function.arguments must be a JSON object encoded as a string")
                        }
                        arguments = parsed
                    case .object: arguments = a
                    default: throw APIError.invalidParameter(cp + "function.arguments", "\(cp)function.arguments must be a JSON string")
                    }
                }
                try ff.rejectUnknown()
                var entry: [(String, JSONValue)] = []
                if let id { entry.append(("id", .string(id))) }
                entry.append(("type", .string("function")))
                entry.append(("function", .object([("name", .string(name)), ("arguments", arguments)])))
                toolCalls.append(.object(entry))
            }
        }
        if role == "tool" {
            guard let id = try f.string("tool_call_id") else { throw APIError.invalidParameter(p + "tool_call_id", "\(p)tool_call_id is required for tool messages") }
            out.append(("tool_call_id", .string(id)))
        }
        if let r = try f.string("reasoning_content") {
            guard role == "assistant" else { throw APIError.invalidParameter(p + "reasoning_content", "only assistant messages carry reasoning_content") }
            out.append(("reasoning_content", .string(r)))
        }
        guard content != nil || !toolCalls.isEmpty else {
            throw APIError.invalidParameter(p + "content", "\(p)content is required (it may be null only for an assistant message with tool_calls)")
        }
        out.insert(("content", content.map(JSONValue.string) ?? .null), at: 1)
        if !toolCalls.isEmpty { out.append(("tool_calls", .array(toolCalls))) }
        // Fields the OpenAI SDK echoes back on assistant messages and that carry nothing here.
        try f.rejectUnknown(ignorable: ["refusal", "annotations"])
        return .object(out)
    }

    /// `{"type": "function", "function": {"name", "description"?, "parameters"?, "strict"?}}`.
    package static func validateTool(_ t: JSONValue, index i: Int) throws(APIError) -> (JSONValue, String) {
        let p = "tools[\(i)]."
        var f = try RequestFields(t, path: p, what: "tools[\(i)]")
        guard try f.string("type") == "function" else { throw APIError.invalidParameter(p + "type", "\(p)type must be function") }
        guard let fn = f.value("function") else { throw APIError.invalidParameter(p + "function", "\(p)function is required") }
        try f.rejectUnknown()
        var ff = try RequestFields(fn, path: p + "function.", what: p + "function")
        guard let name = try ff.string("name"), !name.isEmpty,
              name.unicodeScalars.allSatisfy({ ($0.properties.isAlphabetic && $0.isASCII) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-" || $0 == "." }) else {
            throw APIError.invalidParameter(p + "function.name", "\(p)function.name must be a non-empty string of a-z, A-Z, 0-9, _, - and .")
        }
        _ = try ff.string("description")
        if let params = ff.value("parameters") {
            guard case .object = params else { throw APIError.invalidParameter(p + "function.parameters", "\(p)function.parameters must be a JSON Schema object") }
        }
        if try ff.bool("strict") == true {
            throw APIError.unsupported(p + "function.strict", "strict function calling needs constrained decoding, which this server does not implement yet")
        }
        try ff.rejectUnknown()
        return (.object([("type", .string("function")), ("function", fn)]), name)
    }
}
