import Foundation
import SparrowFormats
@testable import SparrowTokenizer

/// Where llama.cpp's ggml-vocab-*.gguf files and test vectors live: $SPARROW_VOCAB_DIR, or
/// ~/.cache/sparrow/vocab (see scripts/fetch_vocabs.sh).
enum VocabFiles {
    static let directory: String = {
        if let d = ProcessInfo.processInfo.environment["SPARROW_VOCAB_DIR"], !d.isEmpty { return d }
        return NSHomeDirectory() + "/.cache/sparrow/vocab"
    }()

    static func path(_ name: String) -> String { "\(directory)/ggml-vocab-\(name).gguf" }

    static func has(_ name: String) -> Bool {
        let fm = FileManager.default
        return fm.fileExists(atPath: path(name)) && fm.fileExists(atPath: path(name) + ".inp")
            && fm.fileExists(atPath: path(name) + ".out")
    }

    static let available: Bool = {
        let ok = has("qwen2")
        if !ok {
            print("⚠️ SparrowTokenizerTests: llama.cpp vocab files not found in \(directory); vector tests are skipped. Run scripts/fetch_vocabs.sh or set SPARROW_VOCAB_DIR.")
        }
        return ok
    }()

    /// Loaded tokenizers, shared between tests.
    nonisolated(unsafe) private static var cache: [String: Tokenizer] = [:]
    private static let lock = NSLock()

    static func tokenizer(_ name: String) throws -> Tokenizer {
        try tokenizer(atPath: path(name))
    }

    static func tokenizer(atPath p: String) throws -> Tokenizer {
        lock.lock()
        defer { lock.unlock() }
        if let t = cache[p] { return t }
        let t = try Tokenizer(gguf: GGUFFile(path: p))
        cache[p] = t
        return t
    }

    struct Case { let input: String; let expected: [Int32] }

    /// Reads `<vocab>.inp` / `.out` as llama.cpp's tests/test-tokenizer-0.cpp does.
    static func cases(_ name: String) throws -> [Case] {
        let raw = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path(name) + ".inp")))
        let out = try String(contentsOfFile: path(name) + ".out", encoding: .utf8)
        let sep = Array("\n__ggml_vocab_test__\n".utf8)
        var inputs: [String] = []
        var pos = 0
        while pos < raw.count {
            var next = -1
            var i = pos
            while i + sep.count <= raw.count {
                if raw[i] == sep[0] && Array(raw[i..<(i + sep.count)]) == sep { next = i; break }
                i += 1
            }
            if next < 0 {
                inputs.append(String(decoding: raw[pos...], as: UTF8.self))
                break
            }
            inputs.append(String(decoding: raw[pos..<next], as: UTF8.self))
            pos = next + sep.count
        }
        var lines = out.components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        guard lines.count == inputs.count else {
            throw VocabError.mismatch("\(name): \(inputs.count) inputs, \(lines.count) outputs")
        }
        return zip(inputs, lines).map { input, line in
            let ids = line.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ").compactMap { Int32($0) }
            return Case(input: input, expected: ids)
        }
    }

    enum VocabError: Error { case mismatch(String) }
}
