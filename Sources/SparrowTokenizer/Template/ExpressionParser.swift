/// Expression grammar of `Parser` (jinja2's `parse_expression` and below).
extension Parser {
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

    mutating func parseFilter(_ input: Expr?, startInline: Bool = false) throws(TemplateError) -> Expr? {
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
