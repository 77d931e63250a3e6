import Foundation
import SparrowEngine
import SparrowServer
import Testing

/// The repository root, found from this file's path (Tests/SparrowServeConfigTests/…).
private let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Parses `yaml` as if read from /etc/sparrow/serve.yaml (so relative paths resolve there).
private func parse(_ yaml: String, path: String = "/etc/sparrow/serve.yaml") throws(ServeConfigError) -> ServeSettings {
    try ServeSettings(yaml: yaml, path: path)
}

/// The error `yaml` is refused with (or nil if it parses).
private func failure(_ yaml: String) -> ServeConfigError? {
    do { _ = try parse(yaml); return nil } catch { return error }
}

/// A fresh directory under the system's temporary directory.
private func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("sparrow-config-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

private let everyKeyFile = """
    # every key, none at its default
    model: models/coder.gguf
    model_name: coder
    context: 2048
    threads: 3
    kv_type: f32
    host: 0.0.0.0
    port: 9090
    api_keys: [alpha, "beta"]
    api_key_file: ~/keys.txt
    parallel: 4
    cache_slots: 12
    queue_size: 10
    prefill_chunk: 256
    max_request_bytes: 1_048_576
    request_timeout: 30.5
    max_choices: 2
    chat_template: /opt/templates/chatml.jinja
    prefix_cache: 0
    memory_budget: 1.5GiB
    expert_half_life: 8
    expert_prefetch: on
    """

@Suite("A configuration file sets every serve setting")
struct ConfigurationFileParsing {
    @Test("a file with every key fills every field, relative paths taken from the file's directory")
    func fullFile() throws {
        let settings = try parse(everyKeyFile)
        let home = NSString(string: "~").expandingTildeInPath
        #expect(settings == ServeSettings(
            model: "/etc/sparrow/models/coder.gguf", modelName: "coder", context: 2048, threads: 3,
            kvType: .f32, host: "0.0.0.0", port: 9090, apiKeys: ["alpha", "beta"],
            apiKeyFile: home + "/keys.txt", parallel: 4, cacheSlots: 12, queueSize: 10, prefillChunk: 256,
            maxRequestBytes: 1 << 20, requestTimeout: 30.5, maxChoices: 2,
            chatTemplate: "/opt/templates/chatml.jinja", prefixCache: 0, memoryBudget: 3 << 29, expertHalfLife: 8,
            expertPrefetch: true))
        #expect(Set(ServeSettings.fileKeys).count == 21)
        #expect(try parse("memory_budget: 4096").memoryBudget == 4096)
        #expect(try parse("memory_budget: \"512MiB\"").memoryBudget == 512 << 20)
        #expect(try parse("prefix_cache: 64MiB").prefixCache == 64 << 20)
        #expect(try parse("prefix_cache: 0MiB").prefixCache == 0)
        #expect(try parse("prefix_cache: 1GiB").serverConfiguration(environment: [:]).scheduler.prefixCacheBytes == 1 << 30)
    }

    @Test("the parsed file becomes the server's configuration")
    func toServerConfiguration() throws {
        let config = try parse(everyKeyFile.replacingOccurrences(of: "api_key_file: ~/keys.txt\n", with: ""))
            .serverConfiguration(environment: [:])
        #expect(config.host == "0.0.0.0")
        #expect(config.port == 9090)
        #expect(config.modelName == "coder")
        #expect(config.apiKeys == ["alpha", "beta"])
        #expect(config.maxRequestBytes == 1 << 20)
        #expect(config.requestTimeout == 30.5)
        #expect(config.maxChoices == 2)
        #expect(config.scheduler.maxSequences == 4)
        #expect(config.scheduler.cacheSlots == 12)
        #expect(config.scheduler.queueCapacity == 10)
        #expect(config.scheduler.prefillChunk == 256)
    }

    @Test("a catalog name stays a name; a file name becomes a path and names the model")
    func modelNames() throws {
        #expect(try parse("model: qwen2.5-coder-0.5b").model == "qwen2.5-coder-0.5b")
        let settings = try parse("model: small.gguf")
        #expect(settings.model == "/etc/sparrow/small.gguf")
        #expect(settings.resolvedModelName == "small")
    }

    @Test("an empty file, or one of comments only, sets nothing")
    func emptyFile() throws {
        #expect(try parse("") == ServeSettings())
        #expect(try parse("# nothing yet\n\n") == ServeSettings())
    }

    @Test("nothing set gives the documented defaults")
    func defaults() throws {
        let config = try ServeSettings().serverConfiguration(environment: [:])
        let plain = ServerConfiguration()
        #expect(config.host == plain.host && config.port == plain.port)
        #expect(config.modelName == ModelStore.defaultModel)
        #expect(config.apiKeys.isEmpty)
        #expect(config.maxRequestBytes == plain.maxRequestBytes)
        #expect(config.requestTimeout == plain.requestTimeout)
        #expect(config.maxChoices == plain.maxChoices)
        #expect(config.scheduler == plain.scheduler)
        #expect(ServeSettings().resolvedModel == ModelStore.defaultModel)
    }

    @Test("api_key_file and chat_template are read from the file's directory; $SPARROW_API_KEY adds a key")
    func filesBesideTheConfiguration() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try "# ops\nfile-key\n\n".write(to: dir.appendingPathComponent("keys.txt"), atomically: true, encoding: .utf8)
        try "{{ messages }}".write(to: dir.appendingPathComponent("t.jinja"), atomically: true, encoding: .utf8)
        let path = dir.appendingPathComponent("serve.yaml").path
        try "api_keys: [listed]\napi_key_file: keys.txt\nchat_template: t.jinja\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let settings = try ServeSettings(contentsOfFile: path)
        let config = try settings.serverConfiguration(environment: ["SPARROW_API_KEY": "env-key"])
        #expect(config.apiKeys == ["listed", "file-key", "env-key"])
        #expect(try settings.chatTemplateSource() == "{{ messages }}")
    }
}

