import Foundation
import SparrowFormats
@testable import SparrowTokenizer

/// Writes small GGUF files holding only tokenizer metadata, for tests that need no
/// downloaded vocabulary.
struct ToyGGUF {
    enum Value {
        case string(String), u32(UInt32), i32(Int32), bool(Bool)
        case strings([String]), floats([Float]), ints([Int32])
    }

    var entries: [(String, Value)] = []

    mutating func set(_ key: String, _ value: Value) {
        entries.removeAll { $0.0 == key }
        entries.append((key, value))
    }

    mutating func remove(_ key: String) { entries.removeAll { $0.0 == key } }

    func bytes() -> [UInt8] {
        var out: [UInt8] = []
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func str(_ s: String) { u64(UInt64(s.utf8.count)); out.append(contentsOf: s.utf8) }
        u32(0x4655_4747)
        u32(3)
        u64(0)
        u64(UInt64(entries.count))
        for (key, value) in entries {
            str(key)
            switch value {
            case let .string(s): u32(8); str(s)
            case let .u32(v): u32(4); u32(v)
            case let .i32(v): u32(5); u32(UInt32(bitPattern: v))
            case let .bool(b): u32(7); out.append(b ? 1 : 0)
            case let .strings(a): u32(9); u32(8); u64(UInt64(a.count)); a.forEach(str)
            case let .floats(a): u32(9); u32(6); u64(UInt64(a.count)); a.forEach { u32($0.bitPattern) }
            case let .ints(a): u32(9); u32(5); u64(UInt64(a.count)); a.forEach { u32(UInt32(bitPattern: $0)) }
            }
        }
        return out
    }

    /// Writes the file and parses it back.
    func load() throws -> GGUFFile {
        let path = NSTemporaryDirectory() + "sparrow-toy-\(UUID().uuidString).gguf"
        try Data(bytes()).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try GGUFFile(path: path)
    }

    /// A tiny SentencePiece vocabulary: <unk>, <s>, </s>, 256 byte tokens, then pieces.
    static func sentencePiece(pieces: [(String, Float)], userDefined: [String] = []) -> ToyGGUF {
        var tokens = ["<unk>", "<s>", "</s>"]
        var types: [Int32] = [2, 3, 3]
        var scores: [Float] = [0, 0, 0]
        for b in 0..<256 {
            tokens.append(String(format: "<0x%02X>", b))
            types.append(6)
            scores.append(0)
        }
        for (p, s) in pieces {
            tokens.append(p)
            types.append(1)
            scores.append(s)
        }
        for u in userDefined {
            tokens.append(u)
            types.append(4)
            scores.append(0)
        }
        var g = ToyGGUF()
        g.set("tokenizer.ggml.model", .string("llama"))
        g.set("tokenizer.ggml.tokens", .strings(tokens))
        g.set("tokenizer.ggml.scores", .floats(scores))
        g.set("tokenizer.ggml.token_type", .ints(types))
        return g
    }

    /// A tiny byte-level BPE vocabulary: the 256 byte tokens, merge results, then extras.
    static func bytePairEncoding(merges: [String], extra: [(String, Int32)] = [], pre: String = "gpt-2") -> ToyGGUF {
        var tokens: [String] = []
        var types: [Int32] = []
        for b in 0..<256 {
            tokens.append(String(UnicodeScalar(ByteLevel.byteToScalar[b]).map(Character.init) ?? "?"))
            types.append(1)
        }
        for m in merges {
            tokens.append(m.replacingOccurrences(of: " ", with: ""))
            types.append(1)
        }
        for (t, ty) in extra {
            tokens.append(t)
            types.append(ty)
        }
        var g = ToyGGUF()
        g.set("tokenizer.ggml.model", .string("gpt2"))
        g.set("tokenizer.ggml.pre", .string(pre))
        g.set("tokenizer.ggml.tokens", .strings(tokens))
        g.set("tokenizer.ggml.token_type", .ints(types))
        g.set("tokenizer.ggml.merges", .strings(merges))
        return g
    }
}
