import Foundation

/// Names of jinja2's built-in filters and tests, split into those implemented here and those
/// refused with `TemplateError.unsupported` when they run. Any other name is unknown to jinja2
/// too: `NameCheck` rejects it after parsing, as jinja2's compiler does (or defers it to run time
/// inside `if`, also as jinja2 does).
enum Builtins {
    static let filters: Set<String> = [
        "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape", "first",
        "float", "forceescape", "format", "indent", "int", "items", "join", "last", "length", "list", "lower", "map",
        "max", "min", "reject", "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "sort",
        "string", "sum", "title", "tojson", "trim", "unique", "upper", "wordcount",
    ]
    static let unsupportedFilters: Set<String> = [
        "filesizeformat", "groupby", "pprint", "random", "slice", "striptags", "truncate", "urlencode", "urlize",
        "wordwrap", "xmlattr",
    ]
    static let tests: Set<String> = [
        "odd", "even", "divisibleby", "defined", "undefined", "filter", "test", "none", "boolean", "false", "true",
        "integer", "float", "lower", "upper", "string", "mapping", "number", "sequence", "iterable", "callable",
        "sameas", "escaped", "in", "==", "eq", "equalto", "!=", "ne", ">", "gt", "greaterthan", "ge", ">=", "<", "lt",
        "lessthan", "<=", "le",
    ]
    static let unsupportedTests: Set<String> = []
}

