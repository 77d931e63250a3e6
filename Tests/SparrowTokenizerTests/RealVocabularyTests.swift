import Testing
@testable import SparrowTokenizer

/// Strings for round-trip and streaming checks: code, unicode, emoji, numbers, whitespace.
let roundTripStrings: [String] = [
    "Hello world",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\r\n\n\nand   runs    of     spaces",
    "func add(_ a: Int, _ b: Int) -> Int {\n    return a + b // sum\n}\n",
    "def f(x):\n\treturn {\"k\": [1, 2, 3]}\n",
    "3.14159 1234567890 1,000,000 0x1F 2024-05-01T12:00:00Z",
    "café naïve Straße über 日本語のテキスト 中文字符 한국어 текст γειά",
    "emoji: 🦙🚀 😶‍🌫️ 👍🏽 🇫🇷 ✅ family 👨‍👩‍👧‍👦",
    "mixed\u{00A0}nbsp\u{2003}em-space\u{3000}ideographic",
    "I'm sure you're right; they've said we'll see, it's HE'LL",
    "Ünïcödé ™ © ® ∑ ∫ √ ∞ ≠ ≤ ≥ ← → ⇒",
    "",
    " ",
    "\n",
]

@Suite("Real vocabularies")
struct RealVocabularyTests {
    /// BPE vocabularies without space clean-up round-trip any text.
    @Test("decode(encode(s)) == s on byte-level BPE vocabularies", .enabled(if: VocabFiles.available),
          arguments: ["qwen2", "qwen35", "command-r", "deepseek-coder"])
    func roundTripBPE(_ name: String) throws {
        let tok = try VocabFiles.tokenizer(name)
        #expect(!tok.vocabulary.cleanSpaces)
        for s in roundTripStrings {
            let ids = tok.encode(s, addSpecial: false)
            #expect(tok.decode(ids) == s, "\(name): \(s.debugDescription)")
        }
    }

    /// With llama.cpp's clean_spaces, " ," style spaces are tidied, so use text without them.
    @Test("decode(encode(s)) == s on vocabularies with space clean-up", .enabled(if: VocabFiles.available),
          arguments: ["llama-bpe", "gpt-2", "starcoder", "falcon"])
    func roundTripCleaned(_ name: String) throws {
        let tok = try VocabFiles.tokenizer(name)
        #expect(tok.vocabulary.cleanSpaces)
        for s in roundTripStrings where s != "I'm sure you're right; they've said we'll see, it's HE'LL" {
            let ids = tok.encode(s, addSpecial: false)
            #expect(tok.decode(ids) == s, "\(name): \(s.debugDescription)")
        }
        #expect(tok.decode(tok.encode("Hello , world ! I 'm", addSpecial: false)) == "Hello, world! I'm")
    }

    @Test("SentencePiece round-trips (byte fallback for characters outside the vocabulary)", .enabled(if: VocabFiles.available),
          arguments: ["llama-spm", "phi-3"])
    func roundTripSPM(_ name: String) throws {
        let tok = try VocabFiles.tokenizer(name)
        for s in roundTripStrings where !s.hasPrefix(" ") {
            let ids = tok.encode(s, addSpecial: false)
            #expect(tok.decode(ids) == s, "\(name): \(s.debugDescription)")
        }
    }

    @Test("incremental decoding equals full decoding", .enabled(if: VocabFiles.available),
          arguments: ["qwen2", "llama-bpe", "gpt-2", "llama-spm", "phi-3", "starcoder"])
    func incremental(_ name: String) throws {
        let tok = try VocabFiles.tokenizer(name)
        for s in roundTripStrings + ["Hello , world ! I 'm ' here", "🦙", "a🦙b🚀c"] {
            let ids = tok.encode(s, addSpecial: true)
            for special in [false, true] {
                var dec = tok.makeIncrementalDecoder(special: special)
                var streamed = ""
                for id in ids { streamed += dec.append(id) }
                streamed += dec.flush()
                #expect(streamed == tok.decode(ids, special: special), "\(name): \(s.debugDescription)")
            }
        }
    }

