/// Tokenizer for Jinja source, following jinja2's `lexer.py` as configured by transformers:
/// `trim_blocks=True`, `lstrip_blocks=True`, `keep_trailing_newline=False`, default delimiters.
struct Token: Sendable {
    enum Kind: Sendable, Equatable {
        case data(String)
        case variableBegin, variableEnd, blockBegin, blockEnd
        case name(String)
        case string(String)
        case integer(Int)
        case float(Double)
        case op(String)
        case eof
    }
    let kind: Kind
    let line: Int
}

struct Lexer {
    private let src: [UInt8]
    private var pos = 0
    private var line = 1
    private var lineCursor = 0
    private var tokens: [Token] = []
    /// jinja2's `line_starting`: whether the previous match ended with a newline, so that
    /// lstrip_blocks also applies to a tag at the very start of the following text.
    private var lineStarting = true

    static func tokenize(_ source: String) throws(TemplateError) -> [Token] {
        var lexer = Lexer(source: source)
        try lexer.run()
        lexer.advanceLine(to: lexer.src.count)
        lexer.tokens.append(Token(kind: .eof, line: lexer.line))
        return lexer.tokens
    }

    private init(source: String) {
        // As jinja2's tokeniter: normalise \r\n and \r to \n, then drop one trailing newline
        // (keep_trailing_newline=False).
        var bytes: [UInt8] = []
        bytes.reserveCapacity(source.utf8.count)
        var it = source.utf8.makeIterator()
        var pending = it.next()
        while let b = pending {
            pending = it.next()
            if b == 0x0D {
                bytes.append(0x0A)
                if pending == 0x0A { pending = it.next() }
            } else {
                bytes.append(b)
            }
        }
        if bytes.last == 0x0A { bytes.removeLast() }
        src = bytes
    }

    private mutating func advanceLine(to p: Int) {
        while lineCursor < p {
            if src[lineCursor] == 0x0A { line += 1 }
            lineCursor += 1
        }
    }

    private func fail(_ message: String) -> TemplateError {
        var l = line
        var i = lineCursor
        while i < min(pos, src.count) {
            if src[i] == 0x0A { l += 1 }
            i += 1
        }
        return .syntax(message, line: l)
    }

    private func starts(_ s: String, at p: Int) -> Bool {
        var i = p
        for b in s.utf8 {
            guard i < src.count, src[i] == b else { return false }
            i += 1
        }
        return true
    }

    private func text(_ a: Int, _ b: Int) -> String { String(decoding: src[a..<b], as: UTF8.self) }

    /// Length of the run of (Unicode) whitespace starting at `p`, as the regex `\s*` matches it.
    private func whitespaceRun(at p: Int) -> Int {
        var i = p
        while i < src.count {
            let b = src[i]
            if b < 0x80 {
                guard Py.isSpace(Unicode.Scalar(b)) else { break }
                i += 1
            } else {
                // Decode one multi-byte scalar to test it.
                let len = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2
                guard i + len <= src.count else { break }
                guard let c = text(i, i + len).unicodeScalars.first, Py.isSpace(c) else { break }
                i += len
            }
        }
        return i - p
    }

    private enum TagKind { case variable, block, comment }

    private mutating func run() throws(TemplateError) {
        while pos < src.count {
            // The root rule `(.*?)(?:raw_begin|{{|{%|{#)`: the earliest tag opener wins.
            var start = pos
            var kind: TagKind? = nil
            while start + 1 < src.count {
                if src[start] == UInt8(ascii: "{") {
                    let n = src[start + 1]
                    if n == UInt8(ascii: "{") { kind = .variable } else if n == UInt8(ascii: "%") { kind = .block } else if n == UInt8(ascii: "#") { kind = .comment }
                    if kind != nil { break }
                }
                start += 1
            }
            guard let tag = kind else {
                emitData(pos, src.count)
                pos = src.count
                return
            }
            var sign: UInt8 = 0
            if start + 2 < src.count, src[start + 2] == UInt8(ascii: "-") || src[start + 2] == UInt8(ascii: "+") {
                sign = src[start + 2]
            }
            let rawEnd = tag == .block ? matchRawBegin(start) : nil
            emitStripped(pos, start, sign: sign, lstripAllowed: tag != .variable)
            pos = start
            advanceLine(to: pos)
            if let rawEnd {
                pos = rawEnd
                lineStarting = src[rawEnd - 1] == 0x0A
                try lexRaw()
                continue
            }
            pos = start + 2 + (sign != 0 ? 1 : 0)
            switch tag {
            case .comment: try skipComment()
            case .block:
                tokens.append(Token(kind: .blockBegin, line: line))
                try lexTag(endMarker: "%}")
            case .variable:
                tokens.append(Token(kind: .variableBegin, line: line))
                try lexTag(endMarker: "}}")
            }
        }
    }

