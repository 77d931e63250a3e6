/// Recursive-descent parser mirroring jinja2's `parser.py`: the same precedence ladder
/// (condexpr < or < and < not < compare < +,- < ~ < *,/,//,% < ** < unary < filters/tests),
/// the same tuple rules and the same statement grammar for the tags it supports.
struct Parser {
    let tokens: [Token]
    var index = 0
    var loopDepth = 0
    var depth = 0
    /// Names referenced inside each macro being parsed (to find `varargs`, `kwargs`, `caller`).
    var macroNameUses: [Set<String>] = []

    /// Expression and block nesting beyond this is refused rather than risking the stack (jinja2
    /// itself hits Python's recursion or indentation limits at about this depth).
    static let maxDepth = 100

    static func parse(_ tokens: [Token]) throws(TemplateError) -> [Stmt] {
        var parser = Parser(tokens: tokens)
        let body = try parser.subparse(endTags: nil)
        try NameCheck.statements(body, soft: false)
        return body
    }

    private init(tokens: [Token]) { self.tokens = tokens }

    // MARK: - Token stream

    var current: Token { tokens[index] }
    func look() -> Token { tokens[min(index + 1, tokens.count - 1)] }
    @discardableResult
    mutating func next() -> Token {
        let t = tokens[index]
        if index < tokens.count - 1 { index += 1 }
        return t
    }

    func isName(_ t: Token, _ name: String) -> Bool {
        if case .name(let n) = t.kind { return n == name }
        return false
    }

    func isOp(_ t: Token, _ op: String) -> Bool {
        if case .op(let o) = t.kind { return o == op }
        return false
    }

    mutating func skipName(_ name: String) -> Bool {
        guard isName(current, name) else { return false }
        next()
        return true
    }

    mutating func skipOp(_ op: String) -> Bool {
        guard isOp(current, op) else { return false }
        next()
        return true
    }

    func fail(_ message: String, _ token: Token? = nil) -> TemplateError {
        .syntax(message, line: (token ?? current).line)
    }

    func describe(_ t: Token) -> String {
        switch t.kind {
        case .data: return "template data"
        case .variableBegin: return "begin of print statement"
        case .variableEnd: return "end of print statement"
        case .blockBegin: return "begin of statement block"
        case .blockEnd: return "end of statement block"
        case .name(let n): return n
        case .string: return "string"
        case .integer: return "integer"
        case .float: return "float"
        case .op(let o): return o
        case .eof: return "end of template"
        }
    }

    mutating func expectOp(_ op: String) throws(TemplateError) {
        guard skipOp(op) else { throw fail("expected token '\(op)', got '\(describe(current))'") }
    }

    mutating func expectName() throws(TemplateError) -> String {
        guard case .name(let n) = current.kind else { throw fail("expected token 'name', got '\(describe(current))'") }
        next()
        return n
    }

    mutating func expectName(_ name: String) throws(TemplateError) {
        guard skipName(name) else { throw fail("expected token '\(name)', got '\(describe(current))'") }
    }

    mutating func expectBlockEnd() throws(TemplateError) {
        guard current.kind == .blockEnd else { throw fail("expected token 'end of statement block', got '\(describe(current))'") }
        next()
    }

    mutating func enter() throws(TemplateError) {
        depth += 1
        if depth > Self.maxDepth { throw .unsupported("nesting deeper than \(Self.maxDepth) levels", line: current.line) }
    }

    // MARK: - Statements

    private mutating func subparse(endTags: [String]?) throws(TemplateError) -> [Stmt] {
        var body: [Stmt] = []
        while true {
            let t = current
            switch t.kind {
            case .data(let text):
                next()
                body.append(Stmt(line: t.line, kind: .output(text)))
            case .variableBegin:
                next()
                let e = try parseTuple()
                guard current.kind == .variableEnd else {
                    throw fail("expected token 'end of print statement', got '\(describe(current))'")
                }
                next()
                body.append(Stmt(line: t.line, kind: .print(e)))
            case .blockBegin:
                next()
                if let endTags, case .name(let n) = current.kind, endTags.contains(n) { return body }
                try enter()
                body.append(contentsOf: try parseStatement())
                depth -= 1
                try expectBlockEnd()
            case .eof:
                if let endTags {
                    let wanted = endTags.map { "'\($0)'" }.joined(separator: " or ")
                    throw fail("Unexpected end of template. Jinja was looking for the following tags: \(wanted).")
                }
                return body
            default:
                throw fail("unexpected '\(describe(t))'")
            }
        }
    }

