/// Errors from reading model files. Each case names where in the file it went wrong and what
/// was expected, so a user can tell a truncated download from an unsupported model.
public enum FormatError: Error, Equatable, CustomStringConvertible {
    /// The file could not be opened or mapped.
    case io(path: String, reason: String)
    /// The file does not start with the GGUF magic bytes.
    case badMagic(found: UInt32)
    /// A GGUF version this reader does not know (it reads 2 and 3).
    case unsupportedVersion(UInt32)
    /// The file ends before a value that should be at `offset`.
    case truncated(offset: Int, needed: Int, fileSize: Int, what: String)
    /// A metadata value has a type code outside the GGUF spec.
    case badValueType(offset: Int, code: UInt32, key: String)
    /// A count or length is implausible (would exceed the file).
    case implausible(offset: Int, what: String, value: UInt64)
    /// A tensor uses a type this reader does not know.
    case unknownTensorType(tensor: String, code: UInt32)
    /// A tensor's shape or data range is inconsistent.
    case badTensor(tensor: String, reason: String)
    /// A required metadata key is absent or has the wrong type.
    case missingKey(String, expected: String)
    /// Two tensors or keys share a name.
    case duplicate(String)
    /// A string is not valid UTF-8.
    case badString(offset: Int)

    public var description: String {
        switch self {
        case let .io(path, reason): return "cannot read \(path): \(reason)"
        case let .badMagic(found): return "not a GGUF file (magic 0x\(String(found, radix: 16)), expected 0x46554747 'GGUF')"
        case let .unsupportedVersion(v): return "unsupported GGUF version \(v) (supported: 2, 3)"
        case let .truncated(offset, needed, size, what):
            return "file truncated: \(what) needs \(needed) bytes at offset \(offset), file has \(size)"
        case let .badValueType(offset, code, key): return "metadata key '\(key)': unknown value type \(code) at offset \(offset)"
        case let .implausible(offset, what, value): return "implausible \(what) \(value) at offset \(offset)"
        case let .unknownTensorType(tensor, code): return "tensor '\(tensor)': unknown tensor type \(code)"
        case let .badTensor(tensor, reason): return "tensor '\(tensor)': \(reason)"
        case let .missingKey(key, expected): return "metadata key '\(key)' missing or not \(expected)"
        case let .duplicate(name): return "duplicate name '\(name)'"
        case let .badString(offset): return "invalid UTF-8 string at offset \(offset)"
        }
    }
}