    /// Emits the text `a..<b` that precedes a tag, applying the tag's whitespace control:
    /// `-` strips all trailing whitespace; otherwise, for block and comment tags (lstrip_blocks),
    /// spaces and tabs between the last newline (or a line start) and the tag are removed,
    /// as jinja2's `OptionalLStrip` handling in `tokeniter` does.
    private mutating func emitStripped(_ a: Int, _ b: Int, sign: UInt8, lstripAllowed: Bool) {
        var end = b
        if sign == UInt8(ascii: "-") {
            let s = text(a, b)
            var scalars = s.scalars
            while let last = scalars.last, Py.isSpace(last) { scalars.removeLast() }
            let kept = String(scalars: scalars)
            advanceLine(to: a)
            if !kept.isEmpty { tokens.append(Token(kind: .data(kept), line: line)) }
            return
        } else if sign != UInt8(ascii: "+") && lstripAllowed {
            var lpos = b
            while lpos > a, src[lpos - 1] != 0x0A { lpos -= 1 }
            if lpos > a || lineStarting {
                if src[lpos..<b].allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { end = lpos }
            }
        }
        emitData(a, end)
    }

    private mutating func emitData(_ a: Int, _ b: Int) {
        guard b > a else { return }
        advanceLine(to: a)
        tokens.append(Token(kind: .data(text(a, b)), line: line))
    }

    /// `{%(-|+|)\s*raw\s*(?:-%}\s*|%})` at `p`: returns the index after the match.
    private func matchRawBegin(_ p: Int) -> Int? {
        var i = p + 2
        if i < src.count, src[i] == UInt8(ascii: "-") || src[i] == UInt8(ascii: "+") { i += 1 }
        i += whitespaceRun(at: i)
        guard starts("raw", at: i) else { return nil }
        i += 3
        i += whitespaceRun(at: i)
        if starts("-%}", at: i) { return i + 3 + whitespaceRun(at: i + 3) }
        if starts("%}", at: i) { return i + 2 }
        return nil
    }

    /// The body of `{% raw %}` up to `{% endraw %}`, emitted as data with the usual stripping.
    private mutating func lexRaw() throws(TemplateError) {
        var p = pos
        while p < src.count {
            if starts("{%", at: p) {
                var i = p + 2
                var sign: UInt8 = 0
                if i < src.count, src[i] == UInt8(ascii: "-") || src[i] == UInt8(ascii: "+") {
                    sign = src[i]
                    i += 1
                }
                i += whitespaceRun(at: i)
                if starts("endraw", at: i) {
                    i += 6
                    i += whitespaceRun(at: i)
                    var end: Int? = nil
                    if starts("+%}", at: i) {
                        end = i + 3
                    } else if starts("-%}", at: i) {
                        end = i + 3 + whitespaceRun(at: i + 3)
                    } else if starts("%}", at: i) {
                        end = i + 2 + (starts("\n", at: i + 2) ? 1 : 0)
                    }
                    if let end {
                        emitStripped(pos, p, sign: sign, lstripAllowed: true)
                        pos = end
                        lineStarting = src[end - 1] == 0x0A
                        return
                    }
                }
            }
            p += 1
        }
        throw fail("Missing end of raw directive")
    }

    /// Comments produce no tokens; `#}` eats one newline (trim_blocks) and `-#}` all whitespace.
    private mutating func skipComment() throws(TemplateError) {
        var p = pos
        while p < src.count {
            if starts("+#}", at: p) {
                pos = p + 3
            } else if starts("-#}", at: p) {
                pos = p + 3 + whitespaceRun(at: p + 3)
            } else if starts("#}", at: p) {
                pos = p + 2 + (starts("\n", at: p + 2) ? 1 : 0)
            } else {
                p += 1
                continue
            }
            lineStarting = src[pos - 1] == 0x0A
            return
        }
        throw fail("Missing end of comment tag")
    }

    private static let twoCharOps: Set<String> = ["//", "**", "==", "!=", ">=", "<="]
    private static let oneCharOps: Set<UInt8> = Set("+-/*%~[](){}><=.:|,;".utf8)

