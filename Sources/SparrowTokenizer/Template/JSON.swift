/// JSON in and out, matching Python's `json` module: parsing keeps object key order (Python
/// dicts are ordered, and `tojson` must print keys as the request gave them), and serialising
/// reproduces `json.dumps(x, ensure_ascii=..., indent=..., separators=..., sort_keys=...)`.
extension JinjaValue {
    /// Parses a JSON document as Python's `json.loads` would: objects become ordered dicts
    /// (a repeated key keeps its first position and last value), integers `int`, other numbers
    /// `float`; `NaN`, `Infinity` and `-Infinity` are accepted as Python accepts them.
    public static func parseJSON(_ text: String) throws(TemplateError) -> JinjaValue {
        var parser = JSONParser(bytes: Array(text.utf8))
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        if parser.pos != parser.bytes.count { throw parser.error("extra data after the JSON value") }
        return value
    }
}

struct JSONParser {
    let bytes: [UInt8]
    var pos = 0
    /// Python's json module stops at its recursion limit too; this keeps the Swift stack safe.
    static let maxDepth = 256

    init(bytes: [UInt8]) { self.bytes = bytes }

    func error(_ message: String) -> TemplateError { .invalidJSON(message, offset: pos) }

    mutating func skipWhitespace() {
        while pos < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[pos]) { pos += 1 }
    }

    mutating func parseValue(depth: Int) throws(TemplateError) -> JinjaValue {
        guard depth < Self.maxDepth else { throw error("nesting too deep") }
        guard pos < bytes.count else { throw error("expecting value") }
        switch bytes[pos] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectWord("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectWord("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectWord("null"); return .null
        case UInt8(ascii: "N"): try expectWord("NaN"); return .double(.nan)
        case UInt8(ascii: "I"): try expectWord("Infinity"); return .double(.infinity)
        default: return try parseNumber()
        }
    }

    mutating func expectWord(_ word: String) throws(TemplateError) {
        let w = Array(word.utf8)
        guard pos + w.count <= bytes.count, Array(bytes[pos..<(pos + w.count)]) == w else {
            throw error("expecting value")
        }
        pos += w.count
    }

    mutating func parseObject(depth: Int) throws(TemplateError) -> JinjaValue {
        pos += 1
        var dict = JinjaDict()
        skipWhitespace()
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") {
            pos += 1
            return .dict(dict)
        }
        while true {
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else {
                throw error("expecting property name enclosed in double quotes")
            }
            let key = try parseString()
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else { throw error("expecting ':' delimiter") }
            pos += 1
            skipWhitespace()
            let value = try parseValue(depth: depth + 1)
            dict.store(.string(key), value)
            skipWhitespace()
            guard pos < bytes.count else { throw error("unterminated object") }
            if bytes[pos] == UInt8(ascii: ",") {
                pos += 1
                continue
            }
            if bytes[pos] == UInt8(ascii: "}") {
                pos += 1
                return .dict(dict)
            }
            throw error("expecting ',' delimiter")
        }
    }

    mutating func parseArray(depth: Int) throws(TemplateError) -> JinjaValue {
        pos += 1
        var items: [JinjaValue] = []
        skipWhitespace()
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") {
            pos += 1
            return .list(items)
        }
        while true {
            skipWhitespace()
            items.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            guard pos < bytes.count else { throw error("unterminated array") }
            if bytes[pos] == UInt8(ascii: ",") {
                pos += 1
                continue
            }
            if bytes[pos] == UInt8(ascii: "]") {
                pos += 1
                return .list(items)
            }
            throw error("expecting ',' delimiter")
        }
    }

    mutating func parseString() throws(TemplateError) -> String {
        pos += 1  // opening quote
        var out = String.UnicodeScalarView()
        var runStart = pos
        func flush(_ end: Int, into out: inout String.UnicodeScalarView) {
            if end > runStart { out.append(contentsOf: String(decoding: bytes[runStart..<end], as: UTF8.self).unicodeScalars) }
        }
        while true {
            guard pos < bytes.count else { throw error("unterminated string") }
            let b = bytes[pos]
            if b == UInt8(ascii: "\"") {
                flush(pos, into: &out)
                pos += 1
                return String(out)
            }
            if b < 0x20 { throw error("invalid control character in string") }
            if b != UInt8(ascii: "\\") {
                pos += 1
                continue
            }
            flush(pos, into: &out)
            pos += 1
            guard pos < bytes.count else { throw error("unterminated string") }
            let e = bytes[pos]
            pos += 1
            switch e {
            case UInt8(ascii: "\""): out.append("\"")
            case UInt8(ascii: "\\"): out.append("\\")
            case UInt8(ascii: "/"): out.append("/")
            case UInt8(ascii: "b"): out.append("\u{08}")
            case UInt8(ascii: "f"): out.append("\u{0C}")
            case UInt8(ascii: "n"): out.append("\n")
            case UInt8(ascii: "r"): out.append("\r")
            case UInt8(ascii: "t"): out.append("\t")
            case UInt8(ascii: "u"):
                var code = try parseHex4()
                if (0xD800...0xDBFF).contains(code), pos + 1 < bytes.count, bytes[pos] == UInt8(ascii: "\\"),
                    bytes[pos + 1] == UInt8(ascii: "u")
                {
                    let save = pos
                    pos += 2
                    let low = try parseHex4()
                    if (0xDC00...0xDFFF).contains(low) {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        pos = save
                    }
                }
                // Python keeps a lone surrogate in the str; Swift strings cannot hold one.
                guard let scalar = Unicode.Scalar(code) else {
                    throw .unsupported("lone UTF-16 surrogate \\u\(Py.hex(code, width: 4)) in JSON string", line: 0)
                }
                out.append(scalar)
            default: throw error("invalid \\escape")
            }
            runStart = pos
        }
    }

    mutating func parseHex4() throws(TemplateError) -> UInt32 {
        guard pos + 4 <= bytes.count else { throw error("invalid \\uXXXX escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[pos]
            let d: UInt32
            switch b {
            case 0x30...0x39: d = UInt32(b - 0x30)
            case 0x41...0x46: d = UInt32(b - 0x41 + 10)
            case 0x61...0x66: d = UInt32(b - 0x61 + 10)
            default: throw error("invalid \\uXXXX escape")
            }
            v = v * 16 + d
            pos += 1
        }
        return v
    }

    mutating func parseNumber() throws(TemplateError) -> JinjaValue {
        let start = pos
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "-") {
            pos += 1
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "I") {
                try expectWord("Infinity")
                return .double(-.infinity)
            }
        }
        func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
        guard pos < bytes.count, isDigit(bytes[pos]) else {
            pos = start
            throw error("expecting value")
        }
        if bytes[pos] == UInt8(ascii: "0") { pos += 1 } else { while pos < bytes.count, isDigit(bytes[pos]) { pos += 1 } }
        var isFloat = false
        if pos + 1 < bytes.count, bytes[pos] == UInt8(ascii: "."), isDigit(bytes[pos + 1]) {
            isFloat = true
            pos += 1
            while pos < bytes.count, isDigit(bytes[pos]) { pos += 1 }
        }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
            var p = pos + 1
            if p < bytes.count, bytes[p] == UInt8(ascii: "+") || bytes[p] == UInt8(ascii: "-") { p += 1 }
            if p < bytes.count, isDigit(bytes[p]) {
                isFloat = true
                pos = p
                while pos < bytes.count, isDigit(bytes[pos]) { pos += 1 }
            }
        }
        let text = String(decoding: bytes[start..<pos], as: UTF8.self)
        if !isFloat {
            if let i = Int(text) { return .int(i) }
            throw .unsupported("JSON integer \(text) does not fit in 64 bits", line: 0)
        }
        guard let d = Double(text) else { throw error("invalid number") }
        return .double(d)
    }
}

