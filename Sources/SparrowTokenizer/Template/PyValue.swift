/// Python semantics for `JinjaValue`: type names, truthiness, `str()`/`repr()`, `==` and ordering.
/// jinja2 delegates all of these to Python, so we mirror CPython 3 behaviour here.
enum Py {
    /// `type(x).__name__`, used in error messages.
    static func typeName(_ v: JinjaValue) -> String {
        switch v {
        case .undefined: return "Undefined"
        case .null: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .markup: return "Markup"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .object(let o):
            switch o.kind {
            case .namespace: return "Namespace"
            case .macro: return "Macro"
            case .loop: return "LoopContext"
            case .function: return "function"
            case .method: return "builtin_function_or_method"
            case .iterable(_, let type, _): return type.pythonName
            }
        }
    }

    /// Python truthiness (`bool(x)`); jinja2's `Undefined` is falsy.
    static func truthy(_ v: JinjaValue) -> Bool {
        switch v {
        case .undefined, .null: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s), .markup(let s): return !s.isEmpty
        case .list(let a), .tuple(let a): return !a.isEmpty
        case .dict(let d): return !d.isEmpty
        case .object(let o):
            if case .iterable(_, let type, let count) = o.kind { return type.isIterator || count > 0 }
            return true
        }
    }

    // MARK: - Numbers

    /// The numeric value of bool/int/float, as Python's numeric tower sees it.
    enum Number { case int(Int), double(Double) }

    static func number(_ v: JinjaValue) -> Number? {
        switch v {
        case .bool(let b): return .int(b ? 1 : 0)
        case .int(let i): return .int(i)
        case .double(let d): return .double(d)
        default: return nil
        }
    }

    /// `float.__repr__`: the shortest digits that round-trip, laid out as CPython does
    /// (exponent form when the decimal exponent is < -4 or >= 16, `.0` for integral values).
    static func floatRepr(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
        // Swift's description also prints the shortest round-trip digits; only the layout differs.
        let text = "\(d.magnitude)"
        var mantissa = Substring(text)
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = text[..<e]
            exponent = Int(text[text.index(after: e)...]) ?? 0
        }
        let intPart: Substring
        let fracPart: Substring
        if let dot = mantissa.firstIndex(of: ".") {
            intPart = mantissa[..<dot]
            fracPart = mantissa[mantissa.index(after: dot)...]
        } else {
            intPart = mantissa
            fracPart = ""
        }
        var digits = Array(intPart) + Array(fracPart)
        // value = 0.DIGITS × 10^decpt
        var decpt = intPart.count + exponent
        while digits.count > 1, digits.first == "0" {
            digits.removeFirst()
            decpt -= 1
        }
        while digits.count > 1, digits.last == "0" { digits.removeLast() }
        let n = digits.count
        var out = d.sign == .minus ? "-" : ""
        if decpt > -4 && decpt <= 16 {
            if decpt <= 0 {
                out += "0." + String(repeating: "0", count: -decpt) + String(digits)
            } else if decpt >= n {
                out += String(digits) + String(repeating: "0", count: decpt - n) + ".0"
            } else {
                out += String(digits[..<decpt]) + "." + String(digits[decpt...])
            }
        } else {
            out += String(digits[0])
            if n > 1 { out += "." + String(digits[1...]) }
            let e = decpt - 1
            out += e < 0 ? "e-" : "e+"
            let mag = String(e.magnitude)
            out += mag.count < 2 ? "0" + mag : mag
        }
        return out
    }

    // MARK: - str() and repr()

    /// `repr(str)`: single quotes unless the text has `'` and no `"`; escapes as CPython does.
    static func stringRepr(_ s: String) -> String {
        let quote: Unicode.Scalar = (s.contains("'") && !s.contains("\"")) ? "\"" : "'"
        var out = String(quote)
        for c in s.unicodeScalars {
            switch c {
            case quote, "\\": out += "\\" + String(c)
            case "\t": out += "\\t"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            default:
                if c.value < 0x20 || c.value == 0x7F {
                    out += "\\x" + hex(c.value, width: 2)
                } else if c.value < 0x7F || isPrintable(c) {
                    out.unicodeScalars.append(c)
                } else if c.value <= 0xFF {
                    out += "\\x" + hex(c.value, width: 2)
                } else if c.value <= 0xFFFF {
                    out += "\\u" + hex(c.value, width: 4)
                } else {
                    out += "\\U" + hex(c.value, width: 8)
                }
            }
        }
        out.unicodeScalars.append(quote)
        return out
    }

    /// `str.isprintable()` for one non-ASCII code point: not a control, format, surrogate,
    /// private-use, unassigned or separator character (CPython's `Py_UNICODE_ISPRINTABLE`).
    static func isPrintable(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator,
            .spaceSeparator:
            return c == " "
        default: return true
        }
    }

    static func hex(_ v: UInt32, width: Int) -> String {
        let s = String(v, radix: 16)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    /// `str.isspace()` for one code point: the characters CPython's `str.split()`/`strip()` and
    /// the `\s` of jinja2's regular expressions treat as whitespace.
    static func isSpace(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F,
            0x3000:
            return true
        default: return false
        }
    }

    // MARK: - Equality and ordering

    /// Python `==`: numbers compare by value across bool/int/float, strings by code points,
    /// lists and tuples never equal each other, dicts ignore order. `Undefined == Undefined`.
    static func equals(_ a: JinjaValue, _ b: JinjaValue) -> Bool {
        switch (a, b) {
        case (.undefined, .undefined), (.null, .null): return true
        case (.string(let x), .string(let y)), (.string(let x), .markup(let y)),
            (.markup(let x), .string(let y)), (.markup(let x), .markup(let y)):
            return x.utf8.elementsEqual(y.utf8)
        case (.list(let x), .list(let y)), (.tuple(let x), .tuple(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { equals($0, $1) }
        case (.dict(let x), .dict(let y)):
            guard x.count == y.count else { return false }
            for (k, v) in x.pairs {
                guard case .found(let w) = y.lookup(k), equals(v, w) else { return false }
            }
            return true
        case (.object(let x), .object(let y)):
            switch (x.kind, y.kind) {
            case (.namespace(let i), .namespace(let j)), (.macro(let i), .macro(let j)), (.loop(let i), .loop(let j)),
                (.iterable(let i, _, _), .iterable(let j, _, _)):
                return i == j
            case (.function(let f), .function(let g)): return f == g
            default: return false
            }
        default:
            guard let x = number(a), let y = number(b) else { return false }
            switch (x, y) {
            case (.int(let i), .int(let j)): return i == j
            case (.int(let i), .double(let d)), (.double(let d), .int(let i)): return Double(exactly: i) == d
            case (.double(let d), .double(let e)): return d == e
            }
        }
    }

    /// Python ordering (`<`): -1, 0 or 1; nil where Python raises `TypeError`.
    static func compare(_ a: JinjaValue, _ b: JinjaValue) -> Int? {
        switch (a, b) {
        case (.string(let x), .string(let y)), (.string(let x), .markup(let y)),
            (.markup(let x), .string(let y)), (.markup(let x), .markup(let y)):
            // UTF-8 byte order is code point order, which is how Python orders str.
            return x.utf8.lexicographicallyPrecedes(y.utf8) ? -1 : (x.utf8.elementsEqual(y.utf8) ? 0 : 1)
        case (.list(let x), .list(let y)), (.tuple(let x), .tuple(let y)):
            for (p, q) in zip(x, y) where !equals(p, q) { return compare(p, q) }
            return x.count < y.count ? -1 : (x.count == y.count ? 0 : 1)
        default:
            guard let x = number(a), let y = number(b) else { return nil }
            switch (x, y) {
            case (.int(let i), .int(let j)): return i < j ? -1 : (i == j ? 0 : 1)
            default:
                let p = x.asDouble, q = y.asDouble
                if p.isNaN || q.isNaN { return 2 }  // every comparison with NaN is false
                return p < q ? -1 : (p == q ? 0 : 1)
            }
        }
    }
}

extension Py.Number {
    var asDouble: Double {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        }
    }
}

