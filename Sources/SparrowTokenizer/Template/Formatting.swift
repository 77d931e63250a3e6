import Foundation

/// Python string formatting: `fmt % args` (and the `format` filter) and `str.format`.
extension Interpreter {
    /// Formats an int or float for `%` conversions and format specs: sign, `#` prefix, digits.
    private func numberText(_ value: JinjaValue, _ conversion: Unicode.Scalar, precision: Int?, alternate: Bool) throws(TemplateError) -> (negative: Bool, body: String) {
        guard let number = Py.number(value) else {
            throw error("%\(conversion) format: a real number is required, not \(Py.typeName(value))")
        }
        switch conversion {
        case "d", "i", "u", "x", "X", "o", "b":
            let i: Int
            switch number {
            case .int(let v): i = v
            case .double(let d):
                guard conversion == "d" || conversion == "i" || conversion == "u" else {
                    throw error("%\(conversion) format: an integer is required, not float")
                }
                guard d.isFinite, let v = Int(exactly: d.rounded(.towardZero)) else { throw unsupported("formatting \(d) as an integer") }
                i = v
            }
            let radix = conversion == "o" ? 8 : conversion == "b" ? 2 : (conversion == "x" || conversion == "X") ? 16 : 10
            var digits = String(i.magnitude, radix: radix, uppercase: conversion == "X")
            if alternate && radix != 10 {
                let prefix = conversion == "o" ? "0o" : conversion == "b" ? "0b" : conversion == "X" ? "0X" : "0x"
                digits = prefix + digits
            }
            return (i < 0, digits)
        default:
            let d = number.asDouble
            guard "eEfFgG%".unicodeScalars.contains(conversion) else { throw unsupported("format type '\(conversion)'") }
            if conversion == "%" {
                let text = String(format: "%\(alternate ? "#" : "").\(precision ?? 6)f", (d * 100).magnitude)
                return (d.sign == .minus && !d.isNaN, text + "%")
            }
            let text = String(format: "%\(alternate ? "#" : "").\(precision ?? 6)\(conversion)", d.magnitude)
            return (d.sign == .minus && !d.isNaN, text)
        }
    }

    /// Widths and precisions past this are refused instead of building huge strings.
    static let maxWidth = 10_000

    /// Reads a run of decimal digits at `i` (a width or precision), refusing absurd values.
    private func digitRun(_ f: [Unicode.Scalar], _ i: inout Int) throws(TemplateError) -> Int {
        var value = 0
        while i < f.count, let v = Int(String(f[i])), f[i].isASCII {
            value = value * 10 + v
            if value > Self.maxWidth { throw unsupported("format width or precision above \(Self.maxWidth)") }
            i += 1
        }
        return value
    }

    private static func pad(_ text: String, width: Int, left: Bool, fill: Unicode.Scalar = " ") -> String {
        let n = text.unicodeScalars.count
        guard width > n else { return text }
        let padding = String(String.UnicodeScalarView(repeatElement(fill, count: width - n)))
        return left ? text + padding : padding + text
    }

    /// Python's printf-style `%` operator on a str.
    func percentFormat(_ format: String, _ args: JinjaValue) throws(TemplateError) -> String {
        let f = format.scalars
        var positional: [JinjaValue]
        var mapping: JinjaDict? = nil
        // CPython treats any non-tuple, non-str argument with __getitem__ as a mapping, and then
        // does not complain about arguments left unused.
        var mappingLike = false
        switch args {
        case .tuple(let items): positional = items
        case .dict(let d):
            positional = [args]
            mapping = d
            mappingLike = true
        case .list, .undefined:
            positional = [args]
            mappingLike = true
        case .object(let o):
            positional = [args]
            if case .iterable(_, .range, _) = o.kind { mappingLike = true }
        default: positional = [args]
        }
        var argIndex = 0
        func nextArgument() throws(TemplateError) -> JinjaValue {
            guard argIndex < positional.count else { throw error("not enough arguments for format string") }
            argIndex += 1
            return positional[argIndex - 1]
        }
        var out = ""
        var i = 0
        while i < f.count {
            let c = f[i]
            i += 1
            guard c == "%" else {
                out.unicodeScalars.append(c)
                continue
            }
            guard i < f.count else { throw error("incomplete format") }
            var key: String? = nil
            if f[i] == "(" {
                var depth = 1
                var j = i + 1
                while j < f.count && depth > 0 {
                    if f[j] == "(" { depth += 1 } else if f[j] == ")" { depth -= 1 }
                    j += 1
                }
                guard depth == 0 else { throw error("incomplete format key") }
                key = String(scalars: f[(i + 1)..<(j - 1)])
                i = j
            }
            var leftAlign = false, zero = false, plus = false, space = false, alternate = false
            while i < f.count, "-+ #0".unicodeScalars.contains(f[i]) {
                switch f[i] {
                case "-": leftAlign = true
                case "+": plus = true
                case " ": space = true
                case "#": alternate = true
                default: zero = true
                }
                i += 1
            }
            var width = 0
            if i < f.count, f[i] == "*" {
                width = try intArg(try nextArgument(), 0, "* width")
                if width < 0 {
                    leftAlign = true
                    width = width == Int.min ? 0 : -width
                }
                if width > Self.maxWidth { throw unsupported("format width above \(Self.maxWidth)") }
                i += 1
            } else {
                width = try digitRun(f, &i)
            }
            var precision: Int? = nil
            if i < f.count, f[i] == "." {
                i += 1
                if i < f.count, f[i] == "*" {
                    let p = try intArg(try nextArgument(), 0, "* precision")
                    if p > Self.maxWidth { throw unsupported("format precision above \(Self.maxWidth)") }
                    precision = max(p, 0)
                    i += 1
                } else {
                    precision = try digitRun(f, &i)
                }
            }
            while i < f.count, "hlL".unicodeScalars.contains(f[i]) { i += 1 }
            guard i < f.count else { throw error("incomplete format") }
            let conversion = f[i]
            i += 1
            if conversion == "%" {
                out += "%"
                continue
            }
            let value: JinjaValue
            if let key {
                guard let m = mapping else { throw error("format requires a mapping") }
                guard case .found(let v) = m.lookup(.string(key)) else { throw error("KeyError: \(Py.stringRepr(key))") }
                value = v
            } else {
                value = try nextArgument()
            }
            var text: String
            switch conversion {
            case "s", "r", "a":
                text = conversion == "s" ? try str(value) : try repr(value)
                if conversion == "a", !text.unicodeScalars.allSatisfy(\.isASCII) { throw unsupported("%a of non-ASCII text") }
                if let precision { text = String(scalars: text.scalars.prefix(precision)) }
                out += Self.pad(text, width: width, left: leftAlign)
                continue
            case "c":
                if case .string(let s) = value, s.unicodeScalars.count == 1 {
                    text = s
                } else if let code = intIndex(value), code >= 0, let u = UInt32(exactly: code), let scalar = Unicode.Scalar(u) {
                    text = String(scalar)
                } else {
                    throw error("%c requires int or char")
                }
                out += Self.pad(text, width: width, left: leftAlign)
                continue
            default:
                guard "diuxXoeEfFgG".unicodeScalars.contains(conversion) else {
                    throw error("unsupported format character '\(conversion)'")
                }
            }
            let (negative, body) = try numberText(value, conversion, precision: "diuxXo".unicodeScalars.contains(conversion) ? nil : precision, alternate: alternate)
            var digits = body
            if let precision, "diuxXo".unicodeScalars.contains(conversion), digits.count < precision {
                digits = String(repeating: "0", count: precision - digits.count) + digits
            }
            let sign = negative ? "-" : plus ? "+" : space ? " " : ""
            if zero && !leftAlign && (sign + digits).count < width {
                digits = String(repeating: "0", count: width - (sign + digits).count) + digits
            }
            out += Self.pad(sign + digits, width: width, left: leftAlign)
        }
        if !mappingLike && argIndex < positional.count { throw error("not all arguments converted during string formatting") }
        return out
    }

    /// `str.format`, through jinja2's sandboxed formatter (field lookups use jinja2's getattr/getitem).
    func strFormat(_ format: String, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws(TemplateError) -> String {
        let f = format.scalars
        var out = ""
        var autoIndex = 0
        var usedManual = false, usedAuto = false
        var i = 0
        while i < f.count {
            let c = f[i]
            if c == "}" {
                guard i + 1 < f.count, f[i + 1] == "}" else { throw error("Single '}' encountered in format string") }
                out += "}"
                i += 2
                continue
            }
            guard c == "{" else {
                out.unicodeScalars.append(c)
                i += 1
                continue
            }
            if i + 1 < f.count, f[i + 1] == "{" {
                out += "{"
                i += 2
                continue
            }
            guard let close = f[(i + 1)...].firstIndex(of: "}") else { throw error("Single '{' encountered in format string") }
            let field = Array(f[(i + 1)..<close])
            if field.contains("{") { throw unsupported("nested replacement fields in str.format") }
            i = close + 1
            var name = field
            var conversion: Unicode.Scalar? = nil
            var spec: [Unicode.Scalar] = []
            if let colon = name.firstIndex(of: ":") {
                spec = Array(name[(colon + 1)...])
                name = Array(name[..<colon])
            }
            if let bang = name.firstIndex(of: "!") {
                guard bang + 2 == name.count else { throw error("expected ':' after conversion specifier") }
                conversion = name[bang + 1]
                name = Array(name[..<bang])
            }
            // The first part names the argument; then `.attr` and `[key]` parts follow.
            let firstEnd = name.firstIndex { $0 == "." || $0 == "[" } ?? name.count
            let head = String(scalars: name[..<firstEnd])
            var value: JinjaValue
            if head.isEmpty {
                if usedManual { throw error("cannot switch from manual field specification to automatic field numbering") }
                usedAuto = true
                guard autoIndex < args.count else { throw error("Replacement index \(autoIndex) out of range for positional args tuple") }
                value = args[autoIndex]
                autoIndex += 1
            } else if let n = Int(head) {
                if usedAuto { throw error("cannot switch from automatic field numbering to manual field specification") }
                usedManual = true
                guard n >= 0, n < args.count else { throw error("Replacement index \(n) out of range for positional args tuple") }
                value = args[n]
            } else {
                guard let kw = kwargs.first(where: { $0.0 == head }) else { throw error("KeyError: \(Py.stringRepr(head))") }
                value = kw.1
            }
            var rest = name[firstEnd...]
            while let first = rest.first {
                rest = rest.dropFirst()
                if first == "." {
                    let end = rest.firstIndex { $0 == "." || $0 == "[" } ?? rest.endIndex
                    value = try getattr(value, String(scalars: rest[..<end]))
                    rest = rest[end...]
                } else {
                    guard let end = rest.firstIndex(of: "]") else { throw error("Missing ']' in format string") }
                    let key = String(scalars: rest[..<end])
                    value = try getitem(value, Int(key).map { .int($0) } ?? .string(key))
                    rest = rest[(end + 1)...]
                }
            }
            switch conversion {
            case nil: break
            case "s": value = .string(try str(value))
            case "r": value = .string(try repr(value))
            default: throw unsupported("conversion '!\(conversion.map { String($0) } ?? "")' in str.format")
            }
            out += try formatSpec(value, spec)
        }
        return out
    }

    /// Python's `format(value, spec)` for the common parts of the mini-language.
    private func formatSpec(_ value: JinjaValue, _ spec: [Unicode.Scalar]) throws(TemplateError) -> String {
        if spec.isEmpty { return try str(value) }
        var i = 0
        var fill: Unicode.Scalar = " "
        var align: Unicode.Scalar? = nil
        if spec.count >= 2, "<>^=".unicodeScalars.contains(spec[1]) {
            fill = spec[0]
            align = spec[1]
            i = 2
        } else if "<>^=".unicodeScalars.contains(spec[0]) {
            align = spec[0]
            i = 1
        }
        var sign: Unicode.Scalar = "-"
        if i < spec.count, "+- ".unicodeScalars.contains(spec[i]) {
            sign = spec[i]
            i += 1
        }
        var alternate = false
        if i < spec.count, spec[i] == "#" {
            alternate = true
            i += 1
        }
        if i < spec.count, spec[i] == "0" {
            if align == nil {
                fill = "0"
                align = "="
            }
            i += 1
        }
        let width = try digitRun(spec, &i)
        var precision: Int? = nil
        if i < spec.count, spec[i] == "." {
            i += 1
            precision = try digitRun(spec, &i)
        }
        let type: Unicode.Scalar? = i < spec.count ? spec[i] : nil
        if type != nil { i += 1 }
        guard i == spec.count else { throw unsupported("format spec '\(String(scalars: spec))'") }

        func aligned(_ text: String, defaultAlign: Unicode.Scalar, signPart: String = "") throws(TemplateError) -> String {
            let n = (signPart + text).unicodeScalars.count
            guard width > n else { return signPart + text }
            let padCount = width - n
            let padding = { (k: Int) in String(String.UnicodeScalarView(repeatElement(fill, count: k))) }
            switch align ?? defaultAlign {
            case "<": return signPart + text + padding(padCount)
            case "^": return padding(padCount / 2) + signPart + text + padding(padCount - padCount / 2)
            case "=": return signPart + padding(padCount) + text
            default: return padding(padCount) + signPart + text
            }
        }

        switch value {
        case .string(let s), .markup(let s):
            guard type == nil || type == "s", sign == "-", !alternate, align != "=" else {
                throw error("Unknown format code for object of type 'str'")
            }
            let text = precision.map { String(scalars: s.scalars.prefix($0)) } ?? s
            return try aligned(text, defaultAlign: "<")
        case .int, .bool, .double:
            if type == nil, precision == nil, case .bool = value { return try aligned(try str(value), defaultAlign: "<") }
            var conversion = type
            if conversion == nil {
                guard precision == nil else { throw unsupported("format spec '\(String(scalars: spec))'") }
                if case .double(let d) = value {
                    let text = Py.floatRepr(d.magnitude)
                    let signPart = d.sign == .minus ? "-" : sign == "+" ? "+" : sign == " " ? " " : ""
                    return try aligned(text, defaultAlign: ">", signPart: signPart)
                }
                conversion = "d"
            }
            guard let conversion, "dxXobeEfFgG%".unicodeScalars.contains(conversion) else {
                throw unsupported("format spec '\(String(scalars: spec))'")
            }
            if case .double = value, "dxXob".unicodeScalars.contains(conversion) {
                throw error("Unknown format code '\(conversion)' for object of type 'float'")
            }
            let (negative, body) = try numberText(value, conversion, precision: precision, alternate: alternate)
            let signPart = negative ? "-" : sign == "+" ? "+" : sign == " " ? " " : ""
            return try aligned(body, defaultAlign: ">", signPart: signPart)
        default:
            throw error("unsupported format string passed to \(Py.typeName(value)).__format__")
        }
    }
}