@Suite("Flags given on the command line override the file")
struct FlagPrecedence {
    @Test("a flag replaces the file's value; keys without a flag keep the file's; the rest default")
    func flagOverFile() throws {
        let file = try parse("port: 9000\nparallel: 4\nhost: 0.0.0.0\napi_keys: [from-file]\n")
        let flags = ServeSettings(port: 9100, apiKeys: ["from-flag"], maxChoices: 3)
        let config = try file.overriding(with: flags).serverConfiguration(environment: [:])
        #expect(config.port == 9100)
        #expect(config.host == "0.0.0.0")
        #expect(config.scheduler.maxSequences == 4)
        #expect(config.apiKeys == ["from-flag"])
        #expect(config.maxChoices == 3)
        #expect(config.scheduler.queueCapacity == ServerConfiguration().scheduler.queueCapacity)
    }

    @Test("every field of a full flag layer wins, and an empty one changes nothing")
    func everyFieldMerges() throws {
        let file = try parse(everyKeyFile)
        let flags = ServeSettings(
            model: "m", modelName: "n", context: 1, threads: 1, kvType: .f16, host: "h", port: 1,
            apiKeys: ["k"], apiKeyFile: "f", parallel: 1, cacheSlots: 1, queueSize: 1, prefillChunk: 1,
            maxRequestBytes: 1024, requestTimeout: 1, maxChoices: 1, chatTemplate: "t", prefixCache: 1, memoryBudget: 1,
            expertHalfLife: 1, expertPrefetch: false)
        #expect(file.overriding(with: flags) == flags)
        #expect(file.overriding(with: ServeSettings()) == file)
        #expect(ServeSettings().overriding(with: file) == file)
    }

    @Test("limits between keys are checked after merging (cache_slots ≥ parallel)")
    func crossFieldAfterMerge() throws {
        let file = try parse("parallel: 8\ncache_slots: 8\n")
        #expect(throws: EngineError.self) {
            try file.overriding(with: ServeSettings(parallel: 16)).serverConfiguration(environment: [:])
        }
        #expect(throws: EngineError.self) { try parse("cache_slots: 4\n").serverConfiguration(environment: [:]) }
        #expect(throws: EngineError.self) { try ServeSettings(port: 70_000).serverConfiguration(environment: [:]) }
    }
}

