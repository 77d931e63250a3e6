import Foundation
import SparrowAPI
import SparrowEngine

/// Everything `sparrow serve` needs besides the model. Every field has a flag of the same
/// name in kebab case (`--max-request-bytes`); `validate()` names the bad value and the fix.
public struct ServerConfiguration: Sendable {
    /// Address to bind. Default `127.0.0.1` (loopback only); `0.0.0.0` exposes the server.
    public var host: String = "127.0.0.1"
    /// TCP port. Default 8080. Bounds 0...65535 (0 = any free port).
    public var port: Int = 8080
    /// The model id clients name in `model` and `GET /v1/models` lists. Default: the model
    /// argument's name (a catalog name, or the file name without `.gguf`).
    public var modelName: String = "model"
    /// Accepted API keys (`Authorization: Bearer KEY`); empty = no authentication.
    public var apiKeys: Set<String> = []
    /// Largest request body in bytes; larger requests get 413. Default 4 MiB. Bounds 1 KiB...1 GiB.
    public var maxRequestBytes: Int = 4 << 20
    /// Seconds a request may take from arrival to its last token before it is abandoned
    /// (408). Default 600. Bounds > 0.
    public var requestTimeout: Double = 600
    /// Largest `n` (choices per request). Default 8. Bounds 1...128.
    public var maxChoices: Int = 8
    /// `max_tokens` when a chat request gives none: nil = up to the context. Bounds ≥ 1.
    public var defaultMaxTokens: Int? = nil
    /// Continuous batching, queue and prefix-cache settings.
    public var scheduler = SchedulerConfiguration()

    /// Bounds of `port`, `maxRequestBytes` and `maxChoices`: the one source for `validate()` and
    /// for the configuration file's checks (`ServeSettings`).
    public static let portRange = 0...65_535
    public static let maxRequestBytesRange = (1 << 10)...(1 << 30)
    public static let maxChoicesRange = 1...128

    public init() {}

    public func validate() throws(EngineError) {
        guard !host.isEmpty else { throw .invalidParameter("host must not be empty (use 127.0.0.1 for loopback)") }
        guard Self.portRange.contains(port) else { throw .invalidParameter("port \(port) must be in \(Self.portRange)") }
        guard !modelName.isEmpty else { throw .invalidParameter("model name must not be empty") }
        guard Self.maxRequestBytesRange.contains(maxRequestBytes) else {
            throw .invalidParameter("max request bytes \(maxRequestBytes) must be in \(Self.maxRequestBytesRange)")
        }
        guard requestTimeout > 0, requestTimeout.isFinite else {
            throw .invalidParameter("request timeout \(requestTimeout) s must be > 0")
        }
        guard Self.maxChoicesRange.contains(maxChoices) else {
            throw .invalidParameter("max choices \(maxChoices) must be in \(Self.maxChoicesRange)")
        }
        if let m = defaultMaxTokens, m < 1 { throw .invalidParameter("default max tokens \(m) must be ≥ 1") }
        for key in apiKeys where key.isEmpty || key.contains(where: \.isWhitespace) {
            throw .invalidParameter("an API key is empty or contains whitespace")
        }
        try scheduler.validate()
    }

    /// Reads API keys from a file: one per line, blank lines and `#` comments skipped.
    public static func apiKeys(fromFile path: String) throws(EngineError) -> Set<String> {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .invalidParameter("cannot read the API key file \(path)")
        }
        var keys: Set<String> = []
        for line in String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline) {
            let k = line.trimmingCharacters(in: .whitespaces)
            if k.isEmpty || k.hasPrefix("#") { continue }
            keys.insert(k)
        }
        guard !keys.isEmpty else { throw .invalidParameter("the API key file \(path) holds no keys") }
        return keys
    }
}
