/// Executes a parsed template against a context, with jinja2's scoping rules:
/// `if` shares its scope; every `for` iteration, macro call, `with`, block `set`, filter block and
/// call block gets a child scope (so a `set` inside a loop does not survive the iteration, which is
/// why templates use `namespace()`); macros see the scope they were defined in, at call time.
final class Scope {
    var vars: [String: JinjaValue] = [:]
    let parent: Scope?

    init(parent: Scope?) { self.parent = parent }

    func lookup(_ name: String) -> JinjaValue? {
        var scope: Scope? = self
        while let s = scope {
            if let v = s.vars[name] { return v }
            scope = s.parent
        }
        return nil
    }
}

struct MacroClosure {
    let definition: MacroDefinition
    let scope: Scope
}

struct LoopState {
    let items: [JinjaValue]
    var index: Int
}

/// Items of a generator, view or range; `position` is how far an iterator has been consumed.
struct IterableState {
    var items: [JinjaValue]
    var position = 0
    var range: (start: Int, stop: Int, step: Int)? = nil
    /// A generator filter that has not run yet: jinja2's `map`, `select`, `items`, ... are Python
    /// generator functions, so they do nothing (and raise nothing) until first consumed.
    var pending: PendingGenerator? = nil
}

struct PendingGenerator {
    let filter: String
    let input: JinjaValue
    let args: [JinjaValue]
    let kwargs: [(String, JinjaValue)]
}

enum Flow { case normal, breakLoop, continueLoop }

final class Interpreter {
    let context: [String: JinjaValue]
    let clock: TemplateClock
    var output = ""
    /// Line of the node being evaluated, for error messages.
    var line = 0
    var namespaces: [JinjaDict] = []
    var macros: [MacroClosure] = []
    var loops: [LoopState] = []
    var iterables: [IterableState] = []
    private var callDepth = 0

    /// Python's recursion limit stops runaway macro recursion in jinja2; this stops it here.
    static let maxCallDepth = 100
    /// Deepest value a namespace attribute may hold (see `assign`).
    static let maxValueDepth = 256

    /// Whether `value` nests containers more than `limit` levels deep (stops early).
    static func nestingExceeds(_ value: JinjaValue, _ limit: Int) -> Bool {
        if limit < 0 { return true }
        switch value {
        case .list(let items), .tuple(let items): return items.contains { nestingExceeds($0, limit - 1) }
        case .dict(let d): return d.values.contains { nestingExceeds($0, limit - 1) }
        case .object(let o):
            if case .method(let receiver, _) = o.kind { return nestingExceeds(receiver, limit - 1) }
            return false
        default: return false
        }
    }

    static let globalFunctions: Set<String> = [
        "range", "dict", "namespace", "raise_exception", "strftime_now", "lipsum", "cycler", "joiner",
    ]

    init(context: [String: JinjaValue], clock: TemplateClock) {
        self.context = context
        self.clock = clock
    }

    func render(_ body: [Stmt]) throws(TemplateError) -> String {
        _ = try execute(body, Scope(parent: nil))
        return output
    }

    // MARK: - Errors

    func error(_ message: String) -> TemplateError { .runtime(message, line: line) }
    func unsupported(_ what: String) -> TemplateError { .unsupported(what, line: line) }

    /// Why a key could not be stored: unhashable in Python, or a kind of key we do not store.
    func dictKeyError(_ key: JinjaValue) -> TemplateError {
        switch key {
        case .list, .dict: return error("unhashable type: '\(Py.typeName(key))'")
        default: return unsupported("dict keys of type '\(Py.typeName(key))'")
        }
    }

    /// The error jinja2's `Undefined` raises when used in a way other than printing/testing.
    func undefinedError(_ hint: String) -> TemplateError {
        .runtime(hint.isEmpty ? "value is undefined" : hint, line: line)
    }

    // MARK: - Statements

    func execute(_ body: [Stmt], _ scope: Scope) throws(TemplateError) -> Flow {
        for stmt in body {
            let flow = try execute(stmt, scope)
            if flow != .normal { return flow }
        }
        return .normal
    }

