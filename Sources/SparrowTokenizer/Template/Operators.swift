import Foundation

/// Attribute/item access and operators, following jinja2's `SandboxedEnvironment.getattr` /
/// `getitem` and Python's operator semantics.
extension Interpreter {
    // Python attribute names per type. Mutating methods are what `ImmutableSandboxedEnvironment`
    // refuses: jinja2 returns an "unsafe" Undefined for them, which raises when called.
    static let stringMethods: Set<String> = [
        "capitalize", "casefold", "center", "count", "encode", "endswith", "expandtabs", "find", "format",
        "format_map", "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "isidentifier", "islower",
        "isnumeric", "isprintable", "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip", "maketrans",
        "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition", "rsplit",
        "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "translate", "upper", "zfill",
    ]
    static let dictMethods: Set<String> = ["copy", "fromkeys", "get", "items", "keys", "values"]
    static let dictMutators: Set<String> = ["clear", "pop", "popitem", "setdefault", "update"]
    static let listMethods: Set<String> = ["copy", "count", "index"]
    static let listMutators: Set<String> = ["append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"]
    static let numberAttributes: Set<String> = [
        "real", "imag", "conjugate", "numerator", "denominator", "bit_length", "bit_count", "is_integer",
        "as_integer_ratio", "hex", "to_bytes", "from_bytes", "fromhex",
    ]

    func method(_ receiver: JinjaValue, _ name: String) -> JinjaValue {
        .object(JinjaObject(kind: .method(receiver, name)))
    }

    func unsafeAttribute(_ value: JinjaValue, _ name: String) -> JinjaValue {
        .undefined("access to attribute '\(name)' of '\(Py.typeName(value))' object is unsafe.")
    }

    func noAttribute(_ value: JinjaValue, _ name: String) -> JinjaValue {
        .undefined("'\(Py.typeName(value)) object' has no attribute '\(name)'")
    }

    /// `obj.name`: the Python attribute if there is one, else the item `obj["name"]`, else undefined.
    func getattr(_ value: JinjaValue, _ name: String) throws(TemplateError) -> JinjaValue {
        if case .undefined(let hint) = value { throw undefinedError(hint) }
        if name.hasPrefix("_") { return unsafeAttribute(value, name) }
        switch value {
        case .dict(let d):
            if Self.dictMethods.contains(name) { return method(value, name) }
            if Self.dictMutators.contains(name) { return unsafeAttribute(value, name) }
            return d[name] ?? noAttribute(value, name)
        case .string, .markup:
            return Self.stringMethods.contains(name) ? method(value, name) : noAttribute(value, name)
        case .list:
            if Self.listMethods.contains(name) { return method(value, name) }
            return Self.listMutators.contains(name) ? unsafeAttribute(value, name) : noAttribute(value, name)
        case .tuple:
            return name == "count" || name == "index" ? method(value, name) : noAttribute(value, name)
        case .int, .double, .bool:
            if Self.numberAttributes.contains(name) { throw unsupported("attribute '\(name)' of a number") }
            return noAttribute(value, name)
        case .object(let o):
            switch o.kind {
            case .namespace(let id):
                return (id < namespaces.count ? namespaces[id][name] : nil) ?? noAttribute(value, name)
            case .loop(let id):
                return loopAttribute(id, name)
            case .macro(let id):
                guard id < macros.count else { return noAttribute(value, name) }
                let def = macros[id].definition
                switch name {
                case "name": return .string(def.name)
                case "arguments": return .tuple(def.parameters.map { .string($0) })
                case "catch_kwargs": return .bool(def.usesKwargs)
                case "catch_varargs": return .bool(def.usesVarargs)
                case "caller": return .bool(def.usesCaller)
                default: return noAttribute(value, name)
                }
            case .function, .method, .iterable:
                return noAttribute(value, name)
            }
        case .null, .undefined:
            return noAttribute(value, name)
        }
    }

    /// jinja2's `LoopContext` attributes.
    func loopAttribute(_ id: Int, _ name: String) -> JinjaValue {
        guard id < loops.count else { return .undefined("loop is no longer active") }
        let state = loops[id]
        let i = state.index, n = state.items.count
        switch name {
        case "index": return .int(i + 1)
        case "index0": return .int(i)
        case "revindex": return .int(n - i)
        case "revindex0": return .int(n - i - 1)
        case "first": return .bool(i == 0)
        case "last": return .bool(i == n - 1)
        case "length": return .int(n)
        case "depth": return .int(1)
        case "depth0": return .int(0)
        case "previtem": return i > 0 ? state.items[i - 1] : .undefined("there is no previous item")
        case "nextitem": return i + 1 < n ? state.items[i + 1] : .undefined("there is no next item")
        case "cycle", "changed": return method(.object(JinjaObject(kind: .loop(id))), name)
        default: return .undefined("'LoopContext object' has no attribute '\(name)'")
        }
    }

