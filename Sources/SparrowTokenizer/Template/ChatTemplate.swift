import Foundation

/// Where `strftime_now` gets the time: transformers calls `datetime.now()` (local, naive).
/// Tests pin it with `.fixed(...)` so renders are reproducible.
public struct TemplateClock: Sendable {
    /// The current instant.
    public var now: @Sendable () -> Date
    /// Seconds east of UTC at a given instant (the local time zone's offset).
    public var utcOffset: @Sendable (Date) -> Int

    public init(now: @escaping @Sendable () -> Date, utcOffset: @escaping @Sendable (Date) -> Int) {
        self.now = now
        self.utcOffset = utcOffset
    }

    /// The system clock in the process's time zone, like `datetime.now()`.
    public static let system = TemplateClock(now: { Date() }, utcOffset: { TimeZone.current.secondsFromGMT(for: $0) })

    /// Always `date`, shown at the given UTC offset.
    public static func fixed(_ date: Date, utcOffsetSeconds: Int = 0) -> TemplateClock {
        TemplateClock(now: { date }, utcOffset: { _ in utcOffsetSeconds })
    }
}

/// A Hugging Face chat template, parsed once and rendered byte-for-byte as transformers'
/// `apply_chat_template` renders it with Python jinja2 (`ImmutableSandboxedEnvironment` with
/// `trim_blocks`, `lstrip_blocks` and loop controls; `tojson` as `json.dumps(ensure_ascii=False)`;
/// `raise_exception` and `strftime_now` globals).
public struct ChatTemplate: Sendable {
    let program: [Stmt]
    /// The clock behind `strftime_now(format)`.
    public var clock: TemplateClock = .system

    /// Parses `source`. Throws `.syntax` for text jinja2 would reject when compiling (including
    /// unknown filter or test names) and `.unsupported` for constructs this interpreter lacks.
    public init(source: String) throws(TemplateError) {
        program = try Parser.parse(try Lexer.tokenize(source))
    }

    /// Renders with the given template variables (the keyword arguments of jinja2's `render`).
    public func render(_ context: [String: JinjaValue]) throws(TemplateError) -> String {
        try Interpreter(context: context, clock: clock).render(program)
    }

    /// Renders a request as `sparrow render` reads it: a JSON object with `"messages"`, optional
    /// `"tools"`, `"documents"`, `"add_generation_prompt"` (default false), `"enable_thinking"`
    /// and any other keys, which become template variables like transformers' `**kwargs`.
    ///
    /// As in transformers, `messages`, `tools`, `documents` and `add_generation_prompt` are always
    /// passed (`tools`/`documents` as `None` when absent), while any other key, `enable_thinking`
    /// included, is only defined when the request has it. `bos_token`/`eos_token` come from the
    /// arguments unless the request overrides them (transformers lets kwargs override special tokens).
    public func render(requestJSON: String, bosToken: String, eosToken: String) throws(TemplateError) -> String {
        guard case .dict(let request) = try JinjaValue.parseJSON(requestJSON) else {
            throw .invalidRequest("the request must be a JSON object")
        }
        guard let messages = request["messages"] else { throw .invalidRequest("the request has no \"messages\"") }
        guard case .list = messages else { throw .invalidRequest("\"messages\" must be an array") }
        var context: [String: JinjaValue] = ["bos_token": .string(bosToken), "eos_token": .string(eosToken)]
        for (key, value) in request.pairs {
            guard case .string(let name) = key else { continue }
            context[name] = value
        }
        context["tools"] = request["tools"] ?? .null
        context["documents"] = request["documents"] ?? .null
        context["add_generation_prompt"] = request["add_generation_prompt"] ?? .bool(false)
        return try render(context)
    }
}
