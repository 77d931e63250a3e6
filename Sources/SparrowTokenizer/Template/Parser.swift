/// Recursive-descent parser mirroring jinja2's `parser.py`: the same precedence ladder
/// (condexpr < or < and < not < compare < +,- < ~ < *,/,//,% < ** < unary < filters/tests),
/// the same tuple rules and the same statement grammar for the tags it supports.
struct Parser {
    private let tokens: [Token]
    private var index = 0
    private var loopDepth = 0
    private var depth = 0
    /// Names referenced inside each macro being parsed (to find `varargs`, `kwargs`, `caller`).
    private var macroNameUses: [Set<String>] = []

    /// Expression and block nesting beyond this is refused rather than risking the stack.
    private static let maxDepth = 200

    static func parse(_ tokens: [Token]) throws(TemplateError) -> [Stmt] {
        var parser = Parser(tokens: tokens)
        let body = try parser.subparse(endTags: nil)
        try NameCheck.statements(body, soft: false)
        return body
    }

    private init(tokens: [Token]) { self.tokens = tokens }

    // MARK: - Token stream

    private var current: Token { tokens[index] }
    private func look() -> Token { tokens[min(index + 1, tokens.count - 1)] }
    @discardableResult
    private mutating func next() -> Token {
        let t = tokens[index]
        if index < tokens.count - 1 { index += 1 }
        return t
    }

    private func isName(_ t: Token, _ name: String) -> Bool {
        if case .name(let n) = t.kind { return n == name }
        return false
    }

    private func isOp(_ t: Token, _ op: String) -> Bool {
        if case .op(let o) = t.kind { return o == op }
        return false
    }

    private mutating func skipName(_ name: String) -> Bool {
        guard isName(current, name) else { return false }
        next()
        return true
    }

    private mutating func skipOp(_ op: String) -> Bool {
        guard isOp(current, op) else { return false }
        next()
        return true
    }

    private func fail(_ message: String, _ token: Token? = nil) -> TemplateError {
        .syntax(message, line: (token ?? current).line)
    }

