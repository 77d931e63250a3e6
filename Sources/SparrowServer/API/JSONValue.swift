import Foundation
import SparrowTokenizer

/// A JSON document with object keys in the order the client sent them (chat templates print
/// tool schemas and arguments with `tojson`, so order is part of the prompt).
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.int(x), .int(y)): return x == y
        case let (.double(x), .double(y)): return x == y
        case let (.int(x), .double(y)), let (.double(y), .int(x)): return Double(x) == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// Parses JSON text (keys keep their order; a repeated key keeps its first position and last value).
    public static func parse(_ text: String) throws(APIError) -> JSONValue {
        do {
            return try JSONValue(try JinjaValue.parseJSON(text))
        } catch let e as APIError {
            throw e
        } catch {
            throw APIError.invalidRequest("the request body is not valid JSON: \(error)", code: "invalid_json")
        }
    }

    private init(_ v: JinjaValue) throws(APIError) {
        switch v {
        case .null: self = .null
        case let .bool(b): self = .bool(b)
        case let .int(i): self = .int(i)
        case let .double(d):
            guard d.isFinite else { throw APIError.invalidRequest("the request body has a non-finite number (NaN or Infinity), which JSON does not allow", code: "invalid_json") }
            self = .double(d)
        case let .string(s), let .markup(s): self = .string(s)
        case let .list(items), let .tuple(items):
            var out: [JSONValue] = []
            for item in items { out.append(try JSONValue(item)) }
            self = .array(out)
        case let .dict(d):
            var out: [(String, JSONValue)] = []
            for (k, value) in d.pairs {
                guard case let .string(key) = k else { continue }
                out.append((key, try JSONValue(value)))
            }
            self = .object(out)
        case .undefined, .object: self = .null
        }
    }

    /// The value under `key` of an object (nil if absent or not an object).
    public subscript(key: String) -> JSONValue? {
        guard case let .object(pairs) = self else { return nil }
        return pairs.last { $0.0 == key }?.1
    }

    /// Compact JSON text, keys in order, non-ASCII kept as is.
    public var serialized: String {
        var out = ""
        write(into: &out)
        return out
    }

    private func write(into out: inout String) {
        switch self {
        case .null: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .int(i): out += String(i)
        case let .double(d):
            if d == d.rounded(), abs(d) < 1e15 { out += String(format: "%.1f", d) } else { out += "\(d)" }
        case let .string(s): JSONValue.quote(s, into: &out)
        case let .array(items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.write(into: &out)
            }
            out += "]"
        case let .object(pairs):
            out += "{"
            for (i, (k, v)) in pairs.enumerated() {
                if i > 0 { out += "," }
                JSONValue.quote(k, into: &out)
                out += ":"
                v.write(into: &out)
            }
            out += "}"
        }
    }

    package static func quote(_ s: String, into out: inout String) {
        out += "\""
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
        out += "\""
    }

    /// A short name of the JSON type for error messages.
    package var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int, .double: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}
