import Testing
import SparrowFormats
@testable import SparrowTokenizer

/// Behaviour on tiny hand-made vocabularies (no downloads needed).
@Suite("Toy vocabularies")
struct ToyVocabularyTests {
    // SentencePiece toy ids: <unk> 0, <s> 1, </s> 2, <0xXX> 3 + XX, then the pieces.
    static let spmPieces: [(String, Float)] = [("▁", -1), ("a", -2), ("b", -2), ("c", -2), ("ab", -1.5),
                                               ("▁a", -1), ("▁ab", -0.5), ("abc", -0.2)]
    static let spaceID: Int32 = 259, cID: Int32 = 262, spaceAbID: Int32 = 265

    static func byteToken(_ b: UInt8) -> Int32 { 3 + Int32(b) }

    @Test("SentencePiece merges the best-scoring pairs and adds BOS")
    func sentencePieceMerges() throws {
        let tok = try Tokenizer(gguf: ToyGGUF.sentencePiece(pieces: Self.spmPieces).load())
        #expect(tok.addBOS)
        #expect(tok.bos == 1 && tok.eos == 2)
        #expect(tok.encode("ab c", addSpecial: true) == [1, Self.spaceAbID, Self.spaceID, Self.cID])
        #expect(tok.encode("ab c", addSpecial: false) == [Self.spaceAbID, Self.spaceID, Self.cID])
    }

    @Test("SentencePiece falls back to byte tokens and decodes them")
    func sentencePieceByteFallback() throws {
        let tok = try Tokenizer(gguf: ToyGGUF.sentencePiece(pieces: Self.spmPieces).load())
        let ids = tok.encode("é", addSpecial: false)
        #expect(ids == [Self.spaceID, Self.byteToken(0xC3), Self.byteToken(0xA9)])
        #expect(tok.decode(ids) == "é")
        #expect(tok.piece(Self.byteToken(0xC3)) == [0xC3])
    }

    @Test("SentencePiece decoding drops only the first leading space, as llama.cpp")
    func sentencePieceLeadingSpace() throws {
        let tok = try Tokenizer(gguf: ToyGGUF.sentencePiece(pieces: Self.spmPieces).load())
        #expect(tok.decode([Self.spaceAbID, Self.spaceID, Self.cID]) == "ab c")
        // llama_detokenize keeps the space after a BOS (hidden or not).
        #expect(tok.decode([1, Self.spaceAbID], special: false) == " ab")
        #expect(tok.decode([1, Self.spaceAbID], special: true) == "<s> ab")
    }

    @Test("special tokens are split out longest first, not leftmost (llama.cpp order)")
    func specialPartitionOrder() throws {
        let tok = try Tokenizer(gguf: ToyGGUF.sentencePiece(pieces: Self.spmPieces, userDefined: ["abc", "xa"]).load())
        let abc = try #require(tok.tokenId("abc"))
        let xa = try #require(tok.tokenId("xa"))
        #expect(tok.attributes(abc) == .userDefined)
        // "abc" (longer) is matched first, so "xa" never matches in "xabc".
        #expect(tok.encode("xabc", addSpecial: false) == [Self.spaceID, Self.byteToken(0x78), abc])
        // User-defined tokens are matched even without parseSpecial.
        #expect(tok.encode("xa", addSpecial: false, parseSpecial: false) == [xa])
    }

    @Test("control tokens are only parsed with parseSpecial")
    func controlTokens() throws {
        let tok = try Tokenizer(gguf: ToyGGUF.sentencePiece(pieces: Self.spmPieces).load())
        let parsed = tok.encode("<s>ab</s>", addSpecial: false, parseSpecial: true)
        #expect(parsed == [1, Self.spaceAbID, 2])
        let plain = tok.encode("<s>ab</s>", addSpecial: false, parseSpecial: false)
        #expect(!plain.contains(1) && !plain.contains(2))
        #expect(tok.isEndOfGeneration(2))
        #expect(tok.piece(2, special: false).isEmpty)
        #expect(tok.piece(2, special: true) == Array("</s>".utf8))
    }

    // Byte-level BPE toy: token i < 256 is byte i; then "ab" 256, "abc" 257, "Ġa" 258, "Ġab" 259.
    static let merges = ["a b", "ab c", "Ġ a", "Ġa b"]

    @Test("BPE applies merges by rank, leftmost first")
    func bpeRanks() throws {
        let tok = try Tokenizer(gguf: ToyGGUF.bytePairEncoding(merges: Self.merges).load())
        // " ab": (a,b) has rank 0 and wins over (Ġ,a); "Ġ ab" is not a merge.
        #expect(tok.encode("abc ab", addSpecial: false) == [257, 32, 256])
        #expect(tok.decode([257, 32, 256]) == "abc ab")
        #expect(tok.encode("aab", addSpecial: false) == [97, 256])
    }

    @Test("BPE defaults: BOS/EOS id 11 when the metadata has none, no BOS added")
    func bpeDefaults() throws {
        let tok = try Tokenizer(gguf: ToyGGUF.bytePairEncoding(merges: Self.merges).load())
        #expect(tok.bos == 11 && tok.eos == 11)
        #expect(!tok.addBOS)
        #expect(tok.encode("ab", addSpecial: true) == [256])
    }

