import SparrowEngine

/// An error as the OpenAI API reports it: an HTTP status and
/// `{"error": {"message", "type", "param", "code"}}`. The server module makes it render itself
/// as the HTTP response.
public struct APIError: Error, Sendable, CustomStringConvertible {
    /// HTTP status code.
    public var statusCode: Int
    public var message: String
    /// OpenAI's error type: `invalid_request_error`, `authentication_error`, `not_found_error`,
    /// `rate_limit_error`, `server_error`, `timeout_error`.
    public var type: String
    /// The request parameter at fault, if one is.
    public var param: String?
    public var code: String?

    public init(status: Int, message: String, type: String, param: String? = nil, code: String? = nil) {
        self.statusCode = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    public var description: String { "\(statusCode) \(type): \(message)" }

    /// 400 for a request that is malformed or has a bad parameter.
    public static func invalidRequest(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(status: 400, message: message, type: "invalid_request_error", param: param, code: code)
    }

    /// 400 for a parameter outside its domain; names the parameter.
    public static func invalidParameter(_ param: String, _ message: String) -> APIError {
        invalidRequest(message, param: param, code: "invalid_parameter")
    }

    /// 400 for a parameter this server does not implement (never silently ignored).
    public static func unsupported(_ param: String, _ message: String) -> APIError {
        invalidRequest(message, param: param, code: "unsupported_parameter")
    }

    public static let unauthorized = APIError(
        status: 401, message: "Incorrect or missing API key; send it as 'Authorization: Bearer KEY'.",
        type: "authentication_error", code: "invalid_api_key")

    public static func modelNotFound(_ name: String, available: [String]) -> APIError {
        APIError(status: 404, message: "The model '\(name)' does not exist; this server serves \(available.joined(separator: ", ")).",
                 type: "invalid_request_error", param: "model", code: "model_not_found")
    }

    public static func tooLarge(limit: Int) -> APIError {
        APIError(status: 413, message: "The request body exceeds the limit of \(limit) bytes.",
                 type: "invalid_request_error", code: "request_too_large")
    }

    /// Maps an engine error to the status a client should see.
    public static func from(_ e: EngineError) -> APIError {
        switch e {
        case let .promptTooLong(p, c):
            return APIError(status: 400,
                            message: "This model's maximum context length is \(c) tokens; the request needs \(p) tokens. Shorten the messages or lower max_tokens.",
                            type: "invalid_request_error", param: "messages", code: "context_length_exceeded")
        case .queueFull:
            return APIError(status: 429, message: e.description, type: "rate_limit_error", code: "queue_full")
        case .timedOut:
            return APIError(status: 408, message: e.description, type: "timeout_error", code: "timeout")
        case .shuttingDown:
            return APIError(status: 503, message: e.description, type: "server_error", code: "shutting_down")
        case let .sampling(s):
            return invalidRequest(s.description, code: "invalid_parameter")
        case .invalidParameter, .template, .noChatTemplate:
            return invalidRequest(e.description, code: e.isTemplate ? "template_error" : "invalid_parameter")
        default:
            return APIError(status: 500, message: e.description, type: "server_error", code: "internal_error")
        }
    }

    /// The JSON body.
    public var json: JSONValue {
        .object([("error", .object([
            ("message", .string(message)), ("type", .string(type)),
            ("param", param.map(JSONValue.string) ?? .null), ("code", code.map(JSONValue.string) ?? .null),
        ]))])
    }
}

extension EngineError {
    package var isTemplate: Bool {
        switch self {
        case .template, .noChatTemplate: return true
        default: return false
        }
    }
}

/// A random id such as `chatcmpl-…` or `call_…`.
package func newID(_ prefix: String) -> String {
    prefix + String((0..<24).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789".randomElement() ?? "x" })
}
