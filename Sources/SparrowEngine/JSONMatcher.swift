/// The subset of JSON Schema that constrained decoding enforces. The server compiles a request's
/// schema into this and refuses (400) any keyword it cannot express, so nothing is left
/// unenforced.
public indirect enum SchemaNode: Sendable, Equatable {
    /// Any JSON value.
    case any
    /// An object. Only `properties` keys may appear (in any order, each once) unless
    /// `additional` allows any other key with any value; `required` keys must all appear.
    case object(properties: [Property], required: Set<String>, additional: Bool)
    case array(items: SchemaNode, minItems: Int, maxItems: Int?)
    case string
    case number
    case integer
    case boolean
    case null
    /// One of these exact JSON texts (`enum` / `const` values, serialized compactly).
    case literals([String])
    /// Any of the alternatives (`anyOf`, a list of `type`s).
    case anyOf([SchemaNode])

    public struct Property: Sendable, Equatable {
        public var name: String
        public var schema: SchemaNode
        public init(name: String, schema: SchemaNode) {
            self.name = name
            self.schema = schema
        }
    }
}

/// A byte-at-a-time recognizer of JSON text conforming to a `SchemaNode`: a pushdown automaton
/// whose alternatives (anyOf, which property key comes next) are followed side by side.
/// `consume` answers whether a byte can extend some valid document; `isComplete` whether
/// the text so far is one.
public struct JSONMatcher: Sendable {
    /// Live alternatives; empty = the input can no longer become valid.
    private(set) var branches: [Branch]
    /// Longest run of whitespace allowed between tokens (keeps a model from padding forever).
    static let maxWhitespace = 8

    public init(_ root: SchemaNode) {
        branches = [Branch(stack: [.value(root)])]
    }

    public var isDead: Bool { branches.isEmpty }

    /// Inside a string with no other alternative: any plain text may follow.
    var inFreeString: Bool {
        guard branches.count == 1, case .string(escape: 0)? = branches[0].stack.last else { return false }
        return true
    }

    /// The input so far is a complete document (nothing more is needed).
    public var isComplete: Bool { branches.contains { $0.canEnd } }

    /// Feeds one byte; false (and no change) when no alternative accepts it.
    public mutating func consume(_ byte: UInt8) -> Bool {
        var next: [Branch] = []
        for b in branches { b.step(byte, into: &next) }
        guard !next.isEmpty else { return false }
        // Alternatives that became identical are followed once.
        if next.count > 1 {
            var unique: [Branch] = []
            for b in next where !unique.contains(b) { unique.append(b) }
            next = unique
        }
        branches = next
        return true
    }

    /// Feeds bytes; false (and no change) when some byte is refused.
    public mutating func consume<S: Sequence>(_ bytes: S) -> Bool where S.Element == UInt8 {
        var copy = self
        for b in bytes where !copy.consume(b) { return false }
        self = copy
        return true
    }

    enum NumberPhase: Equatable { case sign, zero, digits, dot, fraction, exponentMark, exponentSign, exponent }

    enum ObjectPhase: Equatable {
        /// After `{` or `,`: a key (or `}` right after `{`).
        case key(afterComma: Bool)
        case colon
        /// After a value: `,` or `}`.
        case next
    }

    enum Frame: Equatable {
        /// A value of this schema comes next (leading whitespace allowed).
        case value(SchemaNode)
        /// These bytes must follow exactly.
        case literal([UInt8], Int)
        /// Inside a free string (after its opening quote); `escape`: 0 none, 1 after `\`, 2...5 \u hex digits left + 1.
        case string(escape: Int)
        case number(NumberPhase, integer: Bool)
        case object(SchemaNode, ObjectPhase, seen: [String], pendingValue: SchemaNode?)
        case array(SchemaNode, count: Int, expectValue: Bool)
    }

    struct Branch: Equatable {
        var stack: [Frame]
        var whitespace = 0

        /// True when the document can end here.
        var canEnd: Bool {
            if stack.isEmpty { return true }
            if stack.count == 1, case let .number(p, _) = stack[0] { return [.zero, .digits, .fraction, .exponent].contains(p) }
            return false
        }

