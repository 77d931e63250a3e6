import Foundation
import SparrowEngine
import SparrowKernels
import SparrowModels
import Yams

/// Why a `sparrow serve --config` file was refused. Each message starts `FILE:LINE:COLUMN:` (as a
/// compiler's do) where the place is known, names the key, and says what would be accepted.
public enum ServeConfigError: Error, Equatable, CustomStringConvertible {
    /// Where in the file: 1-based line and column of the key or value at fault.
    public struct Location: Equatable, Sendable, CustomStringConvertible {
        public var path: String
        public var line: Int?
        public var column: Int?

        public init(path: String, line: Int? = nil, column: Int? = nil) {
            self.path = path
            self.line = line
            self.column = column
        }

        public var description: String {
            guard let line else { return path }
            guard let column else { return "\(path):\(line)" }
            return "\(path):\(line):\(column)"
        }
    }

    /// The file could not be read, or is not UTF-8 text.
    case unreadable(path: String, reason: String)
    /// Not valid YAML (a syntax error, a duplicate key, more than one document); `problem` is
    /// libyaml's own words.
    case invalidYAML(Location, problem: String)
    /// The document is valid YAML but not a mapping of keys to values (`found` says what it is).
    case notAMapping(Location, found: String)
    /// A key that `sparrow serve` does not have; `suggestion` is the nearest known key, if close.
    case unknownKey(Location, key: String, suggestion: String?)
    /// A value of the wrong type (`expected` and `found` in words).
    case wrongType(Location, key: String, expected: String, found: String)
    /// A value of the right type outside its bounds.
    case outOfRange(Location, key: String, value: String, bounds: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason):
            return "cannot read the configuration file \(path): \(reason)"
        case let .invalidYAML(at, problem):
            return "\(at): invalid YAML: \(problem)"
        case let .notAMapping(at, found):
            return "\(at): the configuration must be a mapping of keys to values (`port: 8080`), found \(found)"
        case let .unknownKey(at, key, suggestion):
            let hint = suggestion.map { " (did you mean '\($0)'?)" } ?? ""
            return "\(at): unknown key '\(key)'\(hint); the keys are listed in docs/server.md"
        case let .wrongType(at, key, expected, found):
            return "\(at): \(key) must be \(expected), found \(found)"
        case let .outOfRange(at, key, value, bounds):
            return "\(at): \(key) \(value) is out of range: must be \(bounds)"
        }
    }
}

extension ServeSettings {
    /// Every key a configuration file may hold, in the order docs/server.md lists them.
    public static let fileKeys = [
        "model", "model_name", "context", "threads", "kv_type",
        "host", "port", "api_keys", "api_key_file",
        "parallel", "cache_slots", "queue_size", "prefill_chunk",
        "max_request_bytes", "request_timeout", "max_choices", "chat_template",
        "prefix_cache", "memory_budget", "expert_half_life", "expert_prefetch",
    ]

