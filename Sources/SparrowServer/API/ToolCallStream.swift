/// Follows one `<tool_call>` block's body as it streams in, so a client sees the call as the
/// model writes it (OpenAI streams `tool_calls[i].function.arguments` in pieces):
/// - Hermes JSON `{"name": N, "arguments": {…}}`: the call starts once the name is complete and
///   `"arguments": {` has begun; then the raw text of the arguments object passes on as it
///   arrives, up to its closing brace (strings and escapes are tracked, so braces inside strings
///   do not end it);
/// - Qwen3-Coder XML `<function=N><parameter=P>value</parameter>…</function>`: the call starts
///   at `<function=N>`; each parameter passes on as `"P":value` when its `</parameter>` arrives,
///   so the pieces join into the same JSON object `OutputParser.parseXMLCall` builds.
/// A body of any other shape (arguments before the name, arguments as a JSON string, not a
/// call at all) is left to `OutputParser`, which parses it whole at the block's end.
struct CallStream {
    enum Phase { case undecided, jsonHeader, jsonArguments, xmlHeader, xmlParameters, done, whole }
    private(set) var phase = Phase.undecided
    /// Body text the current phase has not consumed yet.
    private var pending = ""
    // jsonArguments: nesting depth and string state of the arguments object.
    private var depth = 0, inString = false, escaped = false
    // xmlParameters: parameters passed on so far.
    private var parameters = 0

    /// The call has been announced (`toolCallStart`): the block ends with `close()`.
    var started: Bool {
        switch phase {
        case .jsonArguments, .xmlParameters, .done: return true
        case .undecided, .jsonHeader, .xmlHeader, .whole: return false
        }
    }

    mutating func feed(_ text: String, xml: Bool) -> [OutputPiece] {
        pending += text
        var out: [OutputPiece] = []
        while true {
            switch phase {
            case .undecided:
                let lead = pending.drop { $0.isWhitespace }
                guard let first = lead.first else { return out }
                pending = String(lead)
                phase = first == "{" ? .jsonHeader : (first == "<" && xml ? .xmlHeader : .whole)
            case .jsonHeader:
                switch Self.jsonHeader(pending) {
                case .incomplete: return out
                case .mismatch: phase = .whole
                case let .matched(name, arguments):
                    out.append(.toolCallStart(name: name))
                    pending = arguments
                    phase = .jsonArguments
                }
            case .jsonArguments:
                out += scanArguments()
                return out
            case .xmlHeader:
                let open = "<function="
                if pending.count < open.count {
                    if !open.hasPrefix(pending) { phase = .whole }
                    return out
                }
                guard pending.hasPrefix(open) else { phase = .whole; continue }
                guard let end = pending.firstIndex(of: ">") else { return out }
                let name = String(pending[pending.index(pending.startIndex, offsetBy: open.count)..<end])
                guard !name.isEmpty, !name.contains("<") else { phase = .whole; continue }
                out.append(.toolCallStart(name: name))
                pending = String(pending[pending.index(after: end)...])
                phase = .xmlParameters
            case .xmlParameters:
                let param = pending.range(of: "<parameter="), fnEnd = pending.range(of: "</function>")
                if let f = fnEnd, param.map({ f.lowerBound < $0.lowerBound }) ?? true {
                    out += close()
                    return out
                }
                guard let open = param, let gt = pending[open.upperBound...].firstIndex(of: ">"),
                      let end = pending[gt...].range(of: "</parameter>") else { return out }
                let key = String(pending[open.upperBound..<gt])
                let value = OutputParser.xmlValue(String(pending[pending.index(after: gt)..<end.lowerBound]))
                var piece = parameters == 0 ? "{" : ","
                JSONValue.quote(key, into: &piece)
                piece += ":" + value.serialized
                parameters += 1
                out.append(.toolCallArguments(piece))
                pending = String(pending[end.upperBound...])
            case .done, .whole:
                pending = ""
                return out
            }
        }
    }

    /// Ends a started call: an XML call's arguments object is closed (`{}` without
    /// parameters); a JSON call's arguments end where the model ended them.
    mutating func close() -> [OutputPiece] {
        defer { phase = .done; pending = "" }
        guard phase == .xmlParameters else { return [] }
        return [.toolCallArguments(parameters == 0 ? "{}" : "}")]
    }

    /// Passes on the arguments object's text up to its closing brace.
    private mutating func scanArguments() -> [OutputPiece] {
        var end: String.Index?
        var i = pending.startIndex
        scan: while i < pending.endIndex {
            let c = pending[i]
            if inString {
                if escaped { escaped = false } else if c == "\\" { escaped = true } else if c == "\"" { inString = false }
            } else {
                switch c {
                case "\"": inString = true
                case "{", "[": depth += 1
                case "}", "]":
                    depth -= 1
                    if depth == 0 { end = pending.index(after: i); break scan }
                default: break
                }
            }
            i = pending.index(after: i)
        }
        let piece = String(pending[..<(end ?? pending.endIndex)])
        if end != nil { phase = .done }
        pending = ""
        return piece.isEmpty ? [] : [.toolCallArguments(piece)]
    }

    enum Header: Equatable {
        case incomplete, mismatch
        /// The call's name, and the body from the arguments object's `{` on.
        case matched(name: String, arguments: String)
    }

    /// Matches `{"name": "N", "arguments": {` (or `"parameters"`) at the start of `s`, with any
    /// JSON whitespace between the tokens.
    static func jsonHeader(_ s: String) -> Header {
        let b = Array(s.utf8)
        var i = 0
        func skipSpace() { while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 } }
        /// nil when one of `options` follows (consumed), else why not.
        func expect(_ options: String...) -> Header? {
            skipSpace()
            let rest = b[i...]
            if let lit = options.lazy.map({ Array($0.utf8) }).first(where: { rest.starts(with: $0) }) {
                i += lit.count
                return nil
            }
            return options.contains { Array($0.utf8).starts(with: rest) } ? .incomplete : .mismatch
        }
        if let h = expect("{") ?? expect("\"name\"") ?? expect(":") { return h }
        skipSpace()
        guard i < b.count else { return .incomplete }
        guard b[i] == UInt8(ascii: "\"") else { return .mismatch }
        let nameStart = i
        i += 1
        var escape = false
        while true {
            guard i < b.count else { return .incomplete }
            let c = b[i]
            i += 1
            if escape { escape = false } else if c == UInt8(ascii: "\\") { escape = true } else if c == UInt8(ascii: "\"") { break }
        }
        guard case let .string(name)? = try? JSONValue.parse(String(decoding: b[nameStart..<i], as: UTF8.self)), !name.isEmpty else {
            return .mismatch
        }
        if let h = expect(",") ?? expect("\"arguments\"", "\"parameters\"") ?? expect(":") { return h }
        skipSpace()
        guard i < b.count else { return .incomplete }
        guard b[i] == UInt8(ascii: "{") else { return .mismatch }
        return .matched(name: name, arguments: String(decoding: b[i...], as: UTF8.self))
    }
}
