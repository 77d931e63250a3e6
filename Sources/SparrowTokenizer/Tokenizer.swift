import SparrowFormats

/// A tokenizer loaded from GGUF metadata that produces the same tokens as llama.cpp's
/// `llama_tokenize` and the same text as its `llama_detokenize` / `llama_token_to_piece`.
///
/// Supports `tokenizer.ggml.model` `llama` (SentencePiece) and `gpt2` (byte-level BPE)
/// with the pre-tokenizers llama.cpp defines for qwen2, qwen35, llama-bpe (Llama 3),
/// smollm, starcoder, gpt-2, falcon, deepseek, default and friends. Immutable and safe to
/// share between threads.
public final class Tokenizer: Sendable {
    /// The vocabulary and settings read from the GGUF metadata.
    public let vocabulary: TokenizerVocabulary

    private let tokenIDs: ByteStringMap
    private let bpe: BPEModel?
    private let spm: SentencePieceModel?
    private let preTokenizer: PreTokenizer
    private let specials: SpecialTokenMatcher
    private let piecePool: [UInt8]
    private let pieceOffsets: [Int32]
    private let hideWhenNotSpecial: [Bool]

    /// Builds the tokenizer from a GGUF file's metadata.
    public convenience init(gguf: GGUFFile) throws(TokenizerError) {
        self.init(vocabulary: try TokenizerVocabulary(gguf: gguf))
    }

    /// Opens a GGUF file and builds its tokenizer.
    public convenience init(path: String) throws(TokenizerError) {
        let file: GGUFFile
        do {
            file = try GGUFFile(path: path)
        } catch {
            throw .format(error)
        }
        try self.init(gguf: file)
    }

    /// Builds the tokenizer from an already parsed vocabulary.
    public init(vocabulary v: TokenizerVocabulary) {
        vocabulary = v
        var ids = ByteStringMap(capacity: v.count)
        for i in 0..<v.count {
            ids.insert(Array(v.tokens[i].utf8), value: Int32(i), overwrite: true)
        }
        tokenIDs = ids
        switch v.model {
        case .bytePairEncoding:
            bpe = BPEModel(vocabulary: v)
            spm = nil
        case .sentencePiece:
            bpe = nil
            spm = SentencePieceModel(vocabulary: v, tokenIDs: ids)
        }
        preTokenizer = PreTokenizer(rule: v.splitRule)
        specials = SpecialTokenMatcher(vocabulary: v)
        let pieces = buildPieces(v)
        piecePool = pieces.pool
        pieceOffsets = pieces.offsets
        hideWhenNotSpecial = v.attributes.map { !$0.isDisjoint(with: [.control, .unknown]) }
    }

    // MARK: vocabulary facts

    /// Number of tokens in the vocabulary.
    public var vocabularySize: Int { vocabulary.count }
    /// Beginning-of-sequence token, if the vocabulary has one.
    public var bos: Int32? { vocabulary.bos }
    /// End-of-sequence token.
    public var eos: Int32? { vocabulary.eos }
    /// End-of-turn token (from metadata, else detected by text such as "<|im_end|>").
    public var eot: Int32? { vocabulary.eot }
    /// End-of-message token ("<|eom_id|>").
    public var eom: Int32? { vocabulary.eom }
    /// Padding token.
    public var pad: Int32? { vocabulary.padding }
    /// Unknown-token id.
    public var unknown: Int32? { vocabulary.unknown }
    /// Whether `encode(_:addSpecial: true, ...)` prepends BOS.
    public var addBOS: Bool { vocabulary.addBOS }
    /// Whether `encode(_:addSpecial: true, ...)` appends EOS.
    public var addEOS: Bool { vocabulary.addEOS }
    /// Tokens that end generation (llama.cpp's `llama_vocab_is_eog`): EOS, EOT, EOM and
    /// tokens like "<|im_end|>", "<|endoftext|>", "<end_of_turn>", "<|fim_pad|>".
    public var endOfGenerationTokens: Set<Int32> { vocabulary.endOfGeneration }

    /// Whether `token` ends generation.
    public func isEndOfGeneration(_ token: Int32) -> Bool { vocabulary.endOfGeneration.contains(token) }