@Suite("A bad configuration file is refused with the key, the place and the problem")
struct ConfigurationFileErrors {
    @Test("an unknown key is named, with the nearest known key")
    func unknownKey() {
        #expect(failure("host: 127.0.0.1\nprot: 80\n") == .unknownKey(
            .init(path: "/etc/sparrow/serve.yaml", line: 2, column: 1), key: "prot", suggestion: "port"))
        #expect(failure("max-request-bytes: 2048") == .unknownKey(
            .init(path: "/etc/sparrow/serve.yaml", line: 1, column: 1), key: "max-request-bytes",
            suggestion: "max_request_bytes"))
        #expect(failure("api_key: secret") == .unknownKey(
            .init(path: "/etc/sparrow/serve.yaml", line: 1, column: 1), key: "api_key", suggestion: "api_keys"))
        #expect(failure("parralel: 4") == .unknownKey(
            .init(path: "/etc/sparrow/serve.yaml", line: 1, column: 1), key: "parralel", suggestion: "parallel"))
        #expect(failure("banana: 1") == .unknownKey(
            .init(path: "/etc/sparrow/serve.yaml", line: 1, column: 1), key: "banana", suggestion: nil))
        let message = failure("  \nprot: 80").map(String.init(describing:)) ?? ""
        #expect(message.hasPrefix("/etc/sparrow/serve.yaml:2:1: unknown key 'prot' (did you mean 'port'?)"))
    }

    @Test("a value of the wrong type names the key, what was expected and what was found",
          arguments: [
              ("port: \"8080\"", "port", "the string \"8080\""),
              ("port: eighty", "port", "the string \"eighty\""),
              ("threads: 2.5", "threads", "the number 2.5"),
              ("host: 8080", "host", "the integer 8080"),
              ("model_name: yes", "model_name", "the boolean yes"),
              ("model:", "model", "no value (null)"),
              ("api_keys: secret", "api_keys", "the string \"secret\""),
              ("api_keys: [ok, 12]", "api_keys", "the integer 12"),
              ("api_keys: [\"two words\"]", "api_keys", "the string \"two words\""),
              ("request_timeout: soon", "request_timeout", "the string \"soon\""),
              ("kv_type: 16", "kv_type", "the integer 16"),
              ("parallel: [8]", "parallel", "a list"),
              ("host: {a: 1}", "host", "a mapping"),
              ("memory_budget: lots", "memory_budget", "the string \"lots\""),
              ("memory_budget: 8 gigs", "memory_budget", "the string \"8 gigs\""),
              ("memory_budget: true", "memory_budget", "the boolean true"),
              ("expert_half_life: soon", "expert_half_life", "the string \"soon\""),
              ("expert_prefetch: maybe", "expert_prefetch", "the string \"maybe\""),
              ("expert_prefetch: 1", "expert_prefetch", "the integer 1"),
          ])
    func wrongType(yaml: String, key: String, found: String) {
        guard case let .wrongType(at, k, _, f)? = failure(yaml) else {
            Issue.record("\(yaml): expected a wrong-type error, got \(String(describing: failure(yaml)))")
            return
        }
        #expect(k == key)
        #expect(f == found)
        #expect(at.line == 1)
    }

    @Test("a value outside its bounds names the key, the value and the bounds",
          arguments: [
              ("port: 70000", "port", "70000", "in 0...65535"),
              ("port: -1", "port", "-1", "in 0...65535"),
              ("threads: 0", "threads", "0", "≥ 1"),
              ("context: 0", "context", "0", "≥ 1"),
              ("parallel: 0", "parallel", "0", "in 1...256"),
              ("parallel: 257", "parallel", "257", "in 1...256"),
              ("cache_slots: 2000", "cache_slots", "2000", "in 0...1024"),
              ("queue_size: -5", "queue_size", "-5", "in 0...100000"),
              ("prefill_chunk: 0", "prefill_chunk", "0", "in 1...65536"),
              ("max_request_bytes: 10", "max_request_bytes", "10", "in 1024...1073741824"),
              ("max_choices: 129", "max_choices", "129", "in 1...128"),
              ("request_timeout: 0", "request_timeout", "0", "> 0 seconds"),
              ("request_timeout: .inf", "request_timeout", ".inf", "> 0 seconds"),
              ("kv_type: q8_0", "kv_type", "'q8_0'", "f32 or f16"),
              ("port: 99999999999999999999", "port", "99999999999999999999", "a 64-bit integer"),
              ("memory_budget: 0", "memory_budget", "0", "≥ 1"),
              ("prefix_cache: -1", "prefix_cache", "-1", "≥ 0"),
              ("expert_half_life: 0", "expert_half_life", "0", "> 0 tokens"),
          ])
    func outOfRange(yaml: String, key: String, value: String, bounds: String) {
        #expect(failure("# first line\n" + yaml) == .outOfRange(
            .init(path: "/etc/sparrow/serve.yaml", line: 2, column: key.count + 3), key: key, value: value, bounds: bounds))
    }

    @Test("invalid YAML is refused with libyaml's line and column")
    func invalidYAML() {
        guard case let .invalidYAML(at, problem)? = failure("port: 8080\nhost: [127.0.0.1\nparallel: 4\n") else {
            Issue.record("expected invalid YAML")
            return
        }
        #expect(at.line != nil && at.column != nil)
        #expect(!problem.isEmpty)
        guard case let .invalidYAML(at2, _)? = failure("port: 8080\n  host: x\n") else {
            Issue.record("expected invalid YAML for a bad indent")
            return
        }
        #expect(at2.line == 2)
        guard case let .invalidYAML(at3, problem3)? = failure("port: 8080\nport: 9090\n") else {
            Issue.record("expected a duplicate key error")
            return
        }
        #expect(at3.line == 1)
        #expect(problem3.contains("duplicate key 'port'"))
        guard case .invalidYAML? = failure("port: 1\n---\nport: 2\n") else {
            Issue.record("expected two documents to be refused")
            return
        }
        let message = failure("a: 'open").map(String.init(describing:)) ?? ""
        #expect(message.hasPrefix("/etc/sparrow/serve.yaml:"))
        #expect(message.contains("invalid YAML"))
    }

    @Test("a document that is not a mapping is refused")
    func notAMapping() {
        guard case let .notAMapping(_, found)? = failure("- port\n- 8080\n") else {
            Issue.record("expected not-a-mapping")
            return
        }
        #expect(found == "a list")
        guard case .notAMapping? = failure("just words") else {
            Issue.record("expected not-a-mapping for a scalar")
            return
        }
    }

    @Test("a missing file, a directory and a file that is not UTF-8 are unreadable")
    func unreadable() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let missing = dir.appendingPathComponent("missing.yaml").path
        #expect(throws: ServeConfigError.unreadable(path: missing, reason: "no such file")) {
            try ServeSettings(contentsOfFile: missing)
        }
        #expect(throws: ServeConfigError.unreadable(path: dir.path, reason: "it is a directory")) {
            try ServeSettings(contentsOfFile: dir.path)
        }
        let binary = dir.appendingPathComponent("binary.yaml")
        try Data([0x70, 0x6F, 0x72, 0x74, 0x3A, 0x20, 0xFF, 0xFE, 0x0A]).write(to: binary)
        #expect(throws: ServeConfigError.unreadable(path: binary.path, reason: "not UTF-8 text")) {
            try ServeSettings(contentsOfFile: binary.path)
        }
    }
}

