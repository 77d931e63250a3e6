import SparrowEngine

/// Compiles a request's JSON Schema into the `SchemaNode` that constrained decoding enforces.
/// A keyword that cannot be enforced is a 400 naming it: a schema is never half-applied.
package enum SchemaCompiler {
    /// Keywords that describe but do not constrain.
    static let annotations: Set<String> = ["title", "description", "$schema", "$id", "$comment", "default", "examples", "deprecated", "readOnly", "writeOnly"]

    /// `{"type": "json_schema", "json_schema": {"name", "schema", "strict"?, "description"?}}` or
    /// `{"type": "json_object"}`; nil for `{"type": "text"}`.
    package static func responseFormat(_ v: JSONValue) throws(APIError) -> SchemaNode? {
        var f = try RequestFields(v, path: "response_format.", what: "response_format")
        let type = try f.string("type")
        switch type {
        case "text":
            try f.rejectUnknown()
            return nil
        case "json_object":
            try f.rejectUnknown()
            return .object(properties: [], required: [], additional: true)
        case "json_schema":
            guard let js = f.value("json_schema") else {
                throw APIError.invalidParameter("response_format.json_schema", "response_format.json_schema is required")
            }
            try f.rejectUnknown()
            var o = try RequestFields(js, path: "response_format.json_schema.", what: "response_format.json_schema")
            guard try o.string("name") != nil else {
                throw APIError.invalidParameter("response_format.json_schema.name", "response_format.json_schema.name is required")
            }
            _ = try o.string("description")
            _ = try o.bool("strict")  // the schema is always enforced, strict or not
            guard let schema = o.value("schema") else {
                throw APIError.invalidParameter("response_format.json_schema.schema", "response_format.json_schema.schema is required")
            }
            try o.rejectUnknown()
            return try compile(schema, path: "response_format.json_schema.schema")
        default:
            throw APIError.invalidParameter("response_format.type", "response_format.type must be text, json_object or json_schema")
        }
    }

    /// One schema (object or boolean `true`).
    package static func compile(_ v: JSONValue, path: String) throws(APIError) -> SchemaNode {
        if v == .bool(true) { return .any }
        guard case let .object(pairs) = v else {
            throw APIError.invalidParameter(path, "\(path) must be a JSON Schema object")
        }
        var used: Set<String> = []
        func take(_ k: String) -> JSONValue? {
            used.insert(k)
            return pairs.last { $0.0 == k }?.1
        }
        var node: SchemaNode = .any
        if let e = take("enum") {
            guard case let .array(values) = e, !values.isEmpty else { throw APIError.invalidParameter(path + ".enum", "\(path).enum must be a non-empty array") }
            node = .literals(values.map(\.serialized))
            _ = take("type")  // the listed values are stricter than any type
        } else if let c = take("const") {
            node = .literals([c.serialized])
            _ = take("type")
        } else if let any = take("anyOf") {
            guard case let .array(alts) = any, !alts.isEmpty else { throw APIError.invalidParameter(path + ".anyOf", "\(path).anyOf must be a non-empty array") }
            var nodes: [SchemaNode] = []
            for (i, a) in alts.enumerated() { nodes.append(try compile(a, path: "\(path).anyOf[\(i)]")) }
            node = .anyOf(nodes)
        } else if let t = take("type") {
            var types: [String] = []
            switch t {
            case let .string(s): types = [s]
            case let .array(items):
                for item in items {
                    guard case let .string(s) = item else { throw APIError.invalidParameter(path + ".type", "\(path).type must be a string or an array of strings") }
                    types.append(s)
                }
            default: throw APIError.invalidParameter(path + ".type", "\(path).type must be a string or an array of strings")
            }
            var nodes: [SchemaNode] = []
            for type in types { nodes.append(try typed(type, pairs: pairs, path: path, used: &used)) }
            node = nodes.count == 1 ? nodes[0] : .anyOf(nodes)
        } else if pairs.contains(where: { $0.0 == "properties" }) {
            node = try typed("object", pairs: pairs, path: path, used: &used)
        }
        for (k, _) in pairs where !used.contains(k) && !annotations.contains(k) {
            throw APIError.unsupported("\(path).\(k)", "JSON Schema keyword '\(k)' at \(path) cannot be enforced by this server's constrained decoding; remove it or use a supported subset (type, properties, required, additionalProperties, items, minItems, maxItems, enum, const, anyOf)")
        }
        return node
    }

    /// The node for one `type`, reading the keywords that belong to it.
    static func typed(_ type: String, pairs: [(String, JSONValue)], path: String, used: inout Set<String>) throws(APIError) -> SchemaNode {
        func get(_ k: String) -> JSONValue? {
            used.insert(k)
            return pairs.last { $0.0 == k }?.1
        }
        switch type {
        case "string": return .string
        case "number": return .number
        case "integer": return .integer
        case "boolean": return .boolean
        case "null": return .null
        case "object":
            var props: [SchemaNode.Property] = []
            if let p = get("properties") {
                guard case let .object(list) = p else { throw APIError.invalidParameter(path + ".properties", "\(path).properties must be an object") }
                for (name, schema) in list {
                    props.append(SchemaNode.Property(name: name, schema: try compile(schema, path: "\(path).properties.\(name)")))
                }
            }
            var required: Set<String> = []
            if let r = get("required") {
                guard case let .array(names) = r else { throw APIError.invalidParameter(path + ".required", "\(path).required must be an array of names") }
                for n in names {
                    guard case let .string(s) = n, props.contains(where: { $0.name == s }) || props.isEmpty else {
                        throw APIError.invalidParameter(path + ".required", "\(path).required names \(n.serialized), which is not among the properties")
                    }
                    required.insert(s)
                }
            }
            // Without properties any key is allowed; with properties only those (an output that
            // uses no others still validates when additionalProperties is absent).
            var additional = props.isEmpty
            if let a = get("additionalProperties") {
                switch a {
                case .bool(let b): additional = b
                case .object(let o) where o.isEmpty: additional = true
                default: throw APIError.unsupported(path + ".additionalProperties", "\(path).additionalProperties must be true, false or {}")
                }
            }
            if props.isEmpty && !required.isEmpty {
                throw APIError.unsupported(path + ".required", "\(path).required without properties cannot be enforced")
            }
            return .object(properties: props, required: required, additional: additional)
        case "array":
            let items = try get("items").map { (v: JSONValue) throws(APIError) in try compile(v, path: path + ".items") } ?? .any
            var minItems = 0
            var maxItems: Int?
            if let m = get("minItems") { guard case let .int(x) = m, x >= 0 else { throw APIError.invalidParameter(path + ".minItems", "\(path).minItems must be a non-negative integer") }; minItems = x }
            if let m = get("maxItems") { guard case let .int(x) = m, x >= minItems else { throw APIError.invalidParameter(path + ".maxItems", "\(path).maxItems must be an integer ≥ minItems") }; maxItems = x }
            return .array(items: items, minItems: minItems, maxItems: maxItems)
        default:
            throw APIError.invalidParameter(path + ".type", "\(path).type '\(type)' is not a JSON Schema type")
        }
    }
}