    /// jinja2's `parse_statements`: optional `:`, end of the opening tag, body up to an end tag.
    private mutating func parseStatements(_ endTags: [String], dropNeedle: Bool = false) throws(TemplateError) -> [Stmt] {
        _ = skipOp(":")
        try expectBlockEnd()
        let body = try subparse(endTags: endTags)
        if current.kind == .eof {
            let wanted = endTags.map { "'\($0)'" }.joined(separator: " or ")
            throw fail("Unexpected end of template. Jinja was looking for the following tags: \(wanted).")
        }
        if dropNeedle { next() }
        return body
    }

    private mutating func parseStatement() throws(TemplateError) -> [Stmt] {
        let t = current
        guard case .name(let tag) = t.kind else { throw fail("tag name expected") }
        switch tag {
        case "for": return [try parseFor()]
        case "if": return [try parseIf()]
        case "set": return [try parseSet()]
        case "macro": return [try parseMacro()]
        case "call": return [try parseCallBlock()]
        case "filter":
            next()
            guard let filter = try parseFilter(nil, startInline: true) else { throw fail("expected filter") }
            let body = try parseStatements(["endfilter"], dropNeedle: true)
            return [Stmt(line: t.line, kind: .filterBlock(filter: filter, body: body))]
        case "with": return [try parseWith()]
        case "generation":
            next()
            let body = try parseStatements(["endgeneration"], dropNeedle: true)
            return [Stmt(line: t.line, kind: .generation(body))]
        case "break", "continue":
            // jinja2.ext.loopcontrols; outside a loop Python's compiler rejects the generated code.
            next()
            guard loopDepth > 0 else { throw fail("'\(tag)' outside loop", t) }
            return [Stmt(line: t.line, kind: tag == "break" ? .breakLoop : .continueLoop)]
        case "block", "extends", "include", "import", "from", "autoescape":
            throw .unsupported("tag '\(tag)'", line: t.line)
        default:
            throw fail("Encountered unknown tag '\(tag)'.", t)
        }
    }

    private mutating func parseFor() throws(TemplateError) -> Stmt {
        let line = next().line
        let target = try parseAssignTarget(extraEnd: ["in"])
        try expectName("in")
        let iterable = try parseTuple(withCondexpr: false, extraEnd: ["recursive"])
        var filter: Expr? = nil
        if skipName("if") { filter = try parseExpression() }
        if isName(current, "recursive") { throw .unsupported("recursive for loops", line: current.line) }
        loopDepth += 1
        let body = try parseStatements(["endfor", "else"])
        loopDepth -= 1
        var otherwise: [Stmt] = []
        if isName(next(), "else") { otherwise = try parseStatements(["endfor"], dropNeedle: true) }
        return Stmt(line: line, kind: .forLoop(target: target, iterable: iterable, filter: filter, body: body, otherwise: otherwise))
    }

    private mutating func parseIf() throws(TemplateError) -> Stmt {
        let line = next().line
        var branches: [(Expr, [Stmt])] = []
        var otherwise: [Stmt] = []
        while true {
            let test = try parseTuple(withCondexpr: false)
            let body = try parseStatements(["elif", "else", "endif"])
            branches.append((test, body))
            let t = next()
            if isName(t, "elif") { continue }
            if isName(t, "else") { otherwise = try parseStatements(["endif"], dropNeedle: true) }
            break
        }
        return Stmt(line: line, kind: .conditional(branches, otherwise: otherwise))
    }

    private mutating func parseSet() throws(TemplateError) -> Stmt {
        let line = next().line
        let target = try parseAssignTarget(withNamespace: true)
        if skipOp("=") { return Stmt(line: line, kind: .set(target, try parseTuple())) }
        let filter = try parseFilter(nil)
        let body = try parseStatements(["endset"], dropNeedle: true)
        return Stmt(line: line, kind: .setBlock(target, filter: filter, body: body))
    }