@Suite("The example configuration and the docs")
struct ExampleConfiguration {
    let examplePath = repositoryRoot.appendingPathComponent("docs/sparrow.example.yaml").path

    @Test("docs/sparrow.example.yaml parses to the defaults it documents")
    func exampleParses() throws {
        let settings = try ServeSettings(contentsOfFile: examplePath)
        #expect(settings.model == ModelStore.defaultModel)
        let config = try settings.serverConfiguration(environment: [:])
        let plain = ServerConfiguration()
        #expect(config.host == plain.host && config.port == plain.port)
        #expect(config.maxRequestBytes == plain.maxRequestBytes)
        #expect(config.requestTimeout == plain.requestTimeout)
        #expect(config.maxChoices == plain.maxChoices)
        #expect(config.scheduler == plain.scheduler)
        #expect(settings.kvType == .f16)
    }

    @Test("the example shows every key, and its commented-out lines parse once uncommented")
    func exampleCoversEveryKey() throws {
        let text = try String(contentsOfFile: examplePath, encoding: .utf8)
        var uncommented: [String] = []
        var shown: Set<String> = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let body = line.hasPrefix("# ") ? line.dropFirst(2) : line[...]
            guard let colon = body.firstIndex(of: ":") else { uncommented.append(String(line)); continue }
            let key = String(body[..<colon])
            if ServeSettings.fileKeys.contains(key) {
                shown.insert(key)
                uncommented.append(String(body))
            } else {
                uncommented.append(String(line))
            }
        }
        #expect(shown == Set(ServeSettings.fileKeys))
        let settings = try ServeSettings(yaml: uncommented.joined(separator: "\n"), path: examplePath)
        #expect(settings.apiKeyFile != nil && settings.chatTemplate != nil && settings.threads != nil)
    }

    @Test("docs/server.md documents every key")
    func serverDocCoversEveryKey() throws {
        let doc = try String(contentsOfFile: repositoryRoot.appendingPathComponent("docs/server.md").path, encoding: .utf8)
        for key in ServeSettings.fileKeys {
            #expect(doc.contains("`\(key)`"), "docs/server.md does not mention `\(key)`")
        }
    }
}