    /// Reads a `sparrow serve` configuration file (YAML). Relative paths in it (`model` when it
    /// is a path, `api_key_file`, `chat_template`) are taken from the file's directory, and `~`
    /// is the home directory.
    public init(contentsOfFile path: String) throws(ServeConfigError) {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw .unreadable(path: path, reason: Self.readFailure(path: path, error: error))
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw .unreadable(path: path, reason: "not UTF-8 text")
        }
        try self.init(yaml: text, path: path)
    }

    /// Parses a configuration's text. `path` names the file in messages, and its directory is
    /// where relative paths in the file start. An empty document (or only comments) sets nothing.
    /// Every key is checked for its type and bounds here; limits between keys (cache slots ≥
    /// parallel) are checked by `serverConfiguration(environment:)` once flags are applied.
    public init(yaml: String, path: String) throws(ServeConfigError) {
        self.init()
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch {
            throw Self.yamlError(error, path: path)
        }
        guard let root else { return }
        guard case let .mapping(mapping) = root else {
            throw .notAMapping(Self.location(of: root, path: path), found: Self.describe(root))
        }
        let reader = ValueReader(path: path)
        let base = (path as NSString).deletingLastPathComponent
        for (keyNode, value) in mapping {
            guard case let .scalar(keyScalar) = keyNode else {
                throw .wrongType(Self.location(of: keyNode, path: path), key: "a key",
                                 expected: "a name such as 'port'", found: Self.describe(keyNode))
            }
            let key = keyScalar.string
            switch key {
            case "model":
                let name = try reader.string(value, key)
                model = Self.looksLikePath(name) ? Self.absolute(name, base: base) : name
            case "model_name": modelName = try reader.string(value, key)
            case "context": context = try reader.int(value, key, atLeast: 1)
            case "threads": threads = try reader.int(value, key, atLeast: 1)
            case "kv_type": kvType = try reader.choice(value, key, KVCacheType.self)
            case "host": host = try reader.string(value, key)
            case "port": port = try reader.int(value, key, in: ServerConfiguration.portRange)
            case "api_keys": apiKeys = try reader.apiKeys(value, key)
            case "api_key_file": apiKeyFile = Self.absolute(try reader.string(value, key), base: base)
            case "parallel": parallel = try reader.int(value, key, in: SchedulerConfiguration.maxSequencesRange)
            case "cache_slots":
                cacheSlots = try reader.int(value, key, in: 0...SchedulerConfiguration.cacheSlotsLimit)
            case "queue_size": queueSize = try reader.int(value, key, in: SchedulerConfiguration.queueCapacityRange)
            case "prefill_chunk": prefillChunk = try reader.int(value, key, in: SchedulerConfiguration.prefillChunkRange)
            case "max_request_bytes":
                maxRequestBytes = try reader.int(value, key, in: ServerConfiguration.maxRequestBytesRange)
            case "request_timeout": requestTimeout = try reader.positiveNumber(value, key, unit: "seconds")
            case "max_choices": maxChoices = try reader.int(value, key, in: ServerConfiguration.maxChoicesRange)
            case "chat_template": chatTemplate = Self.absolute(try reader.string(value, key), base: base)
            case "prefix_cache": prefixCache = try reader.memorySize(value, key, zeroAllowed: true)
            case "memory_budget": memoryBudget = try reader.memorySize(value, key)
            case "expert_half_life": expertHalfLife = try reader.positiveNumber(value, key, unit: "tokens")
            case "expert_prefetch": expertPrefetch = try reader.bool(value, key)
            default:
                throw .unknownKey(Self.location(of: keyNode, path: path), key: key,
                                  suggestion: Self.nearestKey(to: key))
            }
        }
    }

    // MARK: Helpers

    /// The known key closest to a misspelt one: the same once `-` is `_` and case is folded, or
    /// within an edit distance of 2 (a third of the key's length for short ones); nil if none.
    static func nearestKey(to key: String) -> String? {
        let folded = key.lowercased().replacingOccurrences(of: "-", with: "_")
        if fileKeys.contains(folded) { return folded }
        let limit = max(1, min(2, folded.count / 3))
        let scored = fileKeys.map { ($0, editDistance(folded, $0)) }.filter { $0.1 <= limit }
        return scored.min { $0.1 < $1.1 }?.0
    }

    /// Edit distance counting an insertion, a deletion, a substitution or a swap of two
    /// neighbours as one edit (optimal string alignment), so `prot` is one edit from `port`.
    /// Keys are a few dozen characters, so the full table is fine.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        // d[i][j]: edits from a[..<i] to b[..<j].
        var d = (0...a.count).map { i in (0...b.count).map { j in i == 0 ? j : (j == 0 ? i : 0) } }
        for i in stride(from: 1, through: a.count, by: 1) {
            for j in stride(from: 1, through: b.count, by: 1) {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
                }
            }
        }
        return d[a.count][b.count]
    }

    /// A model argument that names a file rather than a catalog entry.
    static func looksLikePath(_ model: String) -> Bool {
        model.contains("/") || model.hasSuffix(".gguf") || model.hasPrefix("~")
    }

    /// `path` with `~` expanded and, when relative, taken from `base` (the file's directory).
    static func absolute(_ path: String, base: String) -> String {
        let expanded = (path as NSString).expandingTildeInPath
        if expanded.hasPrefix("/") || base.isEmpty { return expanded }
        return (base as NSString).appendingPathComponent(expanded)
    }

    static func readFailure(path: String, error: any Error) -> String {
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) { return "no such file" }
        if isDirectory.boolValue { return "it is a directory" }
        if !FileManager.default.isReadableFile(atPath: path) { return "permission denied" }
        return error.localizedDescription
    }

    static func yamlError(_ error: any Error, path: String) -> ServeConfigError {
        guard let yaml = error as? YamlError else {
            return .invalidYAML(ServeConfigError.Location(path: path), problem: "\(error)")
        }
        func at(_ mark: Mark) -> ServeConfigError.Location {
            ServeConfigError.Location(path: path, line: mark.line, column: mark.column)
        }
        switch yaml {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
             let .composer(context, problem, mark, _):
            // libyaml's context says what it was reading ("while scanning a quoted scalar").
            let during = context.map { " (\($0.text) at line \($0.mark.line), column \($0.mark.column))" } ?? ""
            return .invalidYAML(at(mark), problem: problem + during)
        case let .duplicatedKeysInMapping(duplicates, context):
            let keys = duplicates.map { "'\($0)'" }.joined(separator: ", ")
            return .invalidYAML(at(context.mark), problem: "duplicate key \(keys)")
        case let .reader(problem, _, _, _):
            return .invalidYAML(ServeConfigError.Location(path: path), problem: problem)
        default:
            return .invalidYAML(ServeConfigError.Location(path: path), problem: yaml.description)
        }
    }

    static func location(of node: Node, path: String) -> ServeConfigError.Location {
        ServeConfigError.Location(path: path, line: node.mark?.line, column: node.mark?.column)
    }

    /// A node in words for messages: "the integer 80", "a list", "no value (null)".
    static func describe(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case let .scalar(scalar):
            switch node.tagName {
            case .null: return "no value (null)"
            case .bool: return "the boolean \(scalar.string)"
            case .int: return "the integer \(scalar.string)"
            case .float: return "the number \(scalar.string)"
            case .str: return "the string \"\(scalar.string)\""
            default: return "the value '\(scalar.string)'"
            }
        }
    }
}