    private mutating func parseSignature() throws(TemplateError) -> ([String], [Expr]) {
        var params: [String] = []
        var defaults: [Expr] = []
        try expectOp("(")
        while !isOp(current, ")") {
            if !params.isEmpty { try expectOp(",") }
            let name = try expectName()
            if skipOp("=") {
                defaults.append(try parseExpression())
            } else if !defaults.isEmpty {
                throw fail("non-default argument follows default argument")
            }
            params.append(name)
        }
        try expectOp(")")
        return (params, defaults)
    }

    /// Parses a macro-like body (macro or call block) with its own loop context and name uses.
    private mutating func parseMacroBody(_ name: String, _ params: [String], _ defaults: [Expr], end: String) throws(TemplateError) -> MacroDefinition {
        macroNameUses.append([])
        let savedLoopDepth = loopDepth
        loopDepth = 0
        let body = try parseStatements([end], dropNeedle: true)
        loopDepth = savedLoopDepth
        let uses = macroNameUses.removeLast()
        if !macroNameUses.isEmpty { macroNameUses[macroNameUses.count - 1].formUnion(uses) }
        return MacroDefinition(
            name: name, parameters: params, defaults: defaults, body: body,
            usesVarargs: uses.contains("varargs"), usesKwargs: uses.contains("kwargs"), usesCaller: uses.contains("caller"))
    }

    private mutating func parseMacro() throws(TemplateError) -> Stmt {
        let line = next().line
        let name = try expectName()
        let (params, defaults) = try parseSignature()
        return Stmt(line: line, kind: .macro(try parseMacroBody(name, params, defaults, end: "endmacro")))
    }

    private mutating func parseCallBlock() throws(TemplateError) -> Stmt {
        let line = next().line
        var params: [String] = []
        var defaults: [Expr] = []
        if isOp(current, "(") { (params, defaults) = try parseSignature() }
        let call = try parseExpression()
        guard case .call = call.kind else { throw fail("expected call") }
        let caller = try parseMacroBody("caller", params, defaults, end: "endcall")
        return Stmt(line: line, kind: .callBlock(caller: caller, call: call))
    }

    private mutating func parseWith() throws(TemplateError) -> Stmt {
        let line = next().line
        var assignments: [(Target, Expr)] = []
        while current.kind != .blockEnd {
            if !assignments.isEmpty { try expectOp(",") }
            let target = try parseAssignTarget()
            try expectOp("=")
            assignments.append((target, try parseExpression()))
        }
        let body = try parseStatements(["endwith"], dropNeedle: true)
        return Stmt(line: line, kind: .with(assignments, body: body))
    }

    // MARK: - Assignment targets

    private mutating func parseAssignTarget(extraEnd: [String] = [], withNamespace: Bool = false) throws(TemplateError) -> Target {
        if withNamespace, isOp(look(), "."), case .name(let ns) = current.kind {
            next()
            next()
            return .namespaceAttribute(ns, try expectName())
        }
        return try parseTargetTuple(extraEnd: extraEnd, explicitParentheses: false)
    }

    private mutating func parseTargetTuple(extraEnd: [String], explicitParentheses: Bool) throws(TemplateError) -> Target {
        var items: [Target] = []
        var isTuple = false
        while true {
            if !items.isEmpty { try expectOp(",") }
            if isTupleEnd(extraEnd) { break }
            items.append(try parseTargetPrimary())
            if isOp(current, ",") { isTuple = true } else { break }
        }
        if !isTuple, let only = items.first { return only }
        if items.isEmpty && !explicitParentheses { throw fail("expected an assignment target") }
        return .tuple(items)
    }

    private mutating func parseTargetPrimary() throws(TemplateError) -> Target {
        let t = current
        if case .name(let n) = t.kind {
            if ["true", "false", "True", "False", "none", "None"].contains(n) { throw fail("can't assign to '\(n)'") }
            next()
            return .name(n)
        }
        if isOp(t, "(") {
            next()
            let inner = try parseTargetTuple(extraEnd: [], explicitParentheses: true)
            try expectOp(")")
            return inner
        }
        throw fail("can't assign to '\(describe(t))'")
    }

    func isTupleEnd(_ extraEnd: [String]) -> Bool {
        switch current.kind {
        case .variableEnd, .blockEnd: return true
        case .op(")"): return true
        case .name(let n): return extraEnd.contains(n)
        default: return false
        }
    }
}
