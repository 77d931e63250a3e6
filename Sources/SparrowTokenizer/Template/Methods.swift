import Foundation

/// Methods of Python objects (str, dict, list, loop) and the template globals
/// (`range`, `dict`, `namespace`, `raise_exception`, `strftime_now`).
extension Interpreter {
    func callMethod(_ receiver: JinjaValue, _ name: String, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws(TemplateError) -> JinjaValue {
        switch receiver {
        case .string(let s):
            return try stringMethod(s, name, args, kwargs)
        case .markup(let s):
            // markupsafe escapes string arguments of Markup's str-returning methods and wraps the
            // results in Markup. When no argument has anything to escape, that is plain str behaviour.
            for a in args + kwargs.map({ $0.1 }) {
                let strings: [JinjaValue]
                switch a {
                case .list(let xs), .tuple(let xs): strings = xs
                default: strings = [a]
                }
                for x in strings {
                    if case .string(let t) = x, Self.htmlEscape(t) != t {
                        throw unsupported("Markup.\(name) with an argument that needs HTML escaping")
                    }
                }
            }
            return Self.markupWrapped(try stringMethod(s, name, args, kwargs))
        case .dict(let d):
            return try dictMethod(receiver, d, name, args, kwargs)
        case .list(let items), .tuple(let items):
            let a = try bind(name, ["value"], args, kwargs)
            switch name {
            case "copy": return receiver
            case "count": return .int(items.filter { Py.equals($0, a[0] ?? .missing) }.count)
            case "index":
                guard let x = a[0] else { throw error("index() takes at least 1 argument (0 given)") }
                if let i = items.firstIndex(where: { Py.equals($0, x) }) { return .int(i) }
                throw error("\(try repr(x)) is not in list")
            default: throw unsupported("method '\(name)' of \(Py.typeName(receiver))")
            }
        case .object(let o):
            if case .loop(let id) = o.kind, name == "cycle", id < loops.count {
                guard !args.isEmpty else { throw error("no items for cycling given") }
                return args[loops[id].index % args.count]
            }
            throw unsupported("method '\(name)' of \(Py.typeName(receiver))")
        default:
            throw unsupported("method '\(name)' of \(Py.typeName(receiver))")
        }
    }

    static func markupWrapped(_ v: JinjaValue) -> JinjaValue {
        switch v {
        case .string(let s): return .markup(s)
        case .list(let xs): return .list(xs.map(markupWrapped))
        case .tuple(let xs): return .tuple(xs.map(markupWrapped))
        default: return v
        }
    }

    private func dictMethod(_ receiver: JinjaValue, _ d: JinjaDict, _ name: String, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws(TemplateError) -> JinjaValue {
        switch name {
        case "items":
            _ = try bind("items", [], args, kwargs)
            return makeIterable(.dictItems, d.pairs.map { .tuple([$0.key, $0.value]) })
        case "keys":
            _ = try bind("keys", [], args, kwargs)
            return makeIterable(.dictKeys, d.keys)
        case "values":
            _ = try bind("values", [], args, kwargs)
            return makeIterable(.dictValues, d.values)
        case "get":
            guard kwargs.isEmpty else { throw error("get() takes no keyword arguments") }
            guard args.count == 1 || args.count == 2 else { throw error("get expected 1 or 2 arguments, got \(args.count)") }
            switch d.lookup(args[0]) {
            case .found(let v): return v
            case .missing: return args.count == 2 ? args[1] : .null
            case .unhashable: throw error("unhashable type: '\(Py.typeName(args[0]))'")
            }
        case "copy":
            return receiver
        default:
            throw unsupported("method '\(name)' of dict")
        }
    }

    // MARK: - str methods

    private func optionalString(_ v: JinjaValue?, _ what: String) throws(TemplateError) -> [Unicode.Scalar]? {
        guard let v, !v.isNull else { return nil }
        return try stringArg(v, what).scalars
    }

    /// Python's `start`/`end` slice arguments of find/count/startswith, resolved to a range.
    private func span(_ count: Int, _ start: JinjaValue?, _ end: JinjaValue?) throws(TemplateError) -> (Int, Int) {
        func resolve(_ v: JinjaValue?, _ fallback: Int) throws(TemplateError) -> Int {
            guard let v, !v.isNull else { return fallback }
            guard var i = intIndex(v) else { throw error("slice indices must be integers or None") }
            if i < 0 { i = max(i + count, 0) }
            return min(i, count)
        }
        return (try resolve(start, 0), try resolve(end, count))
    }

    func stringMethod(_ string: String, _ name: String, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws(TemplateError) -> JinjaValue {
        let s = string.scalars
        func strings(_ parts: [[Unicode.Scalar]]) -> JinjaValue { .list(parts.map { .string(String(scalars: $0)) }) }
        switch name {
        case "strip", "lstrip", "rstrip":
            let a = try bind(name, ["chars"], args, kwargs)
            let chars = try optionalString(a[0], "\(name) arg")
            let strip: (Unicode.Scalar) -> Bool = { c in chars.map { $0.contains(c) } ?? Py.isSpace(c) }
            var lo = 0, hi = s.count
            if name != "rstrip" { while lo < hi, strip(s[lo]) { lo += 1 } }
            if name != "lstrip" { while hi > lo, strip(s[hi - 1]) { hi -= 1 } }
            return .string(String(scalars: s[lo..<hi]))
        case "split", "rsplit":
            let a = try bind(name, ["sep", "maxsplit"], args, kwargs)
            let sep = try optionalString(a[0], "separator")
            let maxsplit = try intArg(a[1], -1, "maxsplit")
            if let sep, sep.isEmpty { throw error("empty separator") }
            let parts = name == "split" ? Self.split(s, sep, maxsplit) : Self.rsplit(s, sep, maxsplit)
            return strings(parts)
        case "splitlines":
            let a = try bind(name, ["keepends"], args, kwargs)
            return strings(Self.splitlines(s, keepends: a[0].map(Py.truthy) ?? false))
        case "replace":
            let a = try bind(name, ["old", "new", "count"], args, kwargs)
            guard let oldV = a[0], let newV = a[1] else { throw error("replace expected at least 2 arguments") }
            let old = try stringArg(oldV, "replace() argument 1").scalars
            let new = try stringArg(newV, "replace() argument 2").scalars
            var remaining = try intArg(a[2], -1, "count")
            if remaining < 0 { remaining = Int.max }
            var out: [Unicode.Scalar] = []
            var i = 0
            if old.isEmpty {
                // Python inserts `new` before every character and at the end.
                while i <= s.count {
                    if remaining > 0 {
                        out += new
                        remaining -= 1
                    }
                    if i < s.count { out.append(s[i]) }
                    i += 1
                }
                return .string(String(scalars: out))
            }
            while remaining > 0, let j = s.find(old, from: i) {
                out += s[i..<j]
                out += new
                i = j + old.count
                remaining -= 1
            }
            out += s[i...]
            return .string(String(scalars: out))
        case "startswith", "endswith":
            let a = try bind(name, ["prefix", "start", "end"], args, kwargs)
            guard let p = a[0] else { throw error("\(name)() takes at least 1 argument (0 given)") }
            let (lo, hi) = try span(s.count, a[1], a[2])
            var candidates: [[Unicode.Scalar]] = []
            if case .tuple(let items) = p {
                for item in items { candidates.append(try stringArg(item, "\(name) first arg").scalars) }
            } else {
                candidates.append(try stringArg(p, "\(name) first arg must be str or a tuple of str; it").scalars)
            }
            let window = lo <= hi ? Array(s[lo..<hi]) : []
            if lo > hi { return .bool(false) }
            return .bool(candidates.contains { c in
                name == "startswith" ? window.starts(with: c) : window.reversed().starts(with: c.reversed())
            })
        case "find", "rfind", "index", "rindex", "count":
            let a = try bind(name, ["sub", "start", "end"], args, kwargs)
            guard let subV = a[0] else { throw error("\(name)() takes at least 1 argument (0 given)") }
            let sub = try stringArg(subV, "\(name) argument").scalars
            let (lo, hi) = try span(s.count, a[1], a[2])
            if name == "count" {
                if lo > hi { return .int(0) }
                if sub.isEmpty { return .int(hi - lo + 1) }
                var n = 0
                var i = lo
                while let j = s.find(sub, from: i, end: hi) {
                    n += 1
                    i = j + sub.count
                }
                return .int(n)
            }
            let found = lo > hi ? nil : (name.hasPrefix("r") ? s.rfind(sub, from: lo, end: hi) : s.find(sub, from: lo, end: hi))
            if let found { return .int(found) }
            if name.hasSuffix("index") { throw error("substring not found") }
            return .int(-1)
        case "upper": return .string(string.uppercased())
        case "lower": return .string(string.lowercased())
        case "swapcase":
            var out = ""
            for c in s {
                if c.properties.isUppercase { out += c.properties.lowercaseMapping } else if c.properties.isLowercase { out += c.properties.uppercaseMapping } else { out.unicodeScalars.append(c) }
            }
            return .string(out)
        case "title", "capitalize":
            // CPython: titlecase after an uncased character, lowercase after a cased one;
            // capitalize titlecases only the first character.
            var out = ""
            var previousCased = false
            for (i, c) in s.enumerated() {
                let upper = name == "title" ? !previousCased : i == 0
                out += upper ? c.properties.titlecaseMapping : c.properties.lowercaseMapping
                previousCased = c.properties.isCased
            }
            return .string(out)
        case "join":
            let a = try bind(name, ["iterable"], args, kwargs)
            guard let iterable = a[0] else { throw error("join() takes exactly one argument (0 given)") }
            var parts: [String] = []
            for (i, item) in try iterate(iterable).enumerated() {
                switch item {
                case .string(let t), .markup(let t): parts.append(t)
                default: throw error("sequence item \(i): expected str instance, \(Py.typeName(item)) found")
                }
            }
            return .string(parts.joined(separator: string))
        case "format":
            return .string(try strFormat(string, args, kwargs))
        case "center", "ljust", "rjust":
            let a = try bind(name, ["width", "fillchar"], args, kwargs)
            let width = try intArg(a[0], 0, "width")
            let fill = try optionalString(a[1], "fillchar") ?? [" "]
            guard fill.count == 1 else { throw error("The fill character must be exactly one character long") }
            let pad = max(width - s.count, 0)
            var left = 0
            if name == "rjust" { left = pad } else if name == "center" { left = pad / 2 + (pad & width & 1) }
            return .string(String(scalars: Array(repeating: fill[0], count: left) + s + Array(repeating: fill[0], count: pad - left)))
        case "zfill":
            let a = try bind(name, ["width"], args, kwargs)
            let width = try intArg(a[0], 0, "width")
            guard width > s.count else { return .string(string) }
            var body = s
            var sign: [Unicode.Scalar] = []
            if let f = body.first, f == "+" || f == "-" { sign = [body.removeFirst()] }
            return .string(String(scalars: sign + Array(repeating: "0", count: width - s.count) + body))
        case "partition", "rpartition":
            let a = try bind(name, ["sep"], args, kwargs)
            guard let sepV = a[0] else { throw error("\(name)() takes exactly one argument (0 given)") }
            let sep = try stringArg(sepV, "separator").scalars
            if sep.isEmpty { throw error("empty separator") }
            let empty = JinjaValue.string("")
            guard let i = name == "partition" ? s.find(sep) : s.rfind(sep) else {
                return name == "partition" ? .tuple([.string(string), empty, empty]) : .tuple([empty, empty, .string(string)])
            }
            return .tuple([.string(String(scalars: s[..<i])), .string(String(scalars: sep)), .string(String(scalars: s[(i + sep.count)...]))])
        case "removeprefix", "removesuffix":
            let a = try bind(name, ["affix"], args, kwargs)
            guard let affixV = a[0] else { throw error("\(name)() takes exactly one argument (0 given)") }
            let affix = try stringArg(affixV, "\(name) argument").scalars
            if name == "removeprefix", s.starts(with: affix) { return .string(String(scalars: s.dropFirst(affix.count))) }
            if name == "removesuffix", !affix.isEmpty, s.reversed().starts(with: affix.reversed()) {
                return .string(String(scalars: s.dropLast(affix.count)))
            }
            return .string(string)
        case "isalpha", "isdigit", "isdecimal", "isnumeric", "isalnum", "isspace", "isascii":
            _ = try bind(name, [], args, kwargs)
            if name == "isascii" { return .bool(s.allSatisfy { $0.isASCII }) }
            guard !s.isEmpty else { return .bool(false) }
            return .bool(s.allSatisfy { c in
                let letter: Bool
                switch c.properties.generalCategory {
                case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: letter = true
                default: letter = false
                }
                let numeric = c.properties.numericType
                switch name {
                case "isalpha": return letter
                case "isdigit": return numeric == .decimal || numeric == .digit
                case "isdecimal": return numeric == .decimal
                case "isnumeric": return numeric != nil
                case "isspace": return Py.isSpace(c)
                default: return letter || numeric != nil
                }
            })
        case "islower", "isupper":
            _ = try bind(name, [], args, kwargs)
            var cased = false
            for c in s {
                let isTitle = c.properties.generalCategory == .titlecaseLetter
                if name == "islower" {
                    if c.properties.isUppercase || isTitle { return .bool(false) }
                    if c.properties.isLowercase { cased = true }
                } else {
                    if c.properties.isLowercase || isTitle { return .bool(false) }
                    if c.properties.isUppercase { cased = true }
                }
            }
            return .bool(cased)
        default:
            throw unsupported("str.\(name)()")
        }
    }

    /// CPython's split on whitespace (sep=None) or on a separator, with maxsplit.
    static func split(_ s: [Unicode.Scalar], _ sep: [Unicode.Scalar]?, _ maxsplit: Int) -> [[Unicode.Scalar]] {
        var remaining = maxsplit < 0 ? Int.max : maxsplit
        var out: [[Unicode.Scalar]] = []
        var i = 0
        guard let sep else {
            while remaining > 0 {
                while i < s.count, Py.isSpace(s[i]) { i += 1 }
                if i == s.count { break }
                let j = i
                while i < s.count, !Py.isSpace(s[i]) { i += 1 }
                out.append(Array(s[j..<i]))
                remaining -= 1
            }
            while i < s.count, Py.isSpace(s[i]) { i += 1 }
            if i < s.count { out.append(Array(s[i...])) }
            return out
        }
        while remaining > 0, let j = s.find(sep, from: i) {
            out.append(Array(s[i..<j]))
            i = j + sep.count
            remaining -= 1
        }
        out.append(Array(s[i...]))
        return out
    }

    static func rsplit(_ s: [Unicode.Scalar], _ sep: [Unicode.Scalar]?, _ maxsplit: Int) -> [[Unicode.Scalar]] {
        let reversedParts = split(Array(s.reversed()), sep.map { Array($0.reversed()) }, maxsplit)
        return reversedParts.reversed().map { Array($0.reversed()) }
    }

    /// `str.splitlines`: \n, \r, \r\n, \v, \f, \x1c-\x1e, \x85, \u2028, \u2029 end lines.
    static func splitlines(_ s: [Unicode.Scalar], keepends: Bool) -> [[Unicode.Scalar]] {
        var out: [[Unicode.Scalar]] = []
        var start = 0
        var i = 0
        while i < s.count {
            let v = s[i].value
            if [0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029].contains(v) {
                var end = i + 1
                if v == 0x0D, end < s.count, s[end] == "\n" { end += 1 }
                out.append(Array(s[start..<(keepends ? end : i)]))
                start = end
                i = end
            } else {
                i += 1
            }
        }
        if start < s.count { out.append(Array(s[start...])) }
        return out
    }

    // MARK: - Globals

    func callGlobal(_ name: String, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws(TemplateError) -> JinjaValue {
        switch name {
        case "raise_exception":
            // transformers: raise TemplateError(message).
            let a = try bind(name, ["message"], args, kwargs)
            throw .raised(try str(a[0] ?? .null))
        case "strftime_now":
            let a = try bind(name, ["format"], args, kwargs)
            guard let f = a[0] else { throw error("strftime_now() missing 1 required positional argument: 'format'") }
            return .string(try strftime(try stringArg(f, "format")))
        case "range":
            guard kwargs.isEmpty else { throw error("range() takes no keyword arguments") }
            guard (1...3).contains(args.count) else { throw error("range expected 1 to 3 arguments, got \(args.count)") }
            var bounds: [Int] = []
            for a in args {
                guard let i = intIndex(a) else { throw error("'\(Py.typeName(a))' object cannot be interpreted as an integer") }
                bounds.append(i)
            }
            let (start, stop, step) = bounds.count == 1 ? (0, bounds[0], 1) : (bounds[0], bounds[1], bounds.count == 3 ? bounds[2] : 1)
            if step == 0 { throw error("range() arg 3 must not be zero") }
            // jinja2's sandbox caps ranges at MAX_RANGE; spans that overflow 64 bits are over it too.
            let tooBig = error("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).")
            let span = step > 0 ? stop.subtractingReportingOverflow(start) : start.subtractingReportingOverflow(stop)
            if span.overflow { throw tooBig }
            let stride = step == Int.min ? Int.max : abs(step)
            let count = span.partialValue > 0 ? (span.partialValue - 1) / stride + 1 : 0
            if count > 100_000 { throw tooBig }
            return makeIterable(.range, (0..<count).map { .int(start + $0 * step) }, range: (start, stop, step))
        case "dict", "namespace":
            var d = JinjaDict()
            if args.count > 1 { throw error("\(name) expected at most 1 argument, got \(args.count)") }
            if let first = args.first {
                if case .dict(let given) = first {
                    d = given
                } else {
                    for pair in try iterate(first) {
                        let kv = try iterate(pair)
                        guard kv.count == 2 else { throw error("dictionary update sequence element has length \(kv.count); 2 is required") }
                        guard d.store(kv[0], kv[1]) else { throw dictKeyError(kv[0]) }
                    }
                }
            }
            for (k, v) in kwargs { d[k] = v }
            if name == "dict" { return .dict(d) }
            namespaces.append(d)
            return .object(JinjaObject(kind: .namespace(namespaces.count - 1)))
        default:
            throw unsupported("global function '\(name)'")
        }
    }

    /// `datetime.now().strftime(format)` for a naive local datetime, via the C library as CPython
    /// does on Linux; `%f` is expanded here and `%z`/`%Z` are empty, as for a naive datetime.
    func strftime(_ format: String) throws(TemplateError) -> String {
        let date = clock.now()
        let seconds = date.timeIntervalSince1970
        guard seconds.isFinite, abs(seconds) < 1e15 else { throw error("clock out of range") }
        let whole = floor(seconds)
        let micros = min(max(Int((seconds - whole) * 1_000_000), 0), 999_999)
        guard let base = Int(exactly: whole) else { throw error("clock out of range") }
        let local = base.addingReportingOverflow(clock.utcOffset(date))
        if local.overflow { throw error("clock out of range") }
        var t = time_t(local.partialValue)
        var parts = tm()
        guard gmtime_r(&t, &parts) != nil else { throw error("clock out of range") }
        var cFormat = ""
        var chars = Array(format.unicodeScalars)[...]
        while let c = chars.popFirst() {
            guard c == "%", let d = chars.first else {
                cFormat.unicodeScalars.append(c)
                continue
            }
            switch d {
            case "f":
                chars.removeFirst()
                let text = String(micros)
                cFormat += String(repeating: "0", count: 6 - text.count) + text
            case "z", "Z":
                chars.removeFirst()
            default:
                cFormat += "%"
                cFormat.unicodeScalars.append(chars.removeFirst())
            }
        }
        if cFormat.isEmpty { return "" }
        var capacity = 256
        while capacity <= 1 << 20 {
            var buffer = [CChar](repeating: 0, count: capacity)
            let n = Foundation.strftime(&buffer, capacity, cFormat, &parts)
            if n > 0 { return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
            capacity *= 4
        }
        return ""  // the C library produced no characters (e.g. a lone unknown directive)
    }
}
