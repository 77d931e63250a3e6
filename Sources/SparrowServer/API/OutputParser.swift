/// One piece of a parsed reply.
package enum OutputPiece: Equatable {
    case content(String)
    /// Text between `<think>` and `</think>`: the model's reasoning, never mixed into content.
    case reasoning(String)
    /// A complete tool call: name and arguments as JSON text.
    case toolCall(name: String, arguments: String)
    /// A streamed tool call begins: its name is certain; its arguments follow as
    /// `toolCallArguments` pieces whose concatenation is the arguments' JSON text.
    case toolCallStart(name: String)
    /// The next piece of the current streamed call's arguments.
    case toolCallArguments(String)
}

/// Which markup the model's chat template uses, read off the template source.
package struct OutputFormat: Equatable {
    /// `<think>…</think>` reasoning blocks (Qwen3, QwQ, DeepSeek-R1 style).
    package var reasoning: Bool
    /// `<tool_call>…</tool_call>` blocks (Qwen2.5/Qwen3 Hermes-style JSON, or Qwen3-Coder XML).
    package var toolCalls: Bool
    /// Qwen3-Coder's `<function=NAME><parameter=P>value</parameter></function>` inside the block.
    package var xmlToolCalls: Bool

    package init(templateSource: String) {
        reasoning = templateSource.contains("<think>") || templateSource.contains("</think>")
        toolCalls = templateSource.contains("<tool_call>")
        xmlToolCalls = templateSource.contains("<function=")
    }

    package init(reasoning: Bool, toolCalls: Bool, xmlToolCalls: Bool) {
        self.reasoning = reasoning
        self.toolCalls = toolCalls
        self.xmlToolCalls = xmlToolCalls
    }
}