    @Test("incremental decoding holds back split UTF-8 and matches full decoding")
    func incrementalEmoji() throws {
        let tok = try Tokenizer(gguf: ToyGGUF.bytePairEncoding(merges: Self.merges).load())
        let ids = tok.encode("a🦙b", addSpecial: false)
        #expect(ids == [97, 0xF0, 0x9F, 0xA6, 0x99, 98])
        var dec = tok.makeIncrementalDecoder()
        let parts = ids.map { dec.append($0) }
        #expect(parts == ["a", "", "", "", "🦙", "b"])
        #expect(dec.flush() == "")
        // A dangling partial character is flushed as U+FFFD, like full decoding.
        var dec2 = tok.makeIncrementalDecoder()
        #expect(dec2.append(0xF0) == "")
        #expect(dec2.flush() == "\u{FFFD}")
        #expect(tok.decode([0xF0]) == "\u{FFFD}")
    }

    @Test("unsupported or broken metadata gives typed errors")
    func errors() throws {
        var g = ToyGGUF.bytePairEncoding(merges: Self.merges)
        g.remove("tokenizer.ggml.model")
        #expect(throws: TokenizerError.missingKey("tokenizer.ggml.model", expected: "a string")) { try Tokenizer(gguf: g.load()) }

        g = ToyGGUF.bytePairEncoding(merges: Self.merges)
        g.set("tokenizer.ggml.model", .string("rwkv"))
        #expect(throws: TokenizerError.unsupportedModel("rwkv")) { try Tokenizer(gguf: g.load()) }

        g = ToyGGUF.bytePairEncoding(merges: Self.merges, pre: "no-such-pre")
        #expect(throws: TokenizerError.unsupportedPreTokenizer("no-such-pre")) { try Tokenizer(gguf: g.load()) }

        g = ToyGGUF.bytePairEncoding(merges: Self.merges)
        g.remove("tokenizer.ggml.merges")
        #expect(throws: TokenizerError.missingKey("tokenizer.ggml.merges", expected: "an array of strings")) { try Tokenizer(gguf: g.load()) }

        g = ToyGGUF.sentencePiece(pieces: Self.spmPieces)
        g.set("tokenizer.ggml.scores", .floats([1, 2, 3]))
        #expect(throws: TokenizerError.self) { try Tokenizer(gguf: g.load()) }

        #expect(throws: TokenizerError.self) { try Tokenizer(path: "/nonexistent/model.gguf") }
    }

    @Test("special token ids from metadata override defaults; out-of-range ids are ignored")
    func specialIDs() throws {
        var g = ToyGGUF.sentencePiece(pieces: Self.spmPieces)
        g.set("tokenizer.ggml.eos_token_id", .u32(260))
        g.set("tokenizer.ggml.bos_token_id", .u32(99999))
        g.set("tokenizer.ggml.add_bos_token", .bool(false))
        g.set("tokenizer.ggml.add_eos_token", .bool(true))
        let tok = try Tokenizer(gguf: g.load())
        #expect(tok.bos == 1)
        #expect(tok.eos == 260)
        #expect(tok.endOfGenerationTokens.contains(260))
        #expect(tok.encode("c", addSpecial: true) == [Self.spaceID, Self.cID, 260])
    }
}

/// llama.cpp's clean_spaces passes, ported literally, to check the streaming version.
func referenceCleanSpaces(_ input: [UInt8]) -> [UInt8] {
    var text = input
    var total = text.count
    let total1 = total
    total = total > 0 ? 1 : 0
    var i = 1
    while i < total1 {
        let x = text[i]
        if text[i - 1] == 0x20 && (x == 0x3F || x == 0x21 || x == 0x2E || x == 0x2C) { total -= 1 }
        text[total] = x; total += 1
        i += 1
    }
    let total2 = total
    total = total > 0 ? 1 : 0
    i = 1
    while i < total2 {
        let x = text[i]
        if x == 0x27 && i + 1 < total2 && text[i - 1] == 0x20 && text[i + 1] == 0x20 {
            total -= 1
            i += 1
            text[i] = 0
        }
        text[total] = x; total += 1
        i += 1
    }
    let total3 = total
    total = total > 0 ? 1 : 0
    i = 1
    while i < total3 {
        let x = text[i]
        if text[i - 1] == 0x20 && x == 0x27 && i + 1 < total3 {
            let x1 = text[i + 1]
            if x1 == 0x74 || x1 == 0x64 {
            } else if x1 == 0x73 || x1 == 0x6D {
                total -= 1
            } else if i + 2 < total3 {
                let x2 = text[i + 2]
                if (x1 == 0x72 && x2 == 0x65) || (x1 == 0x76 && x2 == 0x65) { total -= 1 }
            }
        }
        text[total] = x; total += 1
        i += 1
    }
    return Array(text[0..<total])
}

@Suite("Space clean-up")
struct SpaceCleanerTests {
    @Test("streaming clean-up equals llama.cpp's whole-text passes for any chunking")
    func matchesReference() {
        let alphabet = Array(" ' ' smrvetdl?!.,a".utf8)
        var rng: UInt64 = 7
        func next(_ n: Int) -> Int {
            rng = rng &* 6364136223846793005 &+ 1442695040888963407
            return Int(truncatingIfNeeded: rng >> 33) % n
        }
        for _ in 0..<20000 {
            let len = next(12)
            let input = (0..<len).map { _ in alphabet[next(alphabet.count)] }
            var cleaner = SpaceCleaner()
            var out: [UInt8] = []
            var k = 0
            while k < input.count {
                let step = 1 + next(3)
                cleaner.push(Array(input[k..<min(input.count, k + step)]), into: &out)
                k += step
            }
            cleaner.finish(into: &out)
            let expected = referenceCleanSpaces(input)
            #expect(out == expected, "\(String(decoding: input, as: UTF8.self).debugDescription)")
            if out != expected { return }
        }
    }
}