    /// The stored text of a token (byte-level or "▁"-escaped form), or nil if out of range.
    public func tokenString(_ id: Int32) -> String? {
        id >= 0 && Int(id) < vocabulary.count ? vocabulary.tokens[Int(id)] : nil
    }

    /// The token whose stored text is exactly `text` (byte for byte), e.g. "<|im_start|>".
    public func tokenId(_ text: String) -> Int32? {
        tokenIDs.find(Array(text.utf8))
    }

    /// Attributes of a token (control, user-defined, byte...), or nil if out of range.
    public func attributes(_ id: Int32) -> TokenAttributes? {
        id >= 0 && Int(id) < vocabulary.count ? vocabulary.attributes[Int(id)] : nil
    }

    // MARK: encoding

    /// Tokenizes `text` as llama.cpp's `llama_tokenize(vocab, text, add_special, parse_special)`.
    /// - Parameters:
    ///   - addSpecial: add BOS/EOS as the vocabulary asks (`addBOS`, `addEOS`).
    ///   - parseSpecial: match control tokens such as "<|im_start|>" in the text; when false
    ///     they are tokenized as plain text (user-defined tokens are always matched).
    public func encode(_ text: String, addSpecial: Bool = true, parseSpecial: Bool = false) -> [Int32] {
        var bytes = Array(text.utf8)
        return bytes.withUnsafeMutableBufferPointer { buf in
            encode(bytes: UnsafeBufferPointer(buf), addSpecial: addSpecial, parseSpecial: parseSpecial)
        }
    }

    private func encode(bytes: UnsafeBufferPointer<UInt8>, addSpecial: Bool, parseSpecial: Bool) -> [Int32] {
        var out: [Int32] = []
        out.reserveCapacity(bytes.count / 3 + 4)
        let fragments = specials.partition(bytes, parseSpecial: parseSpecial)
        let v = vocabulary

        if addSpecial && v.addBOS, let b = v.bos { out.append(b) }
        switch v.model {
        case .sentencePiece:
            guard let spm else { break }
            var ws = SentencePieceModel.Workspace()
            var isPrevSpecial = true
            var escaped: [UInt8] = []
            for fragment in fragments {
                switch fragment {
                case let .token(t):
                    out.append(t)
                    isPrevSpecial = true
                case let .text(start, end):
                    escaped.removeAll(keepingCapacity: true)
                    if v.addSpacePrefix && isPrevSpecial { escaped.append(contentsOf: [0xE2, 0x96, 0x81]) }
                    for i in start..<end {
                        if bytes[i] == 0x20 { escaped.append(contentsOf: [0xE2, 0x96, 0x81]) } else { escaped.append(bytes[i]) }
                    }
                    escaped.withUnsafeBufferPointer { spm.encode($0, &ws, &out) }
                    isPrevSpecial = false
                }
            }
        case .bytePairEncoding:
            guard let bpe else { break }
            var state = BPEState()
            for fragment in fragments {
                switch fragment {
                case let .token(t):
                    out.append(t)
                case let .text(start, end):
                    if v.escapeWhitespaces {
                        state.escaped.removeAll(keepingCapacity: true)
                        for i in start..<end {
                            if bytes[i] == 0x20 { state.escaped.append(contentsOf: [0xE2, 0x96, 0x81]) } else { state.escaped.append(bytes[i]) }
                        }
                        let escaped = state.escaped
                        escaped.withUnsafeBufferPointer { encodeBPE(bpe, $0, base: 0, &state, &out) }
                    } else {
                        encodeBPE(bpe, UnsafeBufferPointer(rebasing: bytes[start..<end]), base: start, &state, &out)
                    }
                }
            }
        }
        if addSpecial && v.addEOS, let e = v.eos { out.append(e) }
        return out
    }