/// Reads one value of a known key, checking its type and bounds; every failure names the key
/// and the value's place.
private struct ValueReader {
    let path: String

    private func location(_ node: Node) -> ServeConfigError.Location {
        ServeSettings.location(of: node, path: path)
    }

    private func wrongType(_ node: Node, _ key: String, _ expected: String) -> ServeConfigError {
        .wrongType(location(node), key: key, expected: expected, found: ServeSettings.describe(node))
    }

    /// A non-empty string. A quoted scalar is always a string; an unquoted `8080` or `yes` is not.
    func string(_ node: Node, _ key: String) throws(ServeConfigError) -> String {
        guard case let .scalar(scalar) = node, node.tagName == .str else {
            throw wrongType(node, key, "a string (quote values such as \"8080\" or \"yes\")")
        }
        guard !scalar.string.isEmpty else { throw wrongType(node, key, "a non-empty string") }
        return scalar.string
    }

    func int(_ node: Node, _ key: String, in bounds: ClosedRange<Int>) throws(ServeConfigError) -> Int {
        let value = try integer(node, key)
        guard bounds.contains(value) else {
            throw .outOfRange(location(node), key: key, value: String(value), bounds: "in \(bounds)")
        }
        return value
    }

    func int(_ node: Node, _ key: String, atLeast minimum: Int) throws(ServeConfigError) -> Int {
        let value = try integer(node, key)
        guard value >= minimum else {
            throw .outOfRange(location(node), key: key, value: String(value), bounds: "≥ \(minimum)")
        }
        return value
    }

    private func integer(_ node: Node, _ key: String) throws(ServeConfigError) -> Int {
        guard node.tagName == .int else { throw wrongType(node, key, "an integer") }
        guard let value = node.int else {
            throw .outOfRange(location(node), key: key, value: node.string ?? "", bounds: "a 64-bit integer")
        }
        return value
    }

    /// A number of `unit`, integer or decimal, finite and > 0.
    func positiveNumber(_ node: Node, _ key: String, unit: String) throws(ServeConfigError) -> Double {
        guard node.tagName == .int || node.tagName == .float, let value = node.float else {
            throw wrongType(node, key, "a number of \(unit)")
        }
        guard value > 0, value.isFinite else {
            throw .outOfRange(location(node), key: key, value: node.string ?? "\(value)", bounds: "> 0 \(unit)")
        }
        return value
    }

    /// `true`/`false` (YAML 1.1 also reads `on`/`off`, `yes`/`no`).
    func bool(_ node: Node, _ key: String) throws(ServeConfigError) -> Bool {
        guard node.tagName == .bool, let value = node.bool else { throw wrongType(node, key, "true or false") }
        return value
    }

    /// A byte count: an integer, or text such as `8GiB`, `512MiB`, `1.5G` (`MemorySize`).
    func memorySize(_ node: Node, _ key: String, zeroAllowed: Bool = false) throws(ServeConfigError) -> Int {
        if node.tagName == .int { return try int(node, key, atLeast: zeroAllowed ? 0 : 1) }
        guard case let .scalar(scalar) = node, node.tagName == .str else {
            throw wrongType(node, key, "a size such as 8GiB or 512MiB, or a number of bytes")
        }
        do { return try MemorySize.parse(scalar.string, allowZero: zeroAllowed) } catch {
            throw .wrongType(location(node), key: key, expected: "a memory size (\(error))", found: ServeSettings.describe(node))
        }
    }

    /// One of an enumeration's raw values, e.g. `f16` or `f32`.
    func choice<T: RawRepresentable & CaseIterable>(_ node: Node, _ key: String, _: T.Type) throws(ServeConfigError) -> T
    where T.RawValue == String {
        let names = T.allCases.map(\.rawValue).joined(separator: " or ")
        guard case let .scalar(scalar) = node, node.tagName == .str else { throw wrongType(node, key, names) }
        guard let value = T(rawValue: scalar.string) else {
            throw .outOfRange(location(node), key: key, value: "'\(scalar.string)'", bounds: names)
        }
        return value
    }

    /// A list of keys, each a non-empty string without whitespace (as `Authorization: Bearer`
    /// carries them).
    func apiKeys(_ node: Node, _ key: String) throws(ServeConfigError) -> [String] {
        guard case let .sequence(sequence) = node else {
            throw wrongType(node, key, "a list of strings, e.g. [\"KEY\"]")
        }
        var keys: [String] = []
        for item in sequence {
            let apiKey = try string(item, key)
            guard !apiKey.contains(where: \.isWhitespace) else {
                throw wrongType(item, key, "a list of keys without whitespace")
            }
            keys.append(apiKey)
        }
        return keys
    }
}

private extension Node {
    /// The resolved tag's name (`!!int`, `!!str`, …): a quoted scalar is always `!!str`, a plain
    /// one is resolved by YAML 1.1's rules (so `yes` is a boolean and `8080` an integer).
    var tagName: Tag.Name { Tag.Name(rawValue: tag.rawValue) }
}
