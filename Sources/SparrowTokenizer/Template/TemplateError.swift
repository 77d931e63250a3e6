/// Errors raised while parsing or rendering a chat template.
///
/// Each case says which of jinja2's failure modes it stands for, so callers can tell a broken
/// template (`syntax`), a construct this interpreter lacks (`unsupported`), a failure jinja2 would
/// also hit at render time (`runtime`), and the template's own `raise_exception(...)` (`raised`).
public enum TemplateError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The template text is not valid Jinja; jinja2 raises `TemplateSyntaxError` (or
    /// `TemplateAssertionError`, e.g. for an unknown filter name) when compiling it.
    case syntax(String, line: Int)
    /// The template uses a Jinja construct that this interpreter does not implement. jinja2 might
    /// render it; we refuse rather than render something different.
    case unsupported(String, line: Int)
    /// Rendering failed where jinja2 fails too: an `UndefinedError`, a Python `TypeError`, a
    /// sandbox `SecurityError`, a division by zero, and so on.
    case runtime(String, line: Int)
    /// The template called `raise_exception(message)`; transformers raises `TemplateError(message)`.
    case raised(String)
    /// A JSON document (a request, or a value passed in) is malformed; `offset` is a byte offset.
    case invalidJSON(String, offset: Int)
    /// The request is well-formed JSON but not a usable chat request (e.g. not an object).
    case invalidRequest(String)

    public var description: String {
        switch self {
        case .syntax(let message, let line): return "template syntax error (line \(line)): \(message)"
        case .unsupported(let what, let line): return "unsupported template construct (line \(line)): \(what)"
        case .runtime(let message, let line): return "template error (line \(line)): \(message)"
        case .raised(let message): return "template raised: \(message)"
        case .invalidJSON(let message, let offset): return "invalid JSON at byte \(offset): \(message)"
        case .invalidRequest(let message): return "invalid chat request: \(message)"
        }
    }
}