    /// Tokens inside `{{ }}` or `{% %}` up to the closing delimiter. Like jinja2, the closing
    /// delimiter is only recognised outside brackets, so `{{ {'a': {'b': 1}} }}` lexes.
    private mutating func lexTag(endMarker: String) throws(TemplateError) {
        var brackets: [UInt8] = []
        let endChar = endMarker.utf8.first ?? 0
        while true {
            guard pos < src.count else { throw fail("unexpected end of template, expected '\(endMarker)'") }
            advanceLine(to: pos)
            if brackets.isEmpty {
                var end: Int? = nil
                if endChar == UInt8(ascii: "%") && starts("+%}", at: pos) {
                    end = pos + 3
                } else if starts("-" + endMarker, at: pos) {
                    end = pos + 3 + whitespaceRun(at: pos + 3)
                } else if starts(endMarker, at: pos) {
                    end = pos + 2
                    if endChar == UInt8(ascii: "%") && starts("\n", at: pos + 2) { end = pos + 3 }
                }
                if let end {
                    tokens.append(Token(kind: endChar == UInt8(ascii: "%") ? .blockEnd : .variableEnd, line: line))
                    pos = end
                    lineStarting = src[end - 1] == 0x0A
                    return
                }
            }
            let c = src[pos]
            let ws = whitespaceRun(at: pos)
            if ws > 0 {
                pos += ws
                continue
            }
            if c >= 0x30 && c <= 0x39 {
                try lexNumber()
            } else if c == UInt8(ascii: "_") || (c | 0x20 >= 0x61 && c | 0x20 <= 0x7A) {
                let start = pos
                while pos < src.count {
                    let d = src[pos]
                    guard d == UInt8(ascii: "_") || (d | 0x20 >= 0x61 && d | 0x20 <= 0x7A) || (d >= 0x30 && d <= 0x39)
                    else { break }
                    pos += 1
                }
                tokens.append(Token(kind: .name(text(start, pos)), line: line))
            } else if c == UInt8(ascii: "'") || c == UInt8(ascii: "\"") {
                try lexString(quote: c)
            } else {
                let op: String
                if pos + 1 < src.count, Self.twoCharOps.contains(text(pos, pos + 2)) {
                    op = text(pos, pos + 2)
                } else if Self.oneCharOps.contains(c) {
                    op = text(pos, pos + 1)
                } else {
                    let bad = String(decoding: src[pos..<min(pos + 4, src.count)], as: UTF8.self).prefix(1)
                    throw fail("unexpected char '\(bad)'")
                }
                switch op {
                case "(", "[", "{": brackets.append(c)
                case ")", "]", "}":
                    let expected: UInt8 =
                        c == UInt8(ascii: ")") ? UInt8(ascii: "(") : c == UInt8(ascii: "]") ? UInt8(ascii: "[") : UInt8(ascii: "{")
                    guard let open = brackets.popLast() else { throw fail("unexpected '\(op)'") }
                    if open != expected { throw fail("unexpected '\(op)'") }
                default: break
                }
                pos += op.utf8.count
                tokens.append(Token(kind: .op(op), line: line))
            }
        }
    }