        static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x0A || c == 0x09 || c == 0x0D }

        /// Every branch that results from reading `c`.
        func step(_ c: UInt8, into out: inout [Branch]) {
            guard let top = stack.last else {
                // After the document only a little whitespace.
                if Self.isSpace(c) && whitespace < JSONMatcher.maxWhitespace { var b = self; b.whitespace += 1; out.append(b) }
                return
            }
            var b = self
            b.stack.removeLast()
            let wasSpace = Self.isSpace(c)
            switch top {
            case let .value(node):
                if wasSpace {
                    guard whitespace < JSONMatcher.maxWhitespace else { return }
                    var s = self
                    s.whitespace += 1
                    out.append(s)
                    return
                }
                b.whitespace = 0
                b.begin(node, c, into: &out)
            case let .literal(bytes, i):
                guard bytes[i] == c else { return }
                if i + 1 < bytes.count { b.stack.append(.literal(bytes, i + 1)) }
                b.whitespace = 0
                out.append(b)
            case let .string(escape):
                b.whitespace = 0
                switch escape {
                case 0:
                    if c == UInt8(ascii: "\"") { out.append(b); return }
                    if c < 0x20 { return }
                    b.stack.append(.string(escape: c == UInt8(ascii: "\\") ? 1 : 0))
                case 1:
                    if c == UInt8(ascii: "u") { b.stack.append(.string(escape: 5)); break }
                    guard "\"\\/bfnrt".utf8.contains(c) else { return }
                    b.stack.append(.string(escape: 0))
                default:
                    guard Self.isHex(c) else { return }
                    b.stack.append(.string(escape: escape == 2 ? 0 : escape - 1))
                }
                out.append(b)
            case let .number(phase, integer):
                if let p = Self.numberStep(phase, c, integer: integer) {
                    b.stack.append(.number(p, integer: integer))
                    b.whitespace = 0
                    out.append(b)
                } else if [.zero, .digits, .fraction, .exponent].contains(phase) {
                    // The number ended; the byte belongs to what follows.
                    b.step(c, into: &out)
                }
            case let .object(node, phase, seen, pending):
                if wasSpace {
                    guard whitespace < JSONMatcher.maxWhitespace else { return }
                    var s = self
                    s.whitespace += 1
                    out.append(s)
                    return
                }
                b.whitespace = 0
                guard case let .object(properties, required, additional) = node else { return }
                switch phase {
                case let .key(afterComma):
                    if c == UInt8(ascii: "}") && !afterComma {
                        if required.isSubset(of: Set(seen)) { out.append(b) }
                        return
                    }
                    guard c == UInt8(ascii: "\"") else { return }
                    for p in properties where !seen.contains(p.name) {
                        var k = b
                        k.stack.append(.object(node, .colon, seen: seen + [p.name], pendingValue: p.schema))
                        k.stack.append(.literal(Array(JSONMatcher.escaped(p.name).utf8.dropFirst()), 0))
                        out.append(k)
                    }
                    if additional {
                        var k = b
                        k.stack.append(.object(node, .colon, seen: seen, pendingValue: .any))
                        k.stack.append(.string(escape: 0))
                        out.append(k)
                    }
                case .colon:
                    guard c == UInt8(ascii: ":"), let v = pending else { return }
                    b.stack.append(.object(node, .next, seen: seen, pendingValue: nil))
                    b.stack.append(.value(v))
                    out.append(b)
                case .next:
                    if c == UInt8(ascii: ",") {
                        let left = properties.contains { !seen.contains($0.name) }
                        guard left || additional else { return }
                        b.stack.append(.object(node, .key(afterComma: true), seen: seen, pendingValue: nil))
                        out.append(b)
                    } else if c == UInt8(ascii: "}") {
                        if required.isSubset(of: Set(seen)) { out.append(b) }
                    }
                }
            case let .array(node, count, expectValue):
                if wasSpace {
                    guard whitespace < JSONMatcher.maxWhitespace else { return }
                    var s = self
                    s.whitespace += 1
                    out.append(s)
                    return
                }
                b.whitespace = 0
                guard case let .array(items, minItems, maxItems) = node else { return }
                if expectValue {
                    // Right after `[` (count 0) a `]` may close an array that may be empty; after a comma an item must follow.
                    if c == UInt8(ascii: "]") && count == 0 {
                        if minItems == 0 { out.append(b) }
                        return
                    }
                    if let m = maxItems, count >= m { return }
                    b.stack.append(.array(node, count: count + 1, expectValue: false))
                    b.begin(items, c, into: &out)
                } else if c == UInt8(ascii: ",") {
                    if let m = maxItems, count >= m { return }
                    b.stack.append(.array(node, count: count, expectValue: true))
                    out.append(b)
                } else if c == UInt8(ascii: "]") {
                    if count >= minItems { out.append(b) }
                }
            }
        }