    /// An int usable as a sequence index (bool counts, as in Python).
    func intIndex(_ key: JinjaValue) -> Int? {
        switch key {
        case .int(let i): return i
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    /// `obj[key]`: the item if there is one; for a string key, then the Python attribute; else undefined.
    func getitem(_ value: JinjaValue, _ key: JinjaValue) throws(TemplateError) -> JinjaValue {
        switch value {
        case .undefined(let hint):
            throw undefinedError(hint)
        case .dict(let d):
            if case .found(let v) = d.lookup(key) { return v }
        case .list(let items), .tuple(let items):
            if let i = intIndex(key) {
                let j = i < 0 ? i + items.count : i
                return j >= 0 && j < items.count ? items[j] : .undefined("list index out of range")
            }
        case .string(let s), .markup(let s):
            if let i = intIndex(key) {
                let scalars = s.scalars
                let j = i < 0 ? i + scalars.count : i
                guard j >= 0 && j < scalars.count else { return .undefined("string index out of range") }
                let ch = String(scalars[j])
                if case .markup = value { return .markup(ch) }
                return .string(ch)
            }
        case .object(let o):
            if case .iterable(let id, .range, _) = o.kind, id < iterables.count, let i = intIndex(key) {
                let items = iterables[id].items
                let j = i < 0 ? i + items.count : i
                return j >= 0 && j < items.count ? items[j] : .undefined("range object index out of range")
            }
        default:
            break
        }
        if case .string(let name) = key {
            // Attribute fallback; for dicts the key was already missing, so only methods remain.
            if case .dict = value, !Self.dictMethods.contains(name), !Self.dictMutators.contains(name) {
                return noAttribute(value, name)
            }
            return try getattr(value, name)
        }
        return .undefined("'\(Py.typeName(value)) object' has no element \(try repr(key))")
    }

    /// Python's `slice.indices` applied to a sequence of `count` items.
    func sliceIndices(_ count: Int, _ start: JinjaValue?, _ stop: JinjaValue?, _ step: JinjaValue?) throws(TemplateError) -> [Int] {
        func bound(_ v: JinjaValue?) throws(TemplateError) -> Int? {
            guard let v else { return nil }
            if case .null = v { return nil }
            guard let i = intIndex(v) else {
                throw error("slice indices must be integers or None or have an __index__ method")
            }
            return i
        }
        let stepValue = try bound(step) ?? 1
        if stepValue == 0 { throw error("slice step cannot be zero") }
        let lower = stepValue > 0 ? 0 : -1
        let upper = stepValue > 0 ? count : count - 1
        func clamp(_ v: Int?, _ fallback: Int) -> Int {
            guard var i = v else { return fallback }
            if i < 0 {
                i = i.addingReportingOverflow(count).partialValue
                return i < lower ? lower : i
            }
            return i > upper ? upper : i
        }
        let first = clamp(try bound(start), stepValue > 0 ? lower : upper)
        let last = clamp(try bound(stop), stepValue > 0 ? upper : lower)
        var out: [Int] = []
        var i = first
        while stepValue > 0 ? i < last : i > last {
            out.append(i)
            let (next, overflow) = i.addingReportingOverflow(stepValue)
            if overflow { break }
            i = next
        }
        return out
    }

    func slice(_ value: JinjaValue, _ start: JinjaValue?, _ stop: JinjaValue?, _ step: JinjaValue?) throws(TemplateError) -> JinjaValue {
        switch value {
        case .undefined(let hint):
            throw undefinedError(hint)
        case .list(let items):
            return .list(try sliceIndices(items.count, start, stop, step).map { items[$0] })
        case .tuple(let items):
            return .tuple(try sliceIndices(items.count, start, stop, step).map { items[$0] })
        case .string(let s), .markup(let s):
            let scalars = s.scalars
            let picked = String(scalars: try sliceIndices(scalars.count, start, stop, step).map { scalars[$0] })
            if case .markup = value { return .markup(picked) }
            return .string(picked)
        case .object(let o):
            if case .iterable(_, .range, _) = o.kind { throw unsupported("slicing a range") }
            return .undefined("'\(Py.typeName(value))' object is not subscriptable")
        default:
            // Python raises TypeError, which jinja2's getitem turns into Undefined.
            return .undefined("'\(Py.typeName(value))' object is not subscriptable")
        }
    }

    // MARK: - Operators

    func unary(_ op: UnaryOp, _ value: JinjaValue) throws(TemplateError) -> JinjaValue {
        if case .undefined(let hint) = value { throw undefinedError(hint) }
        switch Py.number(value) {
        case .int(let i):
            if op == .plus { return .int(i) }
            guard i != Int.min else { throw unsupported("integer arithmetic beyond 64 bits") }
            return .int(-i)
        case .double(let d):
            return .double(op == .plus ? d : -d)
        case nil:
            throw error("bad operand type for unary \(op == .plus ? "+" : "-"): '\(Py.typeName(value))'")
        }
    }

    /// markupsafe's `escape` of a plain string.
    static func htmlEscape(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&#34;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    func binary(_ op: BinaryOp, _ a: JinjaValue, _ b: JinjaValue) throws(TemplateError) -> JinjaValue {
        if case .undefined(let hint) = a { throw undefinedError(hint) }
        if case .undefined(let hint) = b {
            // str % Undefined is str.__mod__, which treats Undefined as a mapping and succeeds.
            if op == .modulo, case .string = a {} else { throw undefinedError(hint) }
        }
        switch (op, a, b) {
        case (.add, .string(let x), .string(let y)): return .string(x + y)
        // Markup's __add__/__radd__ escape the plain operand.
        case (.add, .markup(let x), .markup(let y)): return .markup(x + y)
        case (.add, .markup(let x), .string(let y)): return .markup(x + Self.htmlEscape(y))
        case (.add, .string(let x), .markup(let y)): return .markup(Self.htmlEscape(x) + y)
        case (.add, .list(let x), .list(let y)): return .list(x + y)
        case (.add, .tuple(let x), .tuple(let y)): return .tuple(x + y)
        case (.multiply, .string, _), (.multiply, .markup, _), (.multiply, .list, _), (.multiply, .tuple, _):
            return try repeatSequence(a, b)
        case (.multiply, _, .string), (.multiply, _, .markup), (.multiply, _, .list), (.multiply, _, .tuple):
            return try repeatSequence(b, a)
        case (.modulo, .string(let fmt), _):
            return .string(try percentFormat(fmt, b))
        case (.modulo, .markup, _):
            throw unsupported("'%' formatting of a Markup string")
        default:
            return try arithmetic(op, a, b)
        }
    }

    private func repeatSequence(_ seq: JinjaValue, _ times: JinjaValue) throws(TemplateError) -> JinjaValue {
        guard let n = intIndex(times) else {
            throw error("can't multiply sequence by non-int of type '\(Py.typeName(times))'")
        }
        let count = max(n, 0)
        func check(_ size: Int) throws(TemplateError) {
            let (total, overflow) = size.multipliedReportingOverflow(by: count)
            if overflow || total > 100_000_000 { throw unsupported("sequence repetition beyond 100M items") }
        }
        switch seq {
        case .string(let s):
            try check(s.utf8.count)
            return .string(String(repeating: s, count: count))
        case .markup(let s):
            try check(s.utf8.count)
            return .markup(String(repeating: s, count: count))
        case .list(let items):
            try check(items.count)
            return .list(Array([[JinjaValue]](repeating: items, count: count).joined()))
        case .tuple(let items):
            try check(items.count)
            return .tuple(Array([[JinjaValue]](repeating: items, count: count).joined()))
        default:
            throw error("unsupported operand type(s) for *")
        }
    }

    private func arithmetic(_ op: BinaryOp, _ a: JinjaValue, _ b: JinjaValue) throws(TemplateError) -> JinjaValue {
        guard let x = Py.number(a), let y = Py.number(b) else {
            throw error("unsupported operand type(s) for \(op.rawValue): '\(Py.typeName(a))' and '\(Py.typeName(b))'")
        }
        let tooBig = unsupported("integer arithmetic beyond 64 bits")
        if case .int(let i) = x, case .int(let j) = y {
            switch op {
            case .add:
                let r = i.addingReportingOverflow(j)
                if r.overflow { throw tooBig }
                return .int(r.partialValue)
            case .subtract:
                let r = i.subtractingReportingOverflow(j)
                if r.overflow { throw tooBig }
                return .int(r.partialValue)
            case .multiply:
                let r = i.multipliedReportingOverflow(by: j)
                if r.overflow { throw tooBig }
                return .int(r.partialValue)
            case .divide:
                if j == 0 { throw error("division by zero") }
                return .double(Double(i) / Double(j))
            case .floorDivide, .modulo:
                if j == 0 { throw error("integer division or modulo by zero") }
                if i == Int.min && j == -1 { throw tooBig }
                var q = i / j
                var r = i % j
                if r != 0 && ((r < 0) != (j < 0)) {
                    q -= 1
                    r += j
                }
                return .int(op == .floorDivide ? q : r)
            case .power:
                if j < 0 {
                    if i == 0 { throw error("0.0 cannot be raised to a negative power") }
                    return .double(pow(Double(i), Double(j)))
                }
                var result = 1
                var base = i
                var e = j
                while e > 0 {
                    if e & 1 == 1 {
                        let r = result.multipliedReportingOverflow(by: base)
                        if r.overflow { throw tooBig }
                        result = r.partialValue
                    }
                    e >>= 1
                    if e > 0 {
                        let r = base.multipliedReportingOverflow(by: base)
                        if r.overflow { throw tooBig }
                        base = r.partialValue
                    }
                }
                return .int(result)
            }
        }
        let p = x.asDouble, q = y.asDouble
        switch op {
        case .add: return .double(p + q)
        case .subtract: return .double(p - q)
        case .multiply: return .double(p * q)
        case .divide:
            if q == 0 { throw error("float division by zero") }
            return .double(p / q)
        case .floorDivide, .modulo:
            // CPython's float_divmod.
            if q == 0 { throw error(op == .modulo ? "float modulo" : "float floor division by zero") }
            var mod = fmod(p, q)
            var div = (p - mod) / q
            if mod != 0 {
                if (q < 0) != (mod < 0) {
                    mod += q
                    div -= 1
                }
            } else {
                mod = copysign(0, q)
            }
            if op == .modulo { return .double(mod) }
            if div != 0 {
                var floordiv = floor(div)
                if div - floordiv > 0.5 { floordiv += 1 }
                return .double(floordiv)
            }
            return .double(copysign(0, p / q))
        case .power:
            if p == 0 && q < 0 { throw error("0.0 cannot be raised to a negative power") }
            if p < 0 && q != q.rounded() { throw unsupported("complex result of '**'") }
            return .double(pow(p, q))
        }
    }

    func compare(_ op: CompareOp, _ a: JinjaValue, _ b: JinjaValue) throws(TemplateError) -> Bool {
        switch op {
        case .eq: return Py.equals(a, b)
        case .ne: return !Py.equals(a, b)
        case .in: return try contains(b, a)
        case .notIn: return !(try contains(b, a))
        case .lt, .le, .gt, .ge:
            for v in [a, b] { if case .undefined(let hint) = v { throw undefinedError(hint) } }
            guard let c = Py.compare(a, b) else {
                throw error("'\(op.rawValue)' not supported between instances of '\(Py.typeName(a))' and '\(Py.typeName(b))'")
            }
            switch op {
            case .lt: return c == -1
            case .le: return c == -1 || c == 0
            case .gt: return c == 1
            default: return c == 1 || c == 0
            }
        }
    }

    /// Python's `item in container`.
    func contains(_ container: JinjaValue, _ item: JinjaValue) throws(TemplateError) -> Bool {
        switch container {
        case .string(let s), .markup(let s):
            switch item {
            case .string(let sub), .markup(let sub): return sub.isEmpty || s.scalars.find(sub.scalars) != nil
            default: throw error("'in <string>' requires string as left operand, not \(Py.typeName(item))")
            }
        case .list(let items), .tuple(let items):
            return items.contains { Py.equals($0, item) }
        case .dict(let d):
            switch d.lookup(item) {
            case .found: return true
            case .missing: return false
            case .unhashable: throw error("unhashable type: '\(Py.typeName(item))'")
            }
        case .undefined:
            return false
        case .object(let o):
            if case .loop = o.kind { throw unsupported("'in' on a loop object") }
            guard case .iterable(let id, let type, _) = o.kind, id < iterables.count else { break }
            let state = try iterableState(id)
            guard type.isIterator else { return state.items.contains { Py.equals($0, item) } }
            // `in` on an iterator consumes it up to and including the match.
            for k in state.position..<state.items.count where Py.equals(state.items[k], item) {
                iterables[id].position = k + 1
                return true
            }
            iterables[id].position = state.items.count
            return false
        default:
            break
        }
        throw error("argument of type '\(Py.typeName(container))' is not iterable")
    }
}