    /// Runs `body` in a child scope and returns what it printed.
    func capture(_ body: [Stmt], _ scope: Scope) throws(TemplateError) -> String {
        let saved = output
        output = ""
        _ = try execute(body, Scope(parent: scope))
        let text = output
        output = saved
        return text
    }

    func execute(_ stmt: Stmt, _ scope: Scope) throws(TemplateError) -> Flow {
        line = stmt.line
        switch stmt.kind {
        case .output(let text):
            output += text
        case .print(let expr):
            let value = try eval(expr, scope)
            output += try str(value)
        case .conditional(let branches, let otherwise):
            for (test, body) in branches {
                if Py.truthy(try eval(test, scope)) { return try execute(body, scope) }
            }
            return try execute(otherwise, scope)
        case .forLoop(let target, let iterable, let filter, let body, let otherwise):
            return try runLoop(target, iterable, filter, body, otherwise, scope)
        case .set(let target, let expr):
            try assign(target, try eval(expr, scope), scope)
        case .setBlock(let target, let filter, let body):
            var value = JinjaValue.string(try capture(body, scope))
            if let filter { value = try evalFilterChain(filter, input: value, scope) }
            try assign(target, value, scope)
        case .macro(let definition):
            scope.vars[definition.name] = .object(JinjaObject(kind: .macro(macros.count)))
            macros.append(MacroClosure(definition: definition, scope: scope))
        case .callBlock(let caller, let call):
            let callerValue = JinjaValue.object(JinjaObject(kind: .macro(macros.count)))
            macros.append(MacroClosure(definition: caller, scope: scope))
            guard case .call(let calleeExpr, let arguments) = call.kind else { throw unsupported("call block without a call") }
            let callee = try eval(calleeExpr, scope)
            var (args, kwargs) = try evalArguments(arguments, scope)
            kwargs.append(("caller", callerValue))
            line = stmt.line
            output += try str(try self.call(callee, args, kwargs))
        case .filterBlock(let filter, let body):
            let text = try capture(body, scope)
            output += try str(try evalFilterChain(filter, input: .string(text), scope))
        case .with(let assignments, let body):
            let inner = Scope(parent: scope)
            for (target, expr) in assignments { try assign(target, try eval(expr, scope), inner) }
            return try execute(body, inner)
        case .generation(let body):
            output += try capture(body, scope)
        case .breakLoop:
            return .breakLoop
        case .continueLoop:
            return .continueLoop
        }
        return .normal
    }

