import SparrowFormats

/// Errors from building a tokenizer out of GGUF metadata. Each case says which key or
/// setting was wrong, so an unsupported model can be told from a broken file.
public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    /// Reading the GGUF file itself failed.
    case format(FormatError)
    /// A required metadata key is absent or has the wrong type.
    case missingKey(String, expected: String)
    /// A metadata value is present but unusable (wrong length, out of range...).
    case badValue(key: String, reason: String)
    /// `tokenizer.ggml.model` names a tokenizer this implementation does not support.
    case unsupportedModel(String)
    /// `tokenizer.ggml.pre` names a pre-tokenizer this implementation does not support.
    case unsupportedPreTokenizer(String)

    /// A one-line explanation for users.
    public var description: String {
        switch self {
        case let .format(e): return "cannot read tokenizer: \(e)"
        case let .missingKey(key, expected): return "tokenizer metadata '\(key)' missing or not \(expected)"
        case let .badValue(key, reason): return "tokenizer metadata '\(key)': \(reason)"
        case let .unsupportedModel(m):
            return "unsupported tokenizer model '\(m)' (supported: 'llama' (SentencePiece), 'gpt2' (byte-level BPE), 'gemma4')"
        case let .unsupportedPreTokenizer(p): return "unsupported pre-tokenizer '\(p)'"
        }
    }
}