extension Interpreter {
    /// Binds positional and keyword arguments to a Python-style parameter list.
    func bind(_ function: String, _ names: [String], _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws(TemplateError) -> [JinjaValue?] {
        guard args.count <= names.count else {
            throw error("\(function)() takes at most \(names.count) argument(s) (\(args.count) given)")
        }
        var out: [JinjaValue?] = args.map { $0 } + Array(repeating: nil, count: names.count - args.count)
        for (key, value) in kwargs {
            guard let i = names.firstIndex(of: key) else { throw error("\(function)() got an unexpected keyword argument '\(key)'") }
            if out[i] != nil { throw error("\(function)() got multiple values for argument '\(key)'") }
            out[i] = value
        }
        return out
    }

    func intArg(_ v: JinjaValue?, _ fallback: Int, _ what: String) throws(TemplateError) -> Int {
        guard let v else { return fallback }
        guard let i = intIndex(v) else { throw error("\(what) must be an integer, not \(Py.typeName(v))") }
        return i
    }

    func stringArg(_ v: JinjaValue, _ what: String) throws(TemplateError) -> String {
        switch v {
        case .string(let s), .markup(let s): return s
        default: throw error("\(what) must be str, not \(Py.typeName(v))")
        }
    }

    /// jinja2's `make_attrgetter`: dotted path, integer parts index sequences.
    func attributePath(_ value: JinjaValue, _ path: JinjaValue) throws(TemplateError) -> JinjaValue {
        guard case .string(let p) = path else { return try getitem(value, path) }
        var v = value
        for part in p.split(separator: ".", omittingEmptySubsequences: false) {
            // `int(x) if x.isdigit() else x`, as jinja2's _prepare_attribute_parts.
            if !part.isEmpty, part.allSatisfy({ $0.isASCII && $0.isNumber }), let i = Int(part) {
                v = try getitem(v, .int(i))
            } else {
                v = try getitem(v, .string(String(part)))
            }
        }
        return v
    }

    /// Sort key transform for sort/unique/min/max/dictsort: lowercases strings unless case-sensitive.
    func sortKey(_ v: JinjaValue, caseSensitive: Bool) -> JinjaValue {
        if !caseSensitive, case .string(let s) = v { return .string(s.lowercased()) }
        if !caseSensitive, case .markup(let s) = v { return .string(s.lowercased()) }
        return v
    }

    func sortValues(_ items: [JinjaValue], reverse: Bool, key: (JinjaValue) throws(TemplateError) -> JinjaValue) throws(TemplateError) -> [JinjaValue] {
        var keyed: [(JinjaValue, JinjaValue)] = []
        for item in items { keyed.append((try key(item), item)) }
        let sorted = try mergeSorted(keyed) { (a: (JinjaValue, JinjaValue), b: (JinjaValue, JinjaValue)) throws(TemplateError) -> Bool in
            guard let c = Py.compare(reverse ? b.0 : a.0, reverse ? a.0 : b.0) else {
                throw error("'<' not supported between instances of '\(Py.typeName(a.0))' and '\(Py.typeName(b.0))'")
            }
            return c == -1
        }
        return sorted.map { $0.1 }
    }

    func applyFilter(_ name: String, _ value: JinjaValue, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws(TemplateError) -> JinjaValue {
        switch name {
        case "tojson":
            // transformers replaces jinja2's tojson with
            // json.dumps(x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys).
            let a = try bind("tojson", ["ensure_ascii", "indent", "separators", "sort_keys"], args, kwargs)
            var options = JSONDumpOptions()
            options.ensureASCII = a[0].map(Py.truthy) ?? false
            options.sortKeys = a[3].map(Py.truthy) ?? false
            switch a[1] {
            case nil, .some(.null): break
            case .some(.string(let s)): options.indent = s
            case .some(let v):
                guard let n = intIndex(v) else { throw error("indent must be an int or a string") }
                options.indent = String(repeating: " ", count: max(n, 0))
            }
            if options.indent != nil { options.itemSeparator = "," }
            if let seps = a[2], case .null = seps {} else if let seps = a[2] {
                let parts = try iterate(seps)
                guard parts.count == 2 else { throw error("separators must be a pair of strings") }
                options.itemSeparator = try stringArg(parts[0], "item separator")
                options.keySeparator = try stringArg(parts[1], "key separator")
            }
            do {
                return .string(try JSONDumper.dumps(value, options))
            } catch {
                switch error {
                case .notSerializable(let type): throw self.error("Object of type \(type) is not JSON serializable")
                case .badKey(let type): throw self.error("keys must be str, int, float, bool or None, not \(type)")
                case .circular: throw self.error("maximum recursion depth exceeded while encoding a JSON object")
                }
            }
        case "length", "count":
            switch value {
            case .string(let s), .markup(let s): return .int(s.unicodeScalars.count)
            case .list(let a), .tuple(let a): return .int(a.count)
            case .dict(let d): return .int(d.count)
            case .undefined: return .int(0)
            case .object(let o):
                if case .loop(let id) = o.kind, id < loops.count { return .int(loops[id].items.count) }
                if case .iterable(_, let type, let count) = o.kind, !type.isIterator { return .int(count) }
            default: break
            }
            throw error("object of type '\(Py.typeName(value))' has no len()")
        case "string":
            if case .markup = value { return value }
            return .string(try str(value))
        case "trim":
            let a = try bind("trim", ["chars"], args, kwargs)
            return try callMethod(.string(try str(value)), "strip", a[0].map { [$0] } ?? [], []).keepingMarkup(of: value)
        case "upper", "lower", "capitalize":
            return try callMethod(.string(try str(value)), name, [], []).keepingMarkup(of: value)
        case "title":
            // jinja2's do_title: capitalise each piece after a run of `[-\s({\[<]`.
            var out = ""
            var atStart = true
            for c in try str(value).unicodeScalars {
                let boundary = Py.isSpace(c) || "-({[<".unicodeScalars.contains(c)
                if boundary {
                    out.unicodeScalars.append(c)
                    atStart = true
                } else {
                    out += atStart ? String(c).uppercased() : String(c).lowercased()
                    atStart = false
                }
            }
            return .string(out)
        case "replace":
            let a = try bind("replace", ["old", "new", "count"], args, kwargs)
            guard let old = a[0], let new = a[1] else { throw error("replace() missing required arguments") }
            var margs = [JinjaValue.string(try str(old)), .string(try str(new))]
            if let c = a[2], intIndex(c) != nil { margs.append(c) }
            return try callMethod(.string(try str(value)), "replace", margs, [])
        case "join":
            let a = try bind("join", ["d", "attribute"], args, kwargs)
            var items = try iterate(value)
            if let attr = a[1], !(attr.isNull) { items = try items.mapTyped { (v: JinjaValue) throws(TemplateError) in try attributePath(v, attr) } }
            var parts: [String] = []
            for item in items { parts.append(try str(item)) }
            return .string(parts.joined(separator: try str(a[0] ?? .string(""))))
        case "first":
            return try firstItem(value) ?? .undefined("No first item, sequence was empty.")
        case "last":
            // next(iter(reversed(value))): iterators cannot be reversed.
            if case .object(let o) = value, case .iterable(_, let type, _) = o.kind, type.isIterator {
                throw error("'\(type.pythonName)' object is not reversible")
            }
            return try iterate(value).last ?? .undefined("No last item, sequence was empty.")
        case "default", "d":
            let a = try bind(name, ["default_value", "boolean"], args, kwargs)
            let boolean = a[1].map(Py.truthy) ?? false
            if case .undefined = value { return a[0] ?? .string("") }
            if boolean && !Py.truthy(value) { return a[0] ?? .string("") }
            return value
        case "list":
            return .list(try iterate(value))
        case "dictsort":
            let a = try bind("dictsort", ["case_sensitive", "by", "reverse"], args, kwargs)
            guard case .dict(let d) = value else {
                if case .undefined(let hint) = value { throw undefinedError(hint) }
                throw error("'\(Py.typeName(value))' object has no attribute 'items'")
            }
            let byValue: Bool
            switch a[1] {
            case nil: byValue = false
            case .some(.string("key")): byValue = false
            case .some(.string("value")): byValue = true
            default: throw error("You can only sort by either \"key\" or \"value\"")
            }
            let cs = a[0].map(Py.truthy) ?? false
            let pairs = d.pairs.map { JinjaValue.tuple([$0.key, $0.value]) }
            return .list(try sortValues(pairs, reverse: a[2].map(Py.truthy) ?? false) { (p: JinjaValue) throws(TemplateError) -> JinjaValue in
                guard case .tuple(let kv) = p, kv.count == 2 else { return p }
                return self.sortKey(byValue ? kv[1] : kv[0], caseSensitive: cs)
            })
        case "sort":
            let a = try bind("sort", ["reverse", "case_sensitive", "attribute"], args, kwargs)
            let cs = a[1].map(Py.truthy) ?? false
            // make_multi_attrgetter: keys are lists (one entry per comma-separated attribute), so
            // equal keys are never compared with `<` (which would fail for None or Undefined).
            var paths: [JinjaValue?] = [nil]
            if let attr = a[2], !attr.isNull {
                if case .string(let s) = attr {
                    paths = s.split(separator: ",", omittingEmptySubsequences: false).map { .string(String($0)) }
                } else {
                    paths = [attr]
                }
            }
            return .list(try sortValues(try iterate(value), reverse: a[0].map(Py.truthy) ?? false) { (v: JinjaValue) throws(TemplateError) -> JinjaValue in
                var key: [JinjaValue] = []
                for path in paths {
                    key.append(self.sortKey(try path.map { (p: JinjaValue) throws(TemplateError) in try self.attributePath(v, p) } ?? v, caseSensitive: cs))
                }
                return .list(key)
            })
        case "min", "max":
            let a = try bind(name, ["case_sensitive", "attribute"], args, kwargs)
            let cs = a[0].map(Py.truthy) ?? false
            var best: (JinjaValue, JinjaValue)? = nil
            for item in try iterate(value) {
                var key = item
                if let attr = a[1], !attr.isNull { key = try attributePath(item, attr) }
                key = sortKey(key, caseSensitive: cs)
                if let (bestKey, _) = best {
                    guard let c = Py.compare(key, bestKey) else { throw error("'<' not supported between these types") }
                    if (name == "min" && c == -1) || (name == "max" && c == 1) { best = (key, item) }
                } else {
                    best = (key, item)
                }
            }
            return best?.1 ?? .undefined("No aggregated item, sequence was empty.")
        case "sum":
            let a = try bind("sum", ["attribute", "start"], args, kwargs)
            var total = a[1] ?? .int(0)
            for item in try iterate(value) {
                var v = item
                if let attr = a[0], !attr.isNull { v = try attributePath(item, attr) }
                total = try binary(.add, total, v)
            }
            return total
        case "reverse":
            // do_reverse: s[::-1] for strings, reversed(value) when that works, else a reversed list.
            switch value {
            case .string(let s): return .string(String(scalars: s.unicodeScalars.reversed()))
            case .markup(let s): return .markup(String(scalars: s.unicodeScalars.reversed()))
            case .list(let items): return makeIterable(.listReverseIterator, items.reversed())
            case .dict(let d): return makeIterable(.dictReverseIterator, d.keys.reversed())
            case .tuple, .undefined: return makeIterable(.reversed, try iterate(value).reversed())
            case .object(let o):
                if case .iterable(_, let type, _) = o.kind, !type.isIterator {
                    return makeIterable(.reversed, try iterate(value).reversed())
                }
                return .list(try iterate(value).reversed())
            default: return .list(try iterate(value).reversed())
            }
        case "map", "select", "reject", "selectattr", "rejectattr", "items", "unique", "batch":
            return makeGenerator(name, value, args, kwargs)
        case "safe":
            if case .markup = value { return value }
            return .markup(try str(value))
        case "e", "escape", "forceescape":
            if case .markup = value, name != "forceescape" { return value }
            return .markup(Self.htmlEscape(try str(value)))
        case "indent":
            return try indent(value, args, kwargs)
        case "wordcount":
            // len(re.findall(r"\w+", s)) with Unicode word characters.
            var count = 0
            var inWord = false
            for c in try str(value).unicodeScalars {
                let word = c == "_" || c.properties.isAlphabetic || c.properties.numericType != nil
                if word && !inWord { count += 1 }
                inWord = word
            }
            return .int(count)
        case "int", "float":
            // Undefined's __int__/__float__ raise, and do_int/do_float only catch TypeError/ValueError.
            if case .undefined(let hint) = value { throw undefinedError(hint) }
            if name == "float" {
                let a = try bind("float", ["default"], args, kwargs)
                return toFloat(value) ?? a[0] ?? .double(0)
            }
            let a = try bind("int", ["default", "base"], args, kwargs)
            return toInt(value, base: try intArg(a[1], 10, "base")) ?? a[0] ?? .int(0)
        case "abs":
            switch value {
            case .int(let i):
                guard i != Int.min else { throw unsupported("integer arithmetic beyond 64 bits") }
                return .int(abs(i))
            case .bool(let b): return .int(b ? 1 : 0)
            case .double(let d): return .double(abs(d))
            case .undefined(let hint): throw undefinedError(hint)
            default: throw error("bad operand type for abs(): '\(Py.typeName(value))'")
            }
        case "round":
            return try round(value, args, kwargs)
        case "center":
            let a = try bind("center", ["width"], args, kwargs)
            return try callMethod(.string(try str(value)), "center", [.int(try intArg(a[0], 80, "width"))], [])
        case "attr":
            let a = try bind("attr", ["name"], args, kwargs)
            guard let n = a[0] else { throw error("attr() missing required argument 'name'") }
            // do_attr uses Python's getattr only: a dict's keys are not attributes.
            let attribute = try stringArg(n, "attribute name")
            if case .dict = value, !Self.dictMethods.contains(attribute), !Self.dictMutators.contains(attribute) {
                return noAttribute(value, attribute)
            }
            return try getattr(value, attribute)
        case "format":
            guard kwargs.isEmpty || args.isEmpty else { throw error("can't handle positional and keyword arguments at the same time") }
            let spec: JinjaValue = kwargs.isEmpty ? .tuple(args) : .dict(JinjaDict(kwargs))
            return .string(try percentFormat(try str(value), spec))
        default:
            // Names jinja2 knows are refused; others reach here only from a branch jinja2 also
            // compiled lazily (an unknown filter inside `if`), where it fails at runtime.
            if Builtins.unsupportedFilters.contains(name) { throw unsupported("filter '\(name)'") }
            throw error("No filter named '\(name)' found.")
        }
    }

    /// Runs a generator filter when its result is first consumed (see `PendingGenerator`).
    func runGenerator(_ p: PendingGenerator) throws(TemplateError) -> [JinjaValue] {
        let (name, value, args, kwargs) = (p.filter, p.input, p.args, p.kwargs)
        switch name {
        case "items":
            // do_items is a generator function.
            if case .undefined = value { return [] }
            guard case .dict(let d) = value else { throw error("Can only get item pairs from a mapping.") }
            return d.pairs.map { .tuple([$0.key, $0.value]) }
        case "unique":
            let a = try bind("unique", ["case_sensitive", "attribute"], args, kwargs)
            let cs = a[0].map(Py.truthy) ?? false
            var seen: [JinjaValue] = []
            var out: [JinjaValue] = []
            for item in try iterate(value) {
                var key = item
                if let attr = a[1], !attr.isNull { key = try attributePath(item, attr) }
                key = sortKey(key, caseSensitive: cs)
                switch key {
                case .list, .dict: throw error("unhashable type: '\(Py.typeName(key))'")  // `key in seen` needs a hash
                default: break
                }
                if !seen.contains(where: { Py.equals($0, key) }) {
                    seen.append(key)
                    out.append(item)
                }
            }
            return out
        case "batch":
            let a = try bind("batch", ["linecount", "fill_with"], args, kwargs)
            guard let sizeValue = a[0] else { throw error("do_batch() missing 1 required positional argument: 'linecount'") }
            let size = try intArg(sizeValue, 1, "linecount")
            // do_batch, step by step: a full batch is emitted when the next item arrives.
            var rows: [JinjaValue] = []
            var row: [JinjaValue] = []
            for item in try iterate(value) {
                if row.count == size {
                    rows.append(.list(row))
                    row = []
                }
                row.append(item)
            }
            if !row.isEmpty {
                if let fill = a[1], !fill.isNull, row.count < size { row += Array(repeating: fill, count: size - row.count) }
                rows.append(.list(row))
            }
            return rows
        default:
            // map / select / reject / selectattr / rejectattr yield nothing for a falsy input.
            guard Py.truthy(value) else { return [] }
            return try mapOrSelect(name, value, args, kwargs)
        }
    }

    private func indent(_ value: JinjaValue, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws(TemplateError) -> JinjaValue {
        let a = try bind("indent", ["width", "first", "blank"], args, kwargs)
        let unit: String
        if let w = a[0], case .string(let s) = w { unit = s } else { unit = String(repeating: " ", count: max(try intArg(a[0], 4, "width"), 0)) }
        // do_indent: `s += "\n"` (so only strings work) then splitlines(), so a trailing newline
        // yields no extra line.
        let text: String
        switch value {
        case .string(let s), .markup(let s): text = s + "\n"
        case .undefined(let hint): throw undefinedError(hint)
        default: throw error("unsupported operand type(s) for +=: '\(Py.typeName(value))' and 'str'")
        }
        var lines: [String] = []
        if case .list(let parts) = try callMethod(.string(text), "splitlines", [], []) {
            for p in parts { lines.append(try str(p)) }
        }
        var out: String
        if a[2].map(Py.truthy) ?? false {
            out = lines.joined(separator: "\n" + unit)
        } else {
            out = lines.isEmpty ? "" : lines.removeFirst()
            if !lines.isEmpty { out += "\n" + lines.map { $0.isEmpty ? $0 : unit + $0 }.joined(separator: "\n") }
        }
        if a[1].map(Py.truthy) ?? false { out = unit + out }
        if case .markup = value { return .markup(out) }
        return .string(out)
    }

    private func round(_ value: JinjaValue, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws(TemplateError) -> JinjaValue {
        let a = try bind("round", ["precision", "method"], args, kwargs)
        let precision = try intArg(a[0], 0, "precision")
        let method = try a[1].map { (m: JinjaValue) throws(TemplateError) in try stringArg(m, "method") } ?? "common"
        guard ["common", "ceil", "floor"].contains(method) else { throw error("method must be common, ceil or floor") }
        if case .undefined(let hint) = value { throw undefinedError(hint) }
        guard let number = Py.number(value) else { throw error("type \(Py.typeName(value)) doesn't define __round__ method") }
        if method == "common" {
            if case .int(let i) = number, precision >= 0 { return .int(i) }
            if case .int = number { throw unsupported("round() of an int to negative precision") }
            guard (0...20).contains(precision) else { throw unsupported("round() to precision \(precision)") }
            // Python rounds the exact binary value half-to-even, as printf's %.Nf does.
            let d = number.asDouble
            guard d.isFinite else { return .double(d) }
            return .double(Double(String(format: "%.\(precision)f", d)) ?? d)
        }
        guard (0...20).contains(precision) else { throw unsupported("round() to precision \(precision)") }
        let scale = pow(10.0, Double(precision))
        let scaled = number.asDouble * scale
        return .double((method == "ceil" ? ceil(scaled) : floor(scaled)) / scale)
    }

    /// jinja2's do_int: int(value, base) for strings, int(value) otherwise, then int(float(value)).
    func toInt(_ value: JinjaValue, base: Int) -> JinjaValue? {
        switch value {
        case .int: return value
        case .bool(let b): return .int(b ? 1 : 0)
        case .double(let d):
            guard d.isFinite, let i = Int(exactly: d.rounded(.towardZero)) else { return nil }
            return .int(i)
        case .string(let s), .markup(let s):
            let t = String(scalars: s.scalars.trimmingPySpace())
            var digits = t
            var sign = ""
            if let f = digits.first, f == "+" || f == "-" {
                sign = f == "-" ? "-" : ""
                digits.removeFirst()
            }
            var radix = base
            if base == 0 || base == 16 || base == 8 || base == 2 {
                // int(s, 0) reads a 0x/0o/0b prefix; an explicit base accepts its own prefix.
                let lower = digits.lowercased()
                for (prefix, r) in [("0x", 16), ("0o", 8), ("0b", 2)] where lower.hasPrefix(prefix) && (base == 0 || base == r) {
                    digits.removeFirst(2)
                    if digits.hasPrefix("_") { digits.removeFirst() }
                    radix = r
                }
                if radix == 0 { radix = 10 }
            }
            let clean = digits.replacingOccurrences(of: "_", with: "")
            if (2...36).contains(radix), !digits.hasPrefix("_"), !digits.hasSuffix("_"), !digits.contains("__"),
                !clean.isEmpty, clean.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }),
                let i = Int(sign + clean, radix: radix)
            {
                return .int(i)
            }
            return toFloat(value).flatMap { toInt($0, base: base) }
        default:
            return nil
        }
    }

    /// Python's float(): ints, bools, and strings such as " 1.5 ", "1e-3", "inf", "nan", "1_000".
    func toFloat(_ value: JinjaValue) -> JinjaValue? {
        switch value {
        case .double: return value
        case .int(let i): return .double(Double(i))
        case .bool(let b): return .double(b ? 1 : 0)
        case .string(let s), .markup(let s):
            let t = String(scalars: s.scalars.trimmingPySpace())
            let lower = t.lowercased()
            if ["inf", "+inf", "infinity", "+infinity"].contains(lower) { return .double(.infinity) }
            if ["-inf", "-infinity"].contains(lower) { return .double(-.infinity) }
            if ["nan", "+nan", "-nan"].contains(lower) { return .double(.nan) }
            guard !t.isEmpty, t.allSatisfy({ $0.isASCII && ($0.isNumber || "+-.eE_".contains($0)) }),
                !t.hasPrefix("_"), !t.hasSuffix("_"), !t.contains("__")
            else { return nil }
            return Double(t.replacingOccurrences(of: "_", with: "")).map { .double($0) }
        default:
            return nil
        }
    }

    /// map / select / reject / selectattr / rejectattr (jinja2's `prepare_map` and `prepare_select_or_reject`).
    private func mapOrSelect(_ name: String, _ value: JinjaValue, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws(TemplateError) -> [JinjaValue] {
        let items = try iterate(value)
        if name == "map" {
            if let attr = kwargs.first(where: { $0.0 == "attribute" })?.1 {
                let fallback = kwargs.first(where: { $0.0 == "default" })?.1
                if kwargs.contains(where: { $0.0 != "attribute" && $0.0 != "default" }) || !args.isEmpty {
                    throw error("Unexpected keyword argument for map")
                }
                return try items.mapTyped { (item: JinjaValue) throws(TemplateError) -> JinjaValue in
                    let v = try attributePath(item, attr)
                    if case .undefined = v, let fallback { return fallback }
                    return v
                }
            }
            guard let filterName = args.first, case .string(let f) = filterName else { throw error("map requires a filter argument") }
            guard Builtins.filters.contains(f) else { throw error("No filter named '\(f)'.") }
            let rest = Array(args.dropFirst())
            return try items.mapTyped { (item: JinjaValue) throws(TemplateError) in try applyFilter(f, item, rest, kwargs) }
        }
        let byAttribute = name.hasSuffix("attr")
        let keep = name.hasPrefix("select")
        var rest = args
        var attr: JinjaValue? = nil
        if byAttribute {
            guard !rest.isEmpty else { throw error("Missing parameter for attribute name") }
            attr = rest.removeFirst()
        }
        var testName: String? = nil
        if !rest.isEmpty {
            guard case .string(let t) = rest.removeFirst() else { throw error("test name must be a string") }
            guard Builtins.tests.contains(t) else { throw error("No test named '\(t)'.") }
            testName = t
        }
        var out: [JinjaValue] = []
        for item in items {
            let subject = try attr.map { (a: JinjaValue) throws(TemplateError) in try attributePath(item, a) } ?? item
            let passed = try testName.map { (t: String) throws(TemplateError) in try applyTest(t, subject, rest, kwargs) } ?? Py.truthy(subject)
            if passed == keep { out.append(item) }
        }
        return out
    }
}

extension JinjaValue {
    var isUndefined: Bool { if case .undefined = self { return true } else { return false } }
    var isNull: Bool { if case .null = self { return true } else { return false } }
    var asDouble: Double? { Py.number(self)?.asDouble }

    /// Wraps a string result back into Markup when the filter input was Markup (markupsafe
    /// returns Markup from its str-method wrappers).
    func keepingMarkup(of input: JinjaValue) -> JinjaValue {
        if case .markup = input, case .string(let s) = self { return .markup(s) }
        return self
    }
}

extension Array {
    /// `map` with a typed-throwing transform.
    func mapTyped<T, E: Error>(_ transform: (Element) throws(E) -> T) throws(E) -> [T] {
        var out: [T] = []
        out.reserveCapacity(count)
        for x in self { out.append(try transform(x)) }
        return out
    }
}

extension Array where Element == Unicode.Scalar {
    func trimmingPySpace() -> ArraySlice<Unicode.Scalar> {
        var a = startIndex, b = endIndex
        while a < b, Py.isSpace(self[a]) { a += 1 }
        while b > a, Py.isSpace(self[b - 1]) { b -= 1 }
        return self[a..<b]
    }
}