    private func describe(_ t: Token) -> String {
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

    private mutating func expectOp(_ op: String) throws(TemplateError) {
        guard skipOp(op) else { throw fail("expected token '\(op)', got '\(describe(current))'") }
    }

    private mutating func expectName() throws(TemplateError) -> String {
        guard case .name(let n) = current.kind else { throw fail("expected token 'name', got '\(describe(current))'") }
        next()
        return n
    }

    private mutating func expectName(_ name: String) throws(TemplateError) {
        guard skipName(name) else { throw fail("expected token '\(name)', got '\(describe(current))'") }
    }

    private mutating func expectBlockEnd() throws(TemplateError) {
        guard current.kind == .blockEnd else { throw fail("expected token 'end of statement block', got '\(describe(current))'") }
        next()
    }

    private mutating func enter() throws(TemplateError) {
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
            throw fail("Unexpected end of template. Jinja was looking for the following tags: \(endTags).")
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
        case "block", "extends", "include", "import", "from", "autoescape", "raw":
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

    private func isTupleEnd(_ extraEnd: [String]) -> Bool {
        switch current.kind {
        case .variableEnd, .blockEnd: return true
        case .op(")"): return true
        case .name(let n): return extraEnd.contains(n)
        default: return false
        }
    }

    // MARK: - Expressions

    mutating func parseTuple(withCondexpr: Bool = true, extraEnd: [String] = [], explicitParentheses: Bool = false) throws(TemplateError) -> Expr {
        let line = current.line
        var args: [Expr] = []
        var isTuple = false
        while true {
            if !args.isEmpty { try expectOp(",") }
            if isTupleEnd(extraEnd) { break }
            args.append(try parseExpression(withCondexpr: withCondexpr))
            if isOp(current, ",") { isTuple = true } else { break }
        }
        if !isTuple {
            if let only = args.first { return only }
            if !explicitParentheses { throw fail("Expected an expression, got '\(describe(current))'") }
        }
        return Expr(line: line, kind: .tuple(args))
    }

    mutating func parseExpression(withCondexpr: Bool = true) throws(TemplateError) -> Expr {
        try enter()
        defer { depth -= 1 }
        if !withCondexpr { return try parseOr() }
        var expr = try parseOr()
        while isName(current, "if") {
            let line = next().line
            let test = try parseOr()
            let otherwise = skipName("else") ? try parseExpression() : nil
            expr = Expr(line: line, kind: .conditional(test: test, then: expr, otherwise: otherwise))
        }
        return expr
    }

    private mutating func parseOr() throws(TemplateError) -> Expr {
        var left = try parseAnd()
        while isName(current, "or") {
            let line = next().line
            left = Expr(line: line, kind: .or(left, try parseAnd()))
        }
        return left
    }

    private mutating func parseAnd() throws(TemplateError) -> Expr {
        var left = try parseNot()
        while isName(current, "and") {
            let line = next().line
            left = Expr(line: line, kind: .and(left, try parseNot()))
        }
        return left
    }

    private mutating func parseNot() throws(TemplateError) -> Expr {
        if isName(current, "not") {
            let line = next().line
            try enter()
            defer { depth -= 1 }
            return Expr(line: line, kind: .not(try parseNot()))
        }
        return try parseCompare()
    }

    private mutating func parseCompare() throws(TemplateError) -> Expr {
        let line = current.line
        let expr = try parseMath1()
        var ops: [(CompareOp, Expr)] = []
        while true {
            if case .op(let o) = current.kind, let op = CompareOp(rawValue: o), op != .in, op != .notIn {
                next()
                ops.append((op, try parseMath1()))
            } else if skipName("in") {
                ops.append((.in, try parseMath1()))
            } else if isName(current, "not"), isName(look(), "in") {
                next()
                next()
                ops.append((.notIn, try parseMath1()))
            } else {
                break
            }
        }
        return ops.isEmpty ? expr : Expr(line: line, kind: .compare(expr, ops))
    }

    private mutating func parseBinary(_ ops: [BinaryOp], _ operand: (inout Parser) throws(TemplateError) -> Expr) throws(TemplateError) -> Expr {
        var left = try operand(&self)
        while case .op(let o) = current.kind, let op = BinaryOp(rawValue: o), ops.contains(op) {
            let line = next().line
            left = Expr(line: line, kind: .binary(op, left, try operand(&self)))
        }
        return left
    }

    private mutating func parseMath1() throws(TemplateError) -> Expr {
        try parseBinary([.add, .subtract]) { (p: inout Parser) throws(TemplateError) in try p.parseConcat() }
    }

    private mutating func parseConcat() throws(TemplateError) -> Expr {
        let line = current.line
        var args = [try parseMath2()]
        while skipOp("~") { args.append(try parseMath2()) }
        return args.count == 1 ? args[0] : Expr(line: line, kind: .concat(args))
    }

    private mutating func parseMath2() throws(TemplateError) -> Expr {
        try parseBinary([.multiply, .divide, .floorDivide, .modulo]) { (p: inout Parser) throws(TemplateError) in try p.parsePow() }
    }

    private mutating func parsePow() throws(TemplateError) -> Expr {
        try parseBinary([.power]) { (p: inout Parser) throws(TemplateError) in try p.parseUnary() }
    }

    private mutating func parseUnary(withFilter: Bool = true) throws(TemplateError) -> Expr {
        let t = current
        var node: Expr
        if isOp(t, "-") || isOp(t, "+") {
            next()
            try enter()
            let operand = try parseUnary(withFilter: false)
            depth -= 1
            node = Expr(line: t.line, kind: .unary(isOp(t, "-") ? .negate : .plus, operand))
        } else {
            node = try parsePrimary()
        }
        node = try parsePostfix(node)
        if withFilter { node = try parseFilterExpr(node) }
        return node
    }

    private mutating func parsePrimary() throws(TemplateError) -> Expr {
        let t = current
        switch t.kind {
        case .name(let n):
            next()
            switch n {
            case "true", "True": return Expr(line: t.line, kind: .constant(.bool(true)))
            case "false", "False": return Expr(line: t.line, kind: .constant(.bool(false)))
            case "none", "None": return Expr(line: t.line, kind: .constant(.null))
            default:
                if !macroNameUses.isEmpty { macroNameUses[macroNameUses.count - 1].insert(n) }
                return Expr(line: t.line, kind: .name(n))
            }
        case .string(let s):
            next()
            var text = s
            while case .string(let more) = current.kind {
                text += more
                next()
            }
            return Expr(line: t.line, kind: .constant(.string(text)))
        case .integer(let i):
            next()
            return Expr(line: t.line, kind: .constant(.int(i)))
        case .float(let d):
            next()
            return Expr(line: t.line, kind: .constant(.double(d)))
        case .op("("):
            next()
            let e = try parseTuple(explicitParentheses: true)
            try expectOp(")")
            return e
        case .op("["):
            next()
            var items: [Expr] = []
            while !isOp(current, "]") {
                if !items.isEmpty { try expectOp(",") }
                if isOp(current, "]") { break }
                items.append(try parseExpression())
            }
            try expectOp("]")
            return Expr(line: t.line, kind: .list(items))
        case .op("{"):
            next()
            var pairs: [(Expr, Expr)] = []
            while !isOp(current, "}") {
                if !pairs.isEmpty { try expectOp(",") }
                if isOp(current, "}") { break }
                let key = try parseExpression()
                try expectOp(":")
                pairs.append((key, try parseExpression()))
            }
            try expectOp("}")
            return Expr(line: t.line, kind: .dict(pairs))
        default:
            throw fail("unexpected '\(describe(t))'")
        }
    }

    private mutating func parsePostfix(_ start: Expr) throws(TemplateError) -> Expr {
        var node = start
        while true {
            if isOp(current, ".") || isOp(current, "[") {
                node = try parseSubscript(node)
            } else if isOp(current, "(") {
                node = Expr(line: current.line, kind: .call(node, try parseCallArguments()))
            } else {
                return node
            }
        }
    }

    private mutating func parseFilterExpr(_ start: Expr) throws(TemplateError) -> Expr {
        var node = start
        while true {
            if isOp(current, "|") {
                node = try parseFilter(node) ?? node
            } else if isName(current, "is") {
                node = try parseTest(node)
            } else if isOp(current, "(") {
                node = Expr(line: current.line, kind: .call(node, try parseCallArguments()))
            } else {
                return node
            }
        }
    }

    private enum Subscript { case expr(Expr), slice(Expr?, Expr?, Expr?) }

    private mutating func parseSubscript(_ node: Expr) throws(TemplateError) -> Expr {
        let t = next()
        if isOp(t, ".") {
            let attr = next()
            switch attr.kind {
            case .name(let n): return Expr(line: t.line, kind: .getattr(node, n))
            case .integer(let i): return Expr(line: t.line, kind: .getitem(node, Expr(line: attr.line, kind: .constant(.int(i)))))
            default: throw fail("expected name or number", attr)
            }
        }
        var args: [Subscript] = []
        while !isOp(current, "]") {
            if !args.isEmpty { try expectOp(",") }
            args.append(try parseSubscribed())
        }
        try expectOp("]")
        if args.count == 1 {
            switch args[0] {
            case .expr(let e): return Expr(line: t.line, kind: .getitem(node, e))
            case .slice(let a, let b, let c): return Expr(line: t.line, kind: .slice(node, a, b, c))
            }
        }
        var items: [Expr] = []
        for a in args {
            guard case .expr(let e) = a else { throw .unsupported("slices inside a tuple subscript", line: t.line) }
            items.append(e)
        }
        return Expr(line: t.line, kind: .getitem(node, Expr(line: t.line, kind: .tuple(items))))
    }

    private func atSliceEnd() -> Bool { isOp(current, "]") || isOp(current, ",") }

    private mutating func parseSubscribed() throws(TemplateError) -> Subscript {
        var start: Expr? = nil
        if !skipOp(":") {
            let e = try parseExpression()
            if !skipOp(":") { return .expr(e) }
            start = e
        }
        var stop: Expr? = nil
        if !isOp(current, ":") && !atSliceEnd() { stop = try parseExpression() }
        var step: Expr? = nil
        if skipOp(":") && !atSliceEnd() { step = try parseExpression() }
        return .slice(start, stop, step)
    }

    private mutating func parseCallArguments() throws(TemplateError) -> Arguments {
        try expectOp("(")
        var args = Arguments()
        var requireComma = false
        while !isOp(current, ")") {
            if requireComma {
                try expectOp(",")
                if isOp(current, ")") { break }
            }
            if isOp(current, "*") || isOp(current, "**") {
                throw .unsupported("*args/**kwargs in a call", line: current.line)
            }
            if case .name(let key) = current.kind, isOp(look(), "=") {
                next()
                next()
                args.keyword.append((key, try parseExpression()))
            } else {
                if !args.keyword.isEmpty { throw fail("invalid syntax for function call expression") }
                args.positional.append(try parseExpression())
            }
            requireComma = true
        }
        try expectOp(")")
        return args
    }

    private mutating func parseFilter(_ input: Expr?, startInline: Bool = false) throws(TemplateError) -> Expr? {
        var node = input
        var inline = startInline
        while isOp(current, "|") || inline {
            if !inline { next() }
            let t = current
            var name = try expectName()
            while skipOp(".") { name += "." + (try expectName()) }
            let args = isOp(current, "(") ? try parseCallArguments() : Arguments()
            node = Expr(line: t.line, kind: .filter(node, name, args))
            inline = false
        }
        return node
    }

    private mutating func parseTest(_ node: Expr) throws(TemplateError) -> Expr {
        let t = next()  // `is`
        let negated = skipName("not")
        var name = try expectName()
        while skipOp(".") { name += "." + (try expectName()) }
        var args = Arguments()
        if isOp(current, "(") {
            args = try parseCallArguments()
        } else {
            var takesArgument = false
            switch current.kind {
            case .name(let n): takesArgument = !["else", "or", "and"].contains(n)
            case .string, .integer, .float, .op("["), .op("{"): takesArgument = true
            default: break
            }
            if takesArgument {
                if isName(current, "is") { throw fail("You cannot chain multiple tests with is") }
                args.positional = [try parsePostfix(try parsePrimary())]
            }
        }
        let test = Expr(line: t.line, kind: .test(node, name, args))
        return negated ? Expr(line: t.line, kind: .not(test)) : test
    }
}