/// Python string operations on code points (Swift `String` indexes by grapheme cluster, and
/// Python by code point, so lengths, indexes and slices go through `unicodeScalars`).
extension String {
    var scalars: [Unicode.Scalar] { Array(unicodeScalars) }

    init(scalars: some Sequence<Unicode.Scalar>) {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        self = String(view)
    }
}

extension Array where Element == Unicode.Scalar {
    /// Index of the first occurrence of `needle` at or after `from` (and ending by `end`).
    func find(_ needle: [Unicode.Scalar], from: Int = 0, end: Int? = nil) -> Int? {
        let limit = Swift.min(end ?? count, count)
        if needle.isEmpty { return from <= limit ? from : nil }
        guard limit - needle.count >= from else { return nil }
        var i = Swift.max(from, 0)
        while i + needle.count <= limit {
            if self[i] == needle[0] {
                var j = 1
                while j < needle.count, self[i + j] == needle[j] { j += 1 }
                if j == needle.count { return i }
            }
            i += 1
        }
        return nil
    }

    /// Index of the last occurrence of `needle` that lies within `from..<end`.
    func rfind(_ needle: [Unicode.Scalar], from: Int = 0, end: Int? = nil) -> Int? {
        let limit = Swift.min(end ?? count, count)
        var i = limit - needle.count
        while i >= Swift.max(from, 0) {
            if Array(self[i..<(i + needle.count)]) == needle { return i }
            i -= 1
        }
        return nil
    }
}
