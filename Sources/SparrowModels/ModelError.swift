import SparrowFormats

/// Errors from building or running a model.
public enum ModelError: Error, Equatable, CustomStringConvertible {
    /// The file's `general.architecture` has no entry in `ModelRegistry`.
    case unsupportedArchitecture(String, supported: [String])
    /// A tensor the architecture needs is absent.
    case missingTensor(String)
    /// A tensor has the wrong shape for the configuration.
    case shapeMismatch(tensor: String, expected: [Int], found: [Int])
    /// A configuration value is invalid (e.g. heads not dividing the embedding size).
    case invalidConfig(String)
    /// The file itself could not be read.
    case format(FormatError)
    /// The sequence would exceed the context the state was created for.
    case contextOverflow(needed: Int, limit: Int)
    /// A token id outside the vocabulary.
    case tokenOutOfRange(Int32, vocabularySize: Int)

    public var description: String {
        switch self {
        case let .unsupportedArchitecture(a, supported):
            return "unsupported architecture '\(a)' (supported: \(supported.joined(separator: ", ")))"
        case let .missingTensor(n): return "missing tensor '\(n)'"
        case let .shapeMismatch(t, e, f): return "tensor '\(t)' has shape \(f), expected \(e)"
        case let .invalidConfig(s): return "invalid model configuration: \(s)"
        case let .format(e): return e.description
        case let .contextOverflow(needed, limit): return "context overflow: \(needed) tokens needed, context holds \(limit)"
        case let .tokenOutOfRange(t, n): return "token id \(t) out of range 0..<\(n)"
        }
    }
}
