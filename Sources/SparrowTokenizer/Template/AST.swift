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
