/// Syntax tree of a parsed template, shaped after jinja2's `nodes.py` (only the nodes that
/// templates parsed by `Parser` can produce). Every node keeps its source line for errors.
struct Expr: Sendable {
    let line: Int
    let kind: Kind

    indirect enum Kind: Sendable {
        case constant(JinjaValue)
        case name(String)
        case list([Expr])
        case tuple([Expr])
        case dict([(Expr, Expr)])
        /// `a.b`: Python attribute first, then item (jinja2's `environment.getattr`).
        case getattr(Expr, String)
        /// `a[b]`: item first, then attribute (jinja2's `environment.getitem`).
        case getitem(Expr, Expr)
        /// `a[start:stop:step]`.
        case slice(Expr, Expr?, Expr?, Expr?)
        case unary(UnaryOp, Expr)
        case binary(BinaryOp, Expr, Expr)
        case and(Expr, Expr)
        case or(Expr, Expr)
        case not(Expr)
        /// A comparison chain `a < b <= c`, evaluated as Python does (each operand once).
        case compare(Expr, [(CompareOp, Expr)])
        /// `a ~ b ~ c`: string concatenation of each operand's `str()`.
        case concat([Expr])
        /// `a if test else b`; without `else` the result is undefined when the test is false.
        case conditional(test: Expr, then: Expr, otherwise: Expr?)
        case call(Expr, Arguments)
        /// `input | name(args)`; `input` is nil for the filter of a filter block or block set.
        case filter(Expr?, String, Arguments)
        /// `input is name(args)`.
        case test(Expr, String, Arguments)
    }
}

struct Arguments: Sendable {
    var positional: [Expr] = []
    var keyword: [(String, Expr)] = []
}

enum UnaryOp: Sendable { case negate, plus }

enum BinaryOp: String, Sendable {
    case add = "+", subtract = "-", multiply = "*", divide = "/", floorDivide = "//", modulo = "%", power = "**"
}

enum CompareOp: String, Sendable {
    case eq = "==", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">=", `in` = "in", notIn = "not in"
}

/// Assignment targets of `set`, `for` and `with`.
indirect enum Target: Sendable {
    case name(String)
    case tuple([Target])
    /// `ns.attr` in `{% set ns.attr = ... %}`.
    case namespaceAttribute(String, String)
}

struct MacroDefinition: Sendable {
    let name: String
    let parameters: [String]
    /// Defaults for the trailing parameters (jinja2 keeps them right-aligned).
    let defaults: [Expr]
    let body: [Stmt]
    /// Whether the body mentions `varargs` / `kwargs` / `caller`; jinja2 only accepts extra
    /// positional or keyword arguments when it does.
    let usesVarargs: Bool
    let usesKwargs: Bool
    let usesCaller: Bool
}

struct Stmt: Sendable {
    let line: Int
    let kind: Kind

    indirect enum Kind: Sendable {
        /// Literal template text.
        case output(String)
        /// `{{ expr }}`.
        case print(Expr)
        /// `if`/`elif` branches in order, then the `else` body.
        case conditional([(Expr, [Stmt])], otherwise: [Stmt])
        case forLoop(target: Target, iterable: Expr, filter: Expr?, body: [Stmt], otherwise: [Stmt])
        case set(Target, Expr)
        /// `{% set x | filters %}body{% endset %}`.
        case setBlock(Target, filter: Expr?, body: [Stmt])
        case macro(MacroDefinition)
        /// `{% call(params) m(args) %}body{% endcall %}`: calls `m` with `caller` bound to the body.
        case callBlock(caller: MacroDefinition, call: Expr)
        /// `{% filter f %}body{% endfilter %}`: `filter` is the chain applied to the body's text.
        case filterBlock(filter: Expr, body: [Stmt])
        case with([(Target, Expr)], body: [Stmt])
        /// transformers' `{% generation %}` tag (its AssistantTracker extension): renders the body.
        case generation([Stmt])
        case breakLoop
        case continueLoop
    }
}