        /// Starts a value of `node` whose first (non-space) byte is `c`.
        func begin(_ node: SchemaNode, _ c: UInt8, into out: inout [Branch]) {
            var b = self
            switch node {
            case .any:
                for alt in [SchemaNode.object(properties: [], required: [], additional: true),
                            .array(items: .any, minItems: 0, maxItems: nil), .string, .number, .boolean, .null] {
                    b.begin(alt, c, into: &out)
                }
            case .object:
                guard c == UInt8(ascii: "{") else { return }
                b.stack.append(.object(node, .key(afterComma: false), seen: [], pendingValue: nil))
                out.append(b)
            case .array:
                guard c == UInt8(ascii: "[") else { return }
                b.stack.append(.array(node, count: 0, expectValue: true))
                out.append(b)
            case .string:
                guard c == UInt8(ascii: "\"") else { return }
                b.stack.append(.string(escape: 0))
                out.append(b)
            case .number, .integer:
                let integer = node == .integer
                let phase: NumberPhase? = c == UInt8(ascii: "-") ? .sign : Self.numberStep(.sign, c, integer: integer)
                guard let p = phase else { return }
                b.stack.append(.number(p, integer: integer))
                out.append(b)
            case .boolean:
                b.begin(.literals(["true", "false"]), c, into: &out)
            case .null:
                b.begin(.literals(["null"]), c, into: &out)
            case let .literals(texts):
                for t in texts {
                    let bytes = Array(t.utf8)
                    guard bytes.first == c else { continue }
                    var l = b
                    if bytes.count > 1 { l.stack.append(.literal(bytes, 1)) }
                    out.append(l)
                }
            case let .anyOf(alts):
                for alt in alts { b.begin(alt, c, into: &out) }
            }
        }

        static func isHex(_ c: UInt8) -> Bool {
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)
        }

        /// JSON number grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
        static func numberStep(_ p: NumberPhase, _ c: UInt8, integer: Bool) -> NumberPhase? {
            let digit = c >= 0x30 && c <= 0x39
            switch p {
            case .sign: return c == 0x30 ? .zero : digit ? .digits : nil
            case .zero: return integer ? nil : c == UInt8(ascii: ".") ? .dot : (c == UInt8(ascii: "e") || c == UInt8(ascii: "E")) ? .exponentMark : nil
            case .digits:
                if digit { return .digits }
                return integer ? nil : c == UInt8(ascii: ".") ? .dot : (c == UInt8(ascii: "e") || c == UInt8(ascii: "E")) ? .exponentMark : nil
            case .dot: return digit ? .fraction : nil
            case .fraction:
                if digit { return .fraction }
                return (c == UInt8(ascii: "e") || c == UInt8(ascii: "E")) ? .exponentMark : nil
            case .exponentMark: return digit ? .exponent : (c == UInt8(ascii: "+") || c == UInt8(ascii: "-")) ? .exponentSign : nil
            case .exponentSign, .exponent: return digit ? .exponent : nil
            }
        }
    }

    /// A JSON string literal for `s` (quotes included).
    static func escaped(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let h = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