    /// Buffers reused across the fragments of one encode call, including a per-call cache
    /// of word → tokens.
    private struct BPEState {
        var cpts: [UInt32] = []
        var offsets: [Int32] = []
        var flags: [UInt16] = []
        var lengths: [Int] = []
        var scratch: [Int] = []
        var workspace = BPEModel.Workspace()
        var cache = ByteStringMap(capacity: 1024)
        var cacheTokens: [Int32] = []
        var cacheRanges: [Int32] = [0]
        var escaped: [UInt8] = []
    }

    private func encodeBPE(_ bpe: BPEModel, _ text: UnsafeBufferPointer<UInt8>, base: Int, _ s: inout BPEState, _ out: inout [Int32]) {
        UTF8Util.decode(text, cpts: &s.cpts, offsets: &s.offsets, base: 0)
        s.flags.removeAll(keepingCapacity: true)
        CodepointFlags.table.withUnsafeBufferPointer { table in
            for cp in s.cpts { s.flags.append(cp < 0x110000 ? table[Int(cp)] : CodepointFlags.undefined) }
        }
        preTokenizer.split(s.cpts, s.flags, into: &s.lengths, scratch: &s.scratch)
        guard let p = text.baseAddress else { return }
        var cp = 0
        for len in s.lengths {
            let from = Int(s.offsets[cp]), to = Int(s.offsets[cp + len])
            cp += len
            let word = p + from
            let n = to - from
            if let e = s.cache.index(of: word, count: n) {
                let r0 = Int(s.cacheRanges[e]), r1 = Int(s.cacheRanges[e + 1])
                out.append(contentsOf: s.cacheTokens[r0..<r1])
                continue
            }
            let before = out.count
            bpe.encodeWord(UnsafeBufferPointer(start: word, count: n), &s.workspace, &out)
            if n <= 64 && s.cache.count < 1 << 20 {
                s.cache.insert(word, count: n, value: 0, overwrite: false)
                s.cacheTokens.append(contentsOf: out[before...])
                s.cacheRanges.append(Int32(s.cacheTokens.count))
            }
        }
    }

    // MARK: decoding

    /// The bytes a token renders to, as llama.cpp's `llama_token_to_piece(..., lstrip: 0, special)`.
    /// Control and unknown tokens render as empty unless `special`. Out-of-range ids render
    /// as empty.
    public func piece(_ token: Int32, special: Bool = true) -> [UInt8] {
        piece(token, special: special, stripLeadingSpace: false)
    }

    func piece(_ token: Int32, special: Bool, stripLeadingSpace: Bool) -> [UInt8] {
        guard token >= 0, Int(token) < vocabulary.count else { return [] }
        let i = Int(token)
        if !special && hideWhenNotSpecial[i] { return [] }
        var s = Int(pieceOffsets[i])
        let e = Int(pieceOffsets[i + 1])
        if stripLeadingSpace && s < e && piecePool[s] == 0x20 { s += 1 }
        return Array(piecePool[s..<e])
    }

    /// Detokenized bytes, as llama.cpp's `llama_detokenize(..., remove_special: false, unparse_special: special)`:
    /// SentencePiece vocabularies drop the first token's leading space, BPE vocabularies with
    /// `cleanSpaces` tidy spaces before punctuation and contractions.
    public func decodeBytes(_ tokens: [Int32], special: Bool = true) -> [UInt8] {
        var raw: [UInt8] = []
        raw.reserveCapacity(tokens.count * 4)
        var removeSpace = vocabulary.addSpacePrefix
        for t in tokens {
            raw.append(contentsOf: piece(t, special: special, stripLeadingSpace: removeSpace))
            removeSpace = false
        }
        guard vocabulary.cleanSpaces else { return raw }
        var cleaner = SpaceCleaner()
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        cleaner.push(raw, into: &out)
        cleaner.finish(into: &out)
        return out
    }

    /// Detokenized text (see `decodeBytes`); invalid UTF-8 becomes U+FFFD.
    public func decode(_ tokens: [Int32], special: Bool = true) -> String {
        String(decoding: decodeBytes(tokens, special: special), as: UTF8.self)
    }

    /// A streaming decoder whose output, concatenated, equals `decode`.
    public func makeIncrementalDecoder(special: Bool = true) -> IncrementalDecoder {
        IncrementalDecoder(tokenizer: self, special: special)
    }
}