/// `json.dumps` options as transformers' `tojson` filter passes them.
struct JSONDumpOptions {
    var ensureASCII = false
    /// nil: no pretty printing. Otherwise the indent unit (`" " * n` for an int indent).
    var indent: String? = nil
    var itemSeparator = ", "
    var keySeparator = ": "
    var sortKeys = false
}

enum JSONDumper {
    enum Failure: Error { case notSerializable(String), badKey(String), circular }

    static func dumps(_ value: JinjaValue, _ options: JSONDumpOptions) throws(Failure) -> String {
        var out = ""
        try write(value, options, level: 0, into: &out)
        return out
    }

    static func write(_ value: JinjaValue, _ o: JSONDumpOptions, level: Int, into out: inout String) throws(Failure) {
        if level > 1000 { throw .circular }
        switch value {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += floatJSON(d)
        case .string(let s), .markup(let s): writeString(s, ascii: o.ensureASCII, into: &out)
        case .list(let items), .tuple(let items):
            if items.isEmpty {
                out += "[]"
                return
            }
            out += "["
            let (first, sep, close) = layout(o, level: level)
            out += first
            for (i, item) in items.enumerated() {
                if i > 0 { out += sep }
                try write(item, o, level: level + 1, into: &out)
            }
            out += close + "]"
        case .dict(let dict):
            if dict.isEmpty {
                out += "{}"
                return
            }
            var entries: [(String, JinjaValue)] = []
            for (k, v) in dict.pairs { entries.append((try keyString(k), v)) }
            if o.sortKeys {
                entries = mergeSorted(entries) { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) }
            }
            out += "{"
            let (first, sep, close) = layout(o, level: level)
            out += first
            for (i, (k, v)) in entries.enumerated() {
                if i > 0 { out += sep }
                writeString(k, ascii: o.ensureASCII, into: &out)
                out += o.keySeparator
                try write(v, o, level: level + 1, into: &out)
            }
            out += close + "}"
        case .undefined, .object:
            throw .notSerializable(Py.typeName(value))
        }
    }

    /// Opening text, item separator and closing text for a container at `level`, as
    /// `json.encoder._make_iterencode` lays them out.
    static func layout(_ o: JSONDumpOptions, level: Int) -> (String, String, String) {
        guard let unit = o.indent else { return ("", o.itemSeparator, "") }
        let inner = "\n" + String(repeating: unit, count: level + 1)
        let outer = "\n" + String(repeating: unit, count: level)
        return (inner, o.itemSeparator + inner, outer)
    }

    /// Dict keys as json.dumps converts them: str as is, numbers by repr, bool/None as JSON words.
    static func keyString(_ k: JinjaValue) throws(Failure) -> String {
        switch k {
        case .string(let s), .markup(let s): return s
        case .int(let i): return String(i)
        case .double(let d): return floatJSON(d)
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        default: throw .badKey(Py.typeName(k))
        }
    }

    static func floatJSON(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
        return Py.floatRepr(d)
    }

    /// `json.encoder.py_encode_basestring(_ascii)`.
    static func writeString(_ s: String, ascii: Bool, into out: inout String) {
        out += "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if c.value < 0x20 {
                    out += "\\u" + Py.hex(c.value, width: 4)
                } else if ascii && c.value > 0x7E {
                    if c.value > 0xFFFF {
                        let v = c.value - 0x10000
                        out += "\\u" + Py.hex(0xD800 + (v >> 10), width: 4) + "\\u" + Py.hex(0xDC00 + (v & 0x3FF), width: 4)
                    } else {
                        out += "\\u" + Py.hex(c.value, width: 4)
                    }
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        out += "\""
    }
}

/// A stable merge sort whose comparator may throw a typed error (Python's sort is stable).
func mergeSorted<T, E: Error>(_ items: [T], by less: (T, T) throws(E) -> Bool) throws(E) -> [T] {
    if items.count < 2 { return items }
    let mid = items.count / 2
    let left = try mergeSorted(Array(items[..<mid]), by: less)
    let right = try mergeSorted(Array(items[mid...]), by: less)
    var out: [T] = []
    out.reserveCapacity(items.count)
    var i = 0, j = 0
    while i < left.count, j < right.count {
        // Take from the right only when strictly less, which keeps equal items in order.
        if try less(right[j], left[i]) {
            out.append(right[j])
            j += 1
        } else {
            out.append(left[i])
            i += 1
        }
    }
    out.append(contentsOf: left[i...])
    out.append(contentsOf: right[j...])
    return out
}