    /// jinja2's `float_re` (tried first) and `integer_re`, with `_` digit separators.
    private mutating func lexNumber() throws(TemplateError) {
        func digits(_ p: Int) -> Int {  // `(\d+_)*\d+`, returns end or p when no match
            var i = p
            var end = p
            while i < src.count, src[i] >= 0x30 && src[i] <= 0x39 {
                i += 1
                end = i
                if i < src.count, src[i] == UInt8(ascii: "_"), i + 1 < src.count, src[i + 1] >= 0x30 && src[i + 1] <= 0x39 {
                    i += 1
                }
            }
            return end
        }
        let start = pos
        let afterDot = start > 0 && src[start - 1] == UInt8(ascii: ".")
        let intEnd = digits(start)
        var floatEnd: Int? = nil
        if !afterDot {
            var p = intEnd
            var hasFraction = false
            if p < src.count, src[p] == UInt8(ascii: "."), digits(p + 1) > p + 1 {
                p = digits(p + 1)
                hasFraction = true
            }
            if p < src.count, src[p] | 0x20 == UInt8(ascii: "e") {
                var q = p + 1
                if q < src.count, src[q] == UInt8(ascii: "+") || src[q] == UInt8(ascii: "-") { q += 1 }
                let e = digits(q)
                if e > q { floatEnd = e } else if hasFraction { floatEnd = p }
            } else if hasFraction {
                floatEnd = p
            }
        }
        if let floatEnd {
            let t = text(start, floatEnd).filter { $0 != "_" }
            guard let d = Double(t) else { throw fail("invalid float literal") }
            tokens.append(Token(kind: .float(d), line: line))
            pos = floatEnd
            return
        }
        // integer_re: 0b/0o/0x prefixes, `[1-9](_?\d)*`, or `0(_?0)*`.
        if src[start] == UInt8(ascii: "0"), start + 1 < src.count {
            let p = src[start + 1] | 0x20
            let radix = p == UInt8(ascii: "b") ? 2 : p == UInt8(ascii: "o") ? 8 : p == UInt8(ascii: "x") ? 16 : 0
            if radix != 0 {
                var i = start + 2
                var body = ""
                while i < src.count {
                    var j = i
                    if src[j] == UInt8(ascii: "_") { j += 1 }
                    guard j < src.count, let dv = Int(String(UnicodeScalar(src[j])), radix: radix), dv >= 0 else { break }
                    body.append(Character(UnicodeScalar(src[j])))
                    i = j + 1
                }
                if !body.isEmpty {
                    guard let v = Int(body, radix: radix) else { throw .unsupported("integer literal beyond 64 bits", line: line) }
                    tokens.append(Token(kind: .integer(v), line: line))
                    pos = i
                    return
                }
            }
        }
        var end = start + 1
        if src[start] == UInt8(ascii: "0") {
            while end < src.count {
                if src[end] == UInt8(ascii: "0") { end += 1 } else if src[end] == UInt8(ascii: "_"), end + 1 < src.count, src[end + 1] == UInt8(ascii: "0") { end += 2 } else { break }
            }
        } else {
            end = intEnd
        }
        let t = text(start, end).filter { $0 != "_" }
        guard let v = Int(t) else { throw .unsupported("integer literal \(t) beyond 64 bits", line: line) }
        tokens.append(Token(kind: .integer(v), line: line))
        pos = end
    }

    /// A quoted string; its body is decoded like Python's `unicode-escape` codec, as jinja2 does.
    private mutating func lexString(quote: UInt8) throws(TemplateError) {
        var i = pos + 1
        while i < src.count, src[i] != quote {
            i += src[i] == UInt8(ascii: "\\") ? 2 : 1
        }
        guard i < src.count else { throw fail("unexpected char '\(String(UnicodeScalar(quote)))'") }
        let body = text(pos + 1, i).scalars
        let tokenLine = line
        pos = i + 1
        tokens.append(Token(kind: .string(try Self.unescape(body, line: tokenLine)), line: tokenLine))
    }

    static func unescape(_ s: [Unicode.Scalar], line: Int) throws(TemplateError) -> String {
        var out = String.UnicodeScalarView()
        var i = 0
        func hexValue(_ count: Int) throws(TemplateError) -> Unicode.Scalar {
            guard i + count <= s.count else { throw .syntax("truncated \\x/\\u escape in string literal", line: line) }
            let h = String(scalars: s[i..<(i + count)])
            guard let v = UInt32(h, radix: 16), h.allSatisfy(\.isHexDigit), let c = Unicode.Scalar(v) else {
                throw .syntax("invalid escape in string literal", line: line)
            }
            i += count
            return c
        }
        while i < s.count {
            let c = s[i]
            i += 1
            guard c == "\\", i < s.count else {
                out.append(c)
                continue
            }
            let e = s[i]
            i += 1
            switch e {
            case "\n": break
            case "\\", "'", "\"": out.append(e)
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "n": out.append("\n")
            case "r": out.append("\r")
            case "t": out.append("\t")
            case "v": out.append("\u{0B}")
            case "x": out.append(try hexValue(2))
            case "u": out.append(try hexValue(4))
            case "U": out.append(try hexValue(8))
            case "0"..."7":
                var v = e.value - 0x30
                var n = 1
                while n < 3, i < s.count, ("0"..."7").contains(s[i]) {
                    v = v * 8 + (s[i].value - 0x30)
                    i += 1
                    n += 1
                }
                if let c = Unicode.Scalar(v) { out.append(c) }
            case "N": throw .unsupported("\\N{...} escape in string literal", line: line)
            default:
                out.append("\\")
                out.append(e)
            }
        }
        return String(out)
    }
}
