/// jinja2's built-in tests (`x is defined`, `x is divisibleby 3`, ...), from jinja2/tests.py.
extension Interpreter {
    static let testsWithArgument: Set<String> = [
        "divisibleby", "==", "eq", "equalto", "!=", "ne", ">", "gt", "greaterthan", ">=", "ge", "<", "lt", "lessthan",
        "<=", "le", "in", "sameas",
    ]

    func applyTest(_ name: String, _ value: JinjaValue, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws(TemplateError) -> Bool {
        // Python raises TypeError when a test gets more arguments than its signature has.
        let given = args.count + kwargs.count
        if given > (Self.testsWithArgument.contains(name) ? 1 : 0) {
            throw error("test '\(name)' takes \(Self.testsWithArgument.contains(name) ? 1 : 0) argument(s), \(given) given")
        }
        func operand() throws(TemplateError) -> JinjaValue {
            let a = try bind(name, ["other"], args, kwargs)
            guard let other = a[0] else { throw error("test '\(name)' needs an argument") }
            return other
        }
        switch name {
        case "defined": return !value.isUndefined
        case "undefined": return value.isUndefined
        case "none": return value.isNull
        case "boolean": if case .bool = value { return true } else { return false }
        case "true": if case .bool(true) = value { return true } else { return false }
        case "false": if case .bool(false) = value { return true } else { return false }
        case "integer": if case .int = value { return true } else { return false }
        case "float": if case .double = value { return true } else { return false }
        case "number": return Py.number(value) != nil
        case "string": switch value { case .string, .markup: return true; default: return false }
        case "mapping": if case .dict = value { return true } else { return false }
        case "iterable", "sequence":
            switch value {
            case .string, .markup, .list, .tuple, .dict, .undefined: return true
            case .object(let o):
                // Iterables are iterable; only a range also has len() and indexing.
                guard case .iterable(_, let type, _) = o.kind else { return name == "iterable" && isLoop(o) }
                return name == "iterable" || type == .range
            default: return false
            }
        case "callable":
            // Undefined and LoopContext define __call__ too.
            if case .undefined = value { return true }
            guard case .object(let o) = value else { return false }
            switch o.kind {
            case .function, .macro, .method, .loop: return true
            case .namespace, .iterable: return false
            }
        case "escaped": if case .markup = value { return true } else { return false }
        case "lower", "upper":
            let s = try str(value)
            let cased = s.unicodeScalars.contains { $0.properties.isCased }
            return cased && (name == "lower" ? s == s.lowercased() : s == s.uppercased())
        case "odd", "even":
            return Py.equals(try binary(.modulo, value, .int(2)), .int(name == "odd" ? 1 : 0))
        case "divisibleby":
            let r = try binary(.modulo, value, try operand())
            return Py.equals(r, .int(0))
        case "==", "eq", "equalto": return Py.equals(value, try operand())
        case "!=", "ne": return !Py.equals(value, try operand())
        case ">", "gt", "greaterthan": return try compare(.gt, value, try operand())
        case ">=", "ge": return try compare(.ge, value, try operand())
        case "<", "lt", "lessthan": return try compare(.lt, value, try operand())
        case "<=", "le": return try compare(.le, value, try operand())
        case "in": return try contains(try operand(), value)
        case "filter": return Builtins.filters.contains(try str(value))
        case "test": return Builtins.tests.contains(try str(value))
        case "sameas":
            let other = try operand()
            switch (value, other) {
            case (.null, .null): return true
            case (.bool(let x), .bool(let y)): return x == y
            case (.null, _), (_, .null), (.bool, _), (_, .bool): return false
            default: throw unsupported("'sameas' test on \(Py.typeName(value)) values (Python object identity)")
            }
        default:
            if Builtins.unsupportedTests.contains(name) { throw unsupported("test '\(name)'") }
            throw error("No test named '\(name)' found.")
        }
    }

    private func isLoop(_ o: JinjaObject) -> Bool {
        if case .loop = o.kind { return true }
        return false
    }
}
