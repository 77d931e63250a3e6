import Foundation
import Testing
import SparrowFormats
@testable import SparrowTokenizer

/// Builds about `bytes` of varied text: prose, code, numbers, whitespace runs, accented and
/// CJK text and emoji, from a fixed pseudo-random sequence.
func sampleText(bytes: Int, seed: UInt64 = 42) -> String {
    var rng = seed
    func next() -> Int {
        rng = rng &* 6364136223846793005 &+ 1442695040888963407
        return Int(truncatingIfNeeded: rng >> 33)
    }
    let words = ["the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not",
                 "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you",
                 "tokenizer", "language", "model", "streaming", "incremental", "Swift", "runtime", "inference",
                 "don't", "we'll", "it's", "café", "naïve", "Straße", "über", "日本語", "テキスト", "中文", "한국어",
                 "привет", "мир", "γειά", "σου", "🦙", "🚀", "😶‍🌫️", "✅", "👍🏽", "x86_64", "3.14159", "1,000,000", "2024-05-01",
                 "func", "let", "var", "return", "{", "}", "(", ")", "=>", "==", "!=", "<=", "//", "/*", "*/", "\t", "    ",
                 "\n", "\n\n", "  ", "...", "?", "!", ",", ";", ":", "\"", "'", "`", "$", "#", "@", "%", "^", "&", "*"]
    var out = ""
    out.reserveCapacity(bytes + 64)
    var n = 0
    while n < bytes {
        let w = words[next() % words.count]
        let piece = next() % 5 == 0 ? w : w + " "
        out += piece
        n += piece.utf8.count
    }
    return out
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}

@Suite("Tokenizer speed")
struct SpeedTests {
    @Test("vocabulary loading time (printed)", .enabled(if: VocabFiles.available))
    func loading() throws {
        let clock = ContinuousClock()
        for name in ["qwen2", "llama-bpe", "llama-spm"] {
            let file = try GGUFFile(path: VocabFiles.path(name))
            var tok: Tokenizer?
            let t = clock.measure { tok = try? Tokenizer(gguf: file) }
            #expect(tok != nil)
            print(String(format: "%@: tokenizer built from parsed GGUF in %.3f s", name, seconds(t)))
        }
    }

    @Test("1 MB of text tokenizes quickly with a SentencePiece vocabulary", .enabled(if: VocabFiles.available))
    func oneMegabyteSPM() throws {
        let tok = try VocabFiles.tokenizer("llama-spm")
        let text = sampleText(bytes: 1 << 20, seed: 7)
        let clock = ContinuousClock()
        var ids: [Int32] = []
        let elapsed = clock.measure { ids = tok.encode(text, addSpecial: false) }
        print(String(format: "llama-spm: encoded %d bytes into %d tokens in %.3f s", text.utf8.count, ids.count, seconds(elapsed)))
        #expect(tok.decode(ids) == text)
        #if !DEBUG
        #expect(seconds(elapsed) < 1.0)
        #endif
    }

    @Test("1 MB of text tokenizes quickly with the Qwen2 vocabulary", .enabled(if: VocabFiles.available))
    func oneMegabyte() throws {
        let tok = try VocabFiles.tokenizer("qwen2")
        let text = sampleText(bytes: 1 << 20)
        _ = tok.encode(String(text.prefix(1000)), addSpecial: false)
        let clock = ContinuousClock()
        var ids: [Int32] = []
        let elapsed = clock.measure { ids = tok.encode(text, addSpecial: false, parseSpecial: true) }
        print(String(format: "qwen2: encoded %d bytes into %d tokens in %.3f s", text.utf8.count, ids.count, seconds(elapsed)))
        #expect(tok.decode(ids) == text)
        #if !DEBUG
        #expect(seconds(elapsed) < 1.0)
        #endif
    }
}