    @Test("an emoji split over byte tokens is emitted once complete", .enabled(if: VocabFiles.available))
    func emojiAcrossTokens() throws {
        let tok = try VocabFiles.tokenizer("qwen2")
        var split = 0
        for emoji in ["🦙", "🪿", "🫠", "🧌", "🥷🏿", "𝄞"] {
            let ids = tok.encode(emoji, addSpecial: false)
            guard ids.count > 1 else { continue }
            split += 1
            var dec = tok.makeIncrementalDecoder()
            let parts = ids.map { dec.append($0) }
            #expect(parts.joined() == emoji)
            #expect(parts[0].isEmpty, "\(emoji): first piece \(tok.piece(ids[0])) emitted early")
            #expect(dec.flush().isEmpty)
        }
        #expect(split >= 2)
    }

    @Test("Qwen2 special tokens, EOG set and BOS handling", .enabled(if: VocabFiles.available))
    func qwenSpecials() throws {
        let tok = try VocabFiles.tokenizer("qwen2")
        let imStart = try #require(tok.tokenId("<|im_start|>"))
        let imEnd = try #require(tok.tokenId("<|im_end|>"))
        let eot = try #require(tok.tokenId("<|endoftext|>"))
        #expect(imStart == 151644 && imEnd == 151645 && eot == 151643)
        let ids = tok.encode("<|im_start|>user\nHi<|im_end|>\n", addSpecial: true, parseSpecial: true)
        #expect(ids.first == imStart)
        #expect(ids.contains(imEnd))
        #expect(tok.decode(ids) == "<|im_start|>user\nHi<|im_end|>\n")
        #expect(tok.decode(ids, special: false) == "user\nHi\n")
        let plain = tok.encode("<|im_start|>", addSpecial: false, parseSpecial: false)
        #expect(!plain.contains(imStart) && plain.count > 1)
        #expect(tok.endOfGenerationTokens.isSuperset(of: [imEnd, eot]))
        #expect(!tok.isEndOfGeneration(imStart))
        #expect(tok.eot == imEnd)
        #expect(!tok.addBOS)
        #expect(tok.tokenString(imEnd) == "<|im_end|>")
        #expect(tok.tokenString(-1) == nil && tok.tokenString(Int32(tok.vocabularySize)) == nil)
    }

    @Test("Llama 3 adds BOS and knows its end tokens", .enabled(if: VocabFiles.available))
    func llama3() throws {
        let tok = try VocabFiles.tokenizer("llama-bpe")
        #expect(tok.addBOS && tok.bos == 128000)
        #expect(tok.encode("Hello", addSpecial: true).first == 128000)
        #expect(tok.encode("Hello", addSpecial: false) == [9906])
        let eotID = try #require(tok.tokenId("<|eot_id|>"))
        #expect(tok.isEndOfGeneration(eotID) && tok.isEndOfGeneration(128001))
    }

    @Test("Llama 2 SentencePiece adds BOS and parses control tokens", .enabled(if: VocabFiles.available))
    func llamaSPM() throws {
        let tok = try VocabFiles.tokenizer("llama-spm")
        #expect(tok.encode("Hello world", addSpecial: true) == [1, 15043, 3186])
        #expect(tok.encode("<s>Hello</s>", addSpecial: false, parseSpecial: true) == [1, 15043, 2])
        #expect(tok.decode([1, 15043, 3186], special: false) == " Hello world")
        #expect(tok.decode([15043, 3186]) == "Hello world")
    }

    @Test("out-of-range ids decode to nothing instead of trapping", .enabled(if: VocabFiles.available))
    func badIDs() throws {
        let tok = try VocabFiles.tokenizer("qwen2")
        #expect(tok.decode([-5, 9707, Int32.max]) == tok.decode([9707]))
        #expect(tok.piece(-1).isEmpty)
    }
}
