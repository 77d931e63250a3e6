import SparrowFormats
import SparrowModels
import SparrowSampling
import SparrowTokenizer

/// Errors from loading a model or generating with it; each wraps the module error that caused it.
public enum EngineError: Error, CustomStringConvertible {
    case format(FormatError)
    case model(ModelError)
    case tokenizer(TokenizerError)
    case template(TemplateError)
    case sampling(SamplingError)
    /// The model file has no `tokenizer.chat_template` and none was given.
    case noChatTemplate
    /// The prompt plus requested tokens do not fit the context.
    case promptTooLong(promptTokens: Int, context: Int)
    /// A parameter outside its bounds; the message names value and fix.
    case invalidParameter(String)
    /// `--model NAME` names neither a file nor a pulled model.
    case modelNotFound(String, hint: String)
    /// `sparrow pull` failed.
    case pull(String)
    /// The scheduler's queue already holds `capacity` waiting requests.
    case queueFull(capacity: Int)
    /// A request ran past its deadline (`seconds` after it was submitted).
    case timedOut(seconds: Double)
    /// The scheduler is shutting down and takes no new work.
    case shuttingDown

    public var description: String {
        switch self {
        case let .format(e): return e.description
        case let .model(e): return e.description
        case let .tokenizer(e): return "\(e)"
        case let .template(e): return "\(e)"
        case let .sampling(e): return e.description
        case .noChatTemplate: return "the model file has no chat template (tokenizer.chat_template); pass --raw or --template FILE"
        case let .promptTooLong(p, c): return "prompt of \(p) tokens does not fit the context of \(c) tokens (raise --context or shorten the prompt)"
        case let .invalidParameter(s): return s
        case let .modelNotFound(name, hint): return "model '\(name)' not found: \(hint)"
        case let .pull(s): return "pull failed: \(s)"
        case let .queueFull(c): return "the server is busy: \(c) requests are already waiting; retry later"
        case let .timedOut(s): return "the request did not finish within its timeout of \(s) s"
        case .shuttingDown: return "the server is shutting down"
        }
    }
}