/// Splits generated text, as it streams in, into content, reasoning and tool calls.
///
/// Tags may arrive split across tokens, so text that could be the start of a tag is held back
/// until it can be decided. Whitespace right after `</think>` and around tool-call blocks is
/// layout, not content, and is dropped.
package struct OutputParser {
    /// `bareCall`: the reply began with `{` while tools were offered; held until the end, then
    /// parsed as `{"name", "arguments"}` object(s) naming offered tools (small Qwen2.5-Coder
    /// models often drop the `<tool_call>` tags), else released as content.
    package enum State { case content, reasoning, toolCall, bareCall }
    package private(set) var state: State
    package let format: OutputFormat
    private let parseTools: Bool
    private var buffer = ""
    /// Drop leading whitespace of the next content (after `</think>` or a tool call).
    private var trimLeading = false
    private var toolBody = ""
    /// The current tool-call block, followed as it streams in.
    private var call = CallStream()
    /// Offered tool names (bare-JSON calls must name one of them).
    private let toolNames: Set<String>
    /// No content has been released yet (a bare call can only be the whole reply).
    private var atStart = true

    package static let thinkOpen = "<think>", thinkClose = "</think>"
    package static let toolOpen = "<tool_call>", toolClose = "</tool_call>"

    /// - startInReasoning: the prompt already opened a `<think>` block.
    /// - parseTools: tools were offered (otherwise `<tool_call>` is plain text).
    /// - prefill: text the server appended to the prompt to force a tool call; parsed as if generated.
    package init(format: OutputFormat, startInReasoning: Bool, parseTools: Bool, toolNames: Set<String> = []) {
        self.format = format
        self.parseTools = parseTools && format.toolCalls
        self.toolNames = toolNames
        state = startInReasoning && format.reasoning ? .reasoning : .content
    }

    /// Feeds generated text; returns the pieces that are now certain.
    package mutating func feed(_ text: String) -> [OutputPiece] {
        buffer += text
        var out: [OutputPiece] = []
        while true {
            switch state {
            case .content:
                if trimLeading {
                    let trimmed = buffer.drop { $0.isWhitespace }
                    if trimmed.isEmpty { buffer = ""; return out }
                    buffer = String(trimmed)
                    trimLeading = false
                }
                if atStart && parseTools && !toolNames.isEmpty {
                    let lead = buffer.drop { $0.isWhitespace }
                    if lead.isEmpty { return out }
                    if lead.first == "{" { state = .bareCall; continue }
                    // llama.cpp's Hermes/Qwen parser also takes a call wrapped in a ```json fence.
                    if lead.hasPrefix("`") {
                        let fence = "```json"
                        if lead.count < fence.count + 2, fence.hasPrefix(String(lead.prefix(fence.count))) { return out }
                        if lead.hasPrefix(fence), lead.dropFirst(fence.count).drop(while: { $0.isWhitespace }).first == "{" {
                            state = .bareCall
                            continue
                        }
                    }
                }
                var tags: [String] = []
                if format.reasoning { tags.append(Self.thinkOpen) }
                if parseTools { tags.append(Self.toolOpen) }
                if let (range, tag) = Self.firstTag(tags, in: buffer) {
                    var before = String(buffer[..<range.lowerBound])
                    if tag == Self.toolOpen { before = String(before.reversed().drop { $0.isWhitespace }.reversed()) }
                    if !before.isEmpty { out.append(.content(before)); atStart = false }
                    buffer = String(buffer[range.upperBound...])
                    state = tag == Self.thinkOpen ? .reasoning : .toolCall
                    toolBody = ""
                    call = CallStream()
                    continue
                }
                let keep = Self.partialTagSuffix(tags, of: buffer)
                let emit = String(buffer.dropLast(keep))
                if !emit.isEmpty { out.append(.content(emit)); atStart = false }
                buffer = String(buffer.suffix(keep))
                return out
            case .bareCall:
                return out
            case .reasoning:
                if let r = buffer.range(of: Self.thinkClose) {
                    let before = String(buffer[..<r.lowerBound])
                    if !before.isEmpty { out.append(.reasoning(before)) }
                    buffer = String(buffer[r.upperBound...])
                    state = .content
                    trimLeading = true
                    continue
                }
                let keep = Self.partialTagSuffix([Self.thinkClose], of: buffer)
                let emit = String(buffer.dropLast(keep))
                if !emit.isEmpty { out.append(.reasoning(emit)) }
                buffer = String(buffer.suffix(keep))
                return out
            case .toolCall:
                if let r = buffer.range(of: Self.toolClose) {
                    out += takeToolBody(String(buffer[..<r.lowerBound]))
                    buffer = String(buffer[r.upperBound...])
                    out += closeToolCall()
                    state = .content
                    trimLeading = true
                    continue
                }
                let keep = Self.partialTagSuffix([Self.toolClose], of: buffer)
                out += takeToolBody(String(buffer.dropLast(keep)))
                buffer = String(buffer.suffix(keep))
                return out
            }
        }
    }

    /// Ends the reply: whatever is held back is released; an unterminated tool call is parsed
    /// if its body is complete, else returned as content.
    package mutating func finish() -> [OutputPiece] {
        var out: [OutputPiece] = []
        switch state {
        case .content:
            let rest = trimLeading ? String(buffer.drop { $0.isWhitespace }) : buffer
            if !rest.isEmpty { out.append(.content(rest)) }
        case .reasoning:
            if !buffer.isEmpty { out.append(.reasoning(buffer)) }
        case .toolCall:
            out += takeToolBody(buffer)
            out += closeToolCall()
        case .bareCall:
            out += bareCalls(buffer) ?? [.content(buffer.trimmingWhitespace)]
        }
        buffer = ""
        toolBody = ""
        state = .content
        return out
    }

    /// More of the current tool-call block's body.
    private mutating func takeToolBody(_ text: String) -> [OutputPiece] {
        toolBody += text
        return call.feed(text, xml: format.xmlToolCalls)
    }

    /// Ends a tool-call block: a streamed call is finished; any other body is parsed whole, and
    /// one that does not parse becomes content, verbatim.
    private mutating func closeToolCall() -> [OutputPiece] {
        if call.started { return call.close() }
        let body = toolBody.trimmingWhitespace
        if format.xmlToolCalls, body.hasPrefix("<function="), let call = Self.parseXMLCall(body) { return [call] }
        if let v = try? JSONValue.parse(body), case let .string(name)? = v["name"] {
            let args = v["arguments"] ?? v["parameters"] ?? .object([])
            switch args {
            case .object: return [.toolCall(name: name, arguments: args.serialized)]
            case let .string(s): if let parsed = try? JSONValue.parse(s), case .object = parsed { return [.toolCall(name: name, arguments: parsed.serialized)] }
            default: break
            }
        }
        return [.content(Self.toolOpen + toolBody + Self.toolClose)]
    }

    /// A reply made only of `{"name": TOOL, "arguments": {...}}` objects (one, or one per line),
    /// optionally inside a ```json fence, or nil.
    private func bareCalls(_ text: String) -> [OutputPiece]? {
        var text = text.trimmingWhitespace
        if text.hasPrefix("```json"), text.hasSuffix("```"), text.count >= 10 {
            text = String(text.dropFirst(7).dropLast(3)).trimmingWhitespace
        }
        // One (possibly pretty-printed) object, else one object per line.
        if let v = try? JSONValue.parse(text), case let .string(name)? = v["name"], toolNames.contains(name),
           let args = v["arguments"] ?? v["parameters"], case .object = args {
            return [.toolCall(name: name, arguments: args.serialized)]
        }
        var calls: [OutputPiece] = []
        for line in text.split(whereSeparator: \.isNewline) where !line.trimmingWhitespace.isEmpty {
            guard let v = try? JSONValue.parse(String(line)), case let .string(name)? = v["name"], toolNames.contains(name),
                  let args = v["arguments"] ?? v["parameters"], case .object = args else { return nil }
            calls.append(.toolCall(name: name, arguments: args.serialized))
        }
        return calls.isEmpty ? nil : calls
    }

    /// Qwen3-Coder: `<function=NAME>\n<parameter=P>\nVALUE\n</parameter>…</function>`. Values that
    /// parse as JSON keep their type; others are strings.
    package static func parseXMLCall(_ body: String) -> OutputPiece? {
        guard let nameEnd = body.range(of: ">") else { return nil }
        let name = String(body[body.index(body.startIndex, offsetBy: "<function=".count)..<nameEnd.lowerBound])
        guard !name.isEmpty else { return nil }
        var rest = body[nameEnd.upperBound...]
        var args: [(String, JSONValue)] = []
        while let open = rest.range(of: "<parameter=") {
            guard let close = rest[open.upperBound...].range(of: ">") else { return nil }
            let key = String(rest[open.upperBound..<close.lowerBound])
            guard let end = rest[close.upperBound...].range(of: "</parameter>") else { return nil }
            let value = String(rest[close.upperBound..<end.lowerBound])
            args.append((key, xmlValue(value)))
            rest = rest[end.upperBound...]
        }
        return .toolCall(name: name, arguments: JSONValue.object(args).serialized)
    }

    /// A Qwen3-Coder parameter's value (between `<parameter=P>` and `</parameter>`): one
    /// newline either side is layout; text that parses as a non-string JSON value keeps its type.
    package static func xmlValue(_ raw: String) -> JSONValue {
        var value = raw
        if value.hasPrefix("\n") { value.removeFirst() }
        if value.hasSuffix("\n") { value.removeLast() }
        switch try? JSONValue.parse(value) {
        case let v?: if case .string = v { return .string(value) } else { return v }
        case nil: return .string(value)
        }
    }

    /// The earliest of `tags` in `s`.
    package static func firstTag(_ tags: [String], in s: String) -> (Range<String.Index>, String)? {
        var best: (Range<String.Index>, String)?
        for t in tags {
            if let r = s.range(of: t), best.map({ r.lowerBound < $0.0.lowerBound }) ?? true { best = (r, t) }
        }
        return best
    }

    /// Length of the longest suffix of `s` that is a proper prefix of one of `tags`.
    package static func partialTagSuffix(_ tags: [String], of s: String) -> Int {
        var best = 0
        for t in tags {
            var n = min(t.count - 1, s.count)
            while n > best {
                if t.hasPrefix(s.suffix(n)) { best = n; break }
                n -= 1
            }
        }
        return best
    }
}

extension StringProtocol {
    package var trimmingWhitespace: String {
        String(drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }
}