    private func runLoop(
        _ target: Target, _ iterableExpr: Expr, _ filter: Expr?, _ body: [Stmt], _ otherwise: [Stmt], _ scope: Scope
    ) throws(TemplateError) -> Flow {
        let iterable = try eval(iterableExpr, scope)
        var items = try iterate(iterable)
        if let filter {
            var kept: [JinjaValue] = []
            for item in items {
                let s = Scope(parent: scope)
                try assign(target, item, s)
                if Py.truthy(try eval(filter, s)) { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty { return try execute(otherwise, Scope(parent: scope)) }
        let loopID = loops.count
        loops.append(LoopState(items: items, index: 0))
        for i in items.indices {
            loops[loopID].index = i
            let s = Scope(parent: scope)
            try assign(target, items[i], s)
            s.vars["loop"] = .object(JinjaObject(kind: .loop(loopID)))
            if try execute(body, s) == .breakLoop { break }
        }
        return .normal
    }

    func assign(_ target: Target, _ value: JinjaValue, _ scope: Scope) throws(TemplateError) {
        switch target {
        case .name(let name):
            scope.vars[name] = value
        case .tuple(let targets):
            let items = try iterate(value)
            if items.count > targets.count { throw error("too many values to unpack (expected \(targets.count))") }
            if items.count < targets.count {
                throw error("not enough values to unpack (expected \(targets.count), got \(items.count))")
            }
            for (t, v) in zip(targets, items) { try assign(t, v, scope) }
        case .namespaceAttribute(let name, let attribute):
            guard case .object(let o) = lookup(name, scope), case .namespace(let id) = o.kind, id < namespaces.count else {
                throw error("cannot assign attribute on non-namespace object")
            }
            // Only namespaces carry values from one loop iteration to the next, so only here can
            // a template nest values without bound; deep nesting would exhaust the stack later.
            if Self.nestingExceeds(value, Self.maxValueDepth) {
                throw unsupported("values nested deeper than \(Self.maxValueDepth) levels")
            }
            namespaces[id][attribute] = value
        }
    }

    // MARK: - Names

    func lookup(_ name: String, _ scope: Scope) -> JinjaValue {
        if let v = scope.lookup(name) { return v }
        if let v = context[name] { return v }
        if Self.globalFunctions.contains(name) { return .object(JinjaObject(kind: .function(name))) }
        return .undefined("'\(name)' is undefined")
    }

    // MARK: - Expressions

    func eval(_ expr: Expr, _ scope: Scope) throws(TemplateError) -> JinjaValue {
        line = expr.line
        switch expr.kind {
        case .constant(let v):
            return v
        case .name(let name):
            return lookup(name, scope)
        case .list(let items):
            var out: [JinjaValue] = []
            for item in items { out.append(try eval(item, scope)) }
            return .list(out)
        case .tuple(let items):
            var out: [JinjaValue] = []
            for item in items { out.append(try eval(item, scope)) }
            return .tuple(out)
        case .dict(let pairs):
            var dict = JinjaDict()
            for (k, v) in pairs {
                let key = try eval(k, scope)
                let value = try eval(v, scope)
                guard dict.store(key, value) else {
                    line = expr.line
                    throw dictKeyError(key)
                }
            }
            return .dict(dict)
        case .getattr(let objectExpr, let name):
            let object = try eval(objectExpr, scope)
            line = expr.line
            return try getattr(object, name)
        case .getitem(let objectExpr, let keyExpr):
            let object = try eval(objectExpr, scope)
            let key = try eval(keyExpr, scope)
            line = expr.line
            return try getitem(object, key)
        case .slice(let objectExpr, let a, let b, let c):
            let object = try eval(objectExpr, scope)
            let start = try a.map { (e: Expr) throws(TemplateError) in try eval(e, scope) }
            let stop = try b.map { (e: Expr) throws(TemplateError) in try eval(e, scope) }
            let step = try c.map { (e: Expr) throws(TemplateError) in try eval(e, scope) }
            line = expr.line
            return try slice(object, start, stop, step)
        case .unary(let op, let operandExpr):
            let operand = try eval(operandExpr, scope)
            line = expr.line
            return try unary(op, operand)
        case .binary(let op, let l, let r):
            let left = try eval(l, scope)
            let right = try eval(r, scope)
            line = expr.line
            return try binary(op, left, right)
        case .and(let l, let r):
            let left = try eval(l, scope)
            return Py.truthy(left) ? try eval(r, scope) : left
        case .or(let l, let r):
            let left = try eval(l, scope)
            return Py.truthy(left) ? left : try eval(r, scope)
        case .not(let operand):
            return .bool(!Py.truthy(try eval(operand, scope)))
        case .compare(let first, let ops):
            var left = try eval(first, scope)
            for (op, rightExpr) in ops {
                let right = try eval(rightExpr, scope)
                line = expr.line
                if !(try compare(op, left, right)) { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .concat(let parts):
            var text = ""
            for part in parts { text += try str(try eval(part, scope)) }
            return .string(text)
        case .conditional(let test, let then, let otherwise):
            if Py.truthy(try eval(test, scope)) { return try eval(then, scope) }
            if let otherwise { return try eval(otherwise, scope) }
            return .undefined(
                "the inline if-expression on line \(expr.line) evaluated to false and no else section was defined.")
        case .call(let calleeExpr, let arguments):
            let callee = try eval(calleeExpr, scope)
            let (args, kwargs) = try evalArguments(arguments, scope)
            line = expr.line
            return try call(callee, args, kwargs)
        case .filter:
            return try evalFilterChain(expr, input: .missing, scope)
        case .test(let inputExpr, let name, let arguments):
            let input = try eval(inputExpr, scope)
            let (args, kwargs) = try evalArguments(arguments, scope)
            line = expr.line
            return .bool(try applyTest(name, input, args, kwargs))
        }
    }

    func evalArguments(_ arguments: Arguments, _ scope: Scope) throws(TemplateError) -> ([JinjaValue], [(String, JinjaValue)]) {
        var args: [JinjaValue] = []
        for a in arguments.positional { args.append(try eval(a, scope)) }
        var kwargs: [(String, JinjaValue)] = []
        for (k, e) in arguments.keyword { kwargs.append((k, try eval(e, scope))) }
        return (args, kwargs)
    }

    /// Evaluates a filter chain; the innermost filter with no input expression gets `input`
    /// (the captured text of a filter block or block `set`).
    func evalFilterChain(_ expr: Expr, input: JinjaValue, _ scope: Scope) throws(TemplateError) -> JinjaValue {
        guard case .filter(let inner, let name, let arguments) = expr.kind else { return try eval(expr, scope) }
        let value: JinjaValue
        if let inner { value = try evalFilterChain(inner, input: input, scope) } else { value = input }
        let (args, kwargs) = try evalArguments(arguments, scope)
        line = expr.line
        return try applyFilter(name, value, args, kwargs)
    }

    // MARK: - Calls

    func call(_ callee: JinjaValue, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws(TemplateError) -> JinjaValue {
        switch callee {
        case .object(let o):
            switch o.kind {
            case .function(let name): return try callGlobal(name, args, kwargs)
            case .macro(let id): return try callMacro(id, args, kwargs)
            case .method(let receiver, let name): return try callMethod(receiver, name, args, kwargs)
            case .namespace, .loop, .iterable: throw error("'\(Py.typeName(callee))' object is not callable")
            }
        case .undefined(let hint):
            throw undefinedError(hint)
        default:
            throw error("'\(Py.typeName(callee))' object is not callable")
        }
    }

    /// jinja2's `Macro.__call__`: positional, then keyword, then default, else undefined;
    /// extra arguments only when the body uses `varargs`/`kwargs`.
    func callMacro(_ id: Int, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws(TemplateError) -> JinjaValue {
        guard id < macros.count else { throw error("unknown macro") }
        let closure = macros[id]
        let def = closure.definition
        callDepth += 1
        defer { callDepth -= 1 }
        if callDepth > Self.maxCallDepth { throw error("maximum macro recursion depth exceeded") }
        let callLine = line
        let scope = Scope(parent: closure.scope)
        var remaining = kwargs
        let firstDefault = def.parameters.count - def.defaults.count
        for (i, param) in def.parameters.enumerated() {
            if i < args.count {
                scope.vars[param] = args[i]
            } else if let k = remaining.firstIndex(where: { $0.0 == param }) {
                scope.vars[param] = remaining[k].1
                remaining.remove(at: k)
            } else if i >= firstDefault {
                scope.vars[param] = try eval(def.defaults[i - firstDefault], scope)
            } else {
                scope.vars[param] = .undefined("parameter '\(param)' was not provided")
            }
        }
        line = callLine
        if def.usesCaller {
            if let k = remaining.firstIndex(where: { $0.0 == "caller" }) {
                scope.vars["caller"] = remaining[k].1
                remaining.remove(at: k)
            } else {
                scope.vars["caller"] = .undefined("No caller defined")
            }
        }
        if def.usesKwargs {
            scope.vars["kwargs"] = .dict(JinjaDict(remaining))
        } else if let first = remaining.first {
            throw error("macro '\(def.name)' takes no keyword argument '\(first.0)'")
        }
        if def.usesVarargs {
            scope.vars["varargs"] = .tuple(Array(args.dropFirst(def.parameters.count)))
        } else if args.count > def.parameters.count {
            throw error("macro '\(def.name)' takes not more than \(def.parameters.count) argument(s)")
        }
        let saved = output
        output = ""
        _ = try execute(def.body, scope)
        let text = output
        output = saved
        return .string(text)
    }

    // MARK: - Iteration and printing

    /// Python iteration as a for loop sees it; jinja2's `Undefined` iterates as empty, and an
    /// iterator (generator) yields what is left of it and is then exhausted.
    func iterate(_ value: JinjaValue) throws(TemplateError) -> [JinjaValue] {
        switch value {
        case .list(let items), .tuple(let items): return items
        case .dict(let d): return d.keys
        case .string(let s), .markup(let s): return s.unicodeScalars.map { .string(String($0)) }
        case .undefined: return []
        case .object(let o):
            // Iterating a LoopContext advances the running loop itself; nobody should rely on that.
            if case .loop = o.kind { throw unsupported("iterating a loop object") }
            guard case .iterable(let id, let type, _) = o.kind, id < iterables.count else { break }
            let state = try iterableState(id)
            guard type.isIterator else { return state.items }
            iterables[id].position = state.items.count
            return Array(state.items[state.position...])
        default: break
        }
        throw error("'\(Py.typeName(value))' object is not iterable")
    }

    /// `next(iter(value))`: for an iterator this consumes one item only.
    func firstItem(_ value: JinjaValue) throws(TemplateError) -> JinjaValue? {
        if case .object(let o) = value, case .iterable(let id, let type, _) = o.kind, type.isIterator, id < iterables.count {
            let state = try iterableState(id)
            guard state.position < state.items.count else { return nil }
            iterables[id].position += 1
            return state.items[state.position]
        }
        return try iterate(value).first
    }

    /// The state of an iterable, running its generator filter first if it has not run yet.
    func iterableState(_ id: Int) throws(TemplateError) -> IterableState {
        if let pending = iterables[id].pending {
            // Cleared first: a generator that raised is finished, as in Python.
            iterables[id].pending = nil
            iterables[id].items = try runGenerator(pending)
        }
        return iterables[id]
    }

    /// A not-yet-run generator filter (always truthy, with no length, like a Python generator).
    func makeGenerator(_ filter: String, _ input: JinjaValue, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) -> JinjaValue {
        iterables.append(IterableState(items: [], pending: PendingGenerator(filter: filter, input: input, args: args, kwargs: kwargs)))
        return .object(JinjaObject(kind: .iterable(iterables.count - 1, .generator, count: 0)))
    }

    func makeIterable(_ type: IterableType, _ items: [JinjaValue], range: (Int, Int, Int)? = nil) -> JinjaValue {
        iterables.append(IterableState(items: items, range: range))
        return .object(JinjaObject(kind: .iterable(iterables.count - 1, type, count: items.count)))
    }

    /// Python `str(value)`, which is what `{{ value }}` prints.
    func str(_ value: JinjaValue) throws(TemplateError) -> String {
        switch value {
        case .undefined: return ""
        case .string(let s), .markup(let s): return s
        case .null: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return Py.floatRepr(d)
        case .list, .tuple, .dict, .object: return try repr(value)
        }
    }

    /// Python `repr(value)`, used for items inside printed containers.
    func repr(_ value: JinjaValue) throws(TemplateError) -> String {
        switch value {
        case .undefined: return "Undefined"
        case .string(let s): return Py.stringRepr(s)
        case .markup(let s): return "Markup(\(Py.stringRepr(s)))"
        case .null, .bool, .int, .double: return try str(value)
        case .list(let items):
            var parts: [String] = []
            for item in items { parts.append(try repr(item)) }
            return "[" + parts.joined(separator: ", ") + "]"
        case .tuple(let items):
            var parts: [String] = []
            for item in items { parts.append(try repr(item)) }
            return "(" + parts.joined(separator: ", ") + (items.count == 1 ? ",)" : ")")
        case .dict(let d):
            var parts: [String] = []
            for (k, v) in d.pairs { parts.append(try repr(k) + ": " + repr(v)) }
            return "{" + parts.joined(separator: ", ") + "}"
        case .object(let o):
            if case .namespace(let id) = o.kind, id < namespaces.count {
                return "<Namespace " + (try repr(.dict(namespaces[id]))) + ">"
            }
            if case .loop(let id) = o.kind, id < loops.count {
                return "<LoopContext \(loops[id].index + 1)/\(loops[id].items.count)>"
            }
            if case .iterable(let id, let type, _) = o.kind, id < iterables.count {
                let state = iterables[id]
                switch type {
                case .dictKeys, .dictValues, .dictItems:
                    return type.pythonName + "(" + (try repr(.list(state.items))) + ")"
                case .range:
                    if let (start, stop, step) = state.range {
                        return step == 1 ? "range(\(start), \(stop))" : "range(\(start), \(stop), \(step))"
                    }
                default:
                    break
                }
            }
            // CPython prints these with memory addresses, which no fixture could match.
            throw unsupported("printing a \(Py.typeName(value)) object")
        }
    }
}