/// jinja2's compiler rejects an unknown filter or test name, except inside an `if` statement or
/// an inline `a if b else c` ("soft" frames), where the error is deferred until the filter runs.
/// Loop bodies, macros and other inner frames are not soft even inside an `if`.
enum NameCheck {
    static func statements(_ body: [Stmt], soft: Bool) throws(TemplateError) {
        for stmt in body { try statement(stmt, soft: soft) }
    }

    static func statement(_ stmt: Stmt, soft: Bool) throws(TemplateError) {
        switch stmt.kind {
        case .output, .breakLoop, .continueLoop:
            break
        case .print(let e), .set(_, let e):
            try expression(e, soft: soft)
        case .conditional(let branches, let otherwise):
            for (test, body) in branches {
                try expression(test, soft: true)
                try statements(body, soft: true)
            }
            try statements(otherwise, soft: true)
        case .forLoop(_, let iterable, let filter, let body, let otherwise):
            try expression(iterable, soft: soft)
            if let filter { try expression(filter, soft: false) }
            try statements(body, soft: false)
            try statements(otherwise, soft: false)
        case .setBlock(_, let filter, let body):
            if let filter { try expression(filter, soft: false) }
            try statements(body, soft: false)
        case .macro(let definition):
            try macro(definition)
        case .callBlock(let caller, let call):
            try macro(caller)
            try expression(call, soft: soft)
        case .filterBlock(let filter, let body):
            try expression(filter, soft: false)
            try statements(body, soft: false)
        case .with(let assignments, let body):
            for (_, e) in assignments { try expression(e, soft: soft) }
            try statements(body, soft: false)
        case .generation(let body):
            try statements(body, soft: false)
        }
    }

    static func macro(_ definition: MacroDefinition) throws(TemplateError) {
        for d in definition.defaults { try expression(d, soft: false) }
        try statements(definition.body, soft: false)
    }

    static func arguments(_ args: Arguments, soft: Bool) throws(TemplateError) {
        for a in args.positional { try expression(a, soft: soft) }
        for (_, a) in args.keyword { try expression(a, soft: soft) }
    }

    static func expression(_ expr: Expr, soft: Bool) throws(TemplateError) {
        switch expr.kind {
        case .constant, .name:
            break
        case .list(let items), .tuple(let items), .concat(let items):
            for item in items { try expression(item, soft: soft) }
        case .dict(let pairs):
            for (k, v) in pairs {
                try expression(k, soft: soft)
                try expression(v, soft: soft)
            }
        case .getattr(let e, _), .unary(_, let e), .not(let e):
            try expression(e, soft: soft)
        case .getitem(let a, let b), .binary(_, let a, let b), .and(let a, let b), .or(let a, let b):
            try expression(a, soft: soft)
            try expression(b, soft: soft)
        case .slice(let e, let a, let b, let c):
            try expression(e, soft: soft)
            for part in [a, b, c] { if let part { try expression(part, soft: soft) } }
        case .compare(let first, let ops):
            try expression(first, soft: soft)
            for (_, e) in ops { try expression(e, soft: soft) }
        case .conditional(let test, let then, let otherwise):
            try expression(test, soft: true)
            try expression(then, soft: true)
            if let otherwise { try expression(otherwise, soft: true) }
        case .call(let callee, let args):
            try expression(callee, soft: soft)
            try arguments(args, soft: soft)
        case .filter(let input, let name, let args):
            if let input { try expression(input, soft: soft) }
            try arguments(args, soft: soft)
            if !soft && !Builtins.filters.contains(name) && !Builtins.unsupportedFilters.contains(name) {
                throw .syntax("No filter named '\(name)'.", line: expr.line)
            }
        case .test(let input, let name, let args):
            try expression(input, soft: soft)
            try arguments(args, soft: soft)
            if !soft && !Builtins.tests.contains(name) && !Builtins.unsupportedTests.contains(name) {
                throw .syntax("No test named '\(name)'.", line: expr.line)
            }
        }
    }
}
