/// Token pieces and detokenization, as llama.cpp's `token_to_piece` and `detokenize`.

/// Builds the bytes each token renders to when special tokens are rendered (llama.cpp's
/// `cache_token_to_piece`).
func buildPieces(_ v: TokenizerVocabulary) -> (pool: [UInt8], offsets: [Int32]) {
    var pool: [UInt8] = []
    pool.reserveCapacity(v.count * 6)
    var offsets: [Int32] = [0]
    offsets.reserveCapacity(v.count + 1)
    let special: TokenAttributes = [.unknown, .control, .userDefined]
    for i in 0..<v.count {
        let attr = v.attributes[i]
        let text = v.tokens[i]
        if !attr.isDisjoint(with: special) {
            pool.append(contentsOf: text.utf8)
        } else if attr.contains(.normal) {
            switch v.model {
            case .sentencePiece:
                appendUnescapingSpaces(text, to: &pool)
            case .bytePairEncoding:
                if v.escapeWhitespaces {
                    appendUnescapingSpaces(text, to: &pool)
                } else {
                    appendByteLevelDecoded(text, to: &pool)
                }
            }
        } else if attr.contains(.byte) {
            pool.append(byteTokenValue(text))
        }
        offsets.append(Int32(pool.count))
    }
    return (pool, offsets)
}

/// U+2581 → space.
private func appendUnescapingSpaces(_ text: String, to out: inout [UInt8]) {
    let u = Array(text.utf8)
    var i = 0
    while i < u.count {
        if i + 2 < u.count, u[i] == 0xE2, u[i + 1] == 0x96, u[i + 2] == 0x81 {
            out.append(0x20)
            i += 3
        } else {
            out.append(u[i])
            i += 1
        }
    }
}

/// llama.cpp's `llama_decode_text`: byte-level characters back to bytes; a character outside
/// the mapping is written as "[UNK_BYTE_0x<hex>" + the whole token text + "]".
private func appendByteLevelDecoded(_ text: String, to out: inout [UInt8]) {
    for scalar in text.unicodeScalars {
        if let b = ByteLevel.byte(for: scalar.value) {
            out.append(b)
        } else {
            out.append(contentsOf: "[UNK_BYTE_0x".utf8)
            let hex = Array("0123456789abcdef".utf8)
            for c in String(scalar).utf8 {
                out.append(hex[Int(c >> 4)])
                out.append(hex[Int(c & 15)])
            }
            out.append(contentsOf: text.utf8)
            out.append(0x5D)
        }
    }
}

/// The byte of a `<0xXX>` token: `strtol` of the two characters after "<0x".
private func byteTokenValue(_ text: String) -> UInt8 {
    let u = Array(text.utf8)
    guard u.count > 3 else { return 0 }
    var v = 0
    for c in u[3..<min(5, u.count)] {
        let d: Int
        switch c {
        case 0x30...0x39: d = Int(c) - 0x30
        case 0x41...0x46: d = Int(c) - 0x41 + 10
        case 0x61...0x66: d = Int(c) - 0x61 + 10
        default: return UInt8(v)
        }
        v = v * 16 + d
    }
    return UInt8(v)
}

/// llama.cpp's `clean_spaces` post-processing as a streaming filter: its three passes over
/// the whole text (drop " " before ?!.,; " ' " → "'"; drop " " before 's 'm 're 've) each
/// only look a few bytes ahead, so each becomes a small state machine holding back at most
/// three bytes. Feeding bytes in any chunking gives the same output as the whole-text passes.
struct SpaceCleaner: Sendable {
    private var pass1Space = false
    private var pass2: [UInt8] = []   // held: "", " ", " '"
    private var pass3: [UInt8] = []   // held: "", " ", " '", " 'r" / " 've"-prefix

    mutating func push(_ bytes: [UInt8], into out: inout [UInt8]) {
        for b in bytes { push1(b, &out) }
    }

    /// Releases everything held (end of text).
    mutating func finish(into out: inout [UInt8]) {
        if pass1Space {
            pass1Space = false
            push2(0x20, &out)
        }
        let p2 = pass2
        pass2 = []
        for b in p2 { push3(b, &out) }
        out.append(contentsOf: pass3)
        pass3 = []
    }

    // Pass 1: a space followed by ? ! . , is removed.
    private mutating func push1(_ b: UInt8, _ out: inout [UInt8]) {
        if pass1Space {
            pass1Space = false
            if !(b == 0x3F || b == 0x21 || b == 0x2E || b == 0x2C) { push2(0x20, &out) }
        }
        if b == 0x20 { pass1Space = true } else { push2(b, &out) }
    }

    // Pass 2: " ' " becomes "'".
    private mutating func push2(_ b: UInt8, _ out: inout [UInt8]) {
        switch pass2.count {
        case 0:
            if b == 0x20 { pass2 = [0x20] } else { push3(b, &out) }
        case 1:  // " "
            if b == 0x27 {
                pass2 = [0x20, 0x27]
            } else if b == 0x20 {
                push3(0x20, &out)
            } else {
                pass2 = []
                push3(0x20, &out)
                push3(b, &out)
            }
        default:  // " '"
            pass2 = []
            if b == 0x20 {
                push3(0x27, &out)  // both spaces go; the byte after is never a trigger
            } else {
                push3(0x20, &out)
                push3(0x27, &out)
                push2(b, &out)
            }
        }
    }

    // Pass 3: " 's", " 'm", " 're", " 've" lose the space.
    private mutating func push3(_ b: UInt8, _ out: inout [UInt8]) {
        switch pass3.count {
        case 0:
            if b == 0x20 { pass3 = [0x20] } else { out.append(b) }
        case 1:  // " "
            if b == 0x27 {
                pass3.append(0x27)
            } else if b == 0x20 {
                out.append(0x20)
            } else {
                pass3 = []
                out.append(0x20)
                out.append(b)
            }
        case 2:  // " '"
            if b == 0x73 || b == 0x6D {  // s m
                pass3 = []
                out.append(0x27)
                out.append(b)
            } else if b == 0x72 || b == 0x76 {  // r v: need one more byte
                pass3.append(b)
            } else {
                pass3 = []
                out.append(0x20)
                out.append(0x27)
                push3(b, &out)
            }
        default:  // " 'r" or " 'v"
            let c = pass3[2]
            pass3 = []
            if b == 0x65 {  // e
                out.append(0x27)
                out.append(c)
                out.append(b)
            } else {
                out.append(0x20)
                out.append(0x27)
                out.append(c)
                push3(b, &out)
            }
        }
    }
}

/// Splits off the longest prefix of `bytes` that cannot change as more bytes arrive: a
/// trailing incomplete-but-valid UTF-8 sequence is held back.
func completeUTF8Prefix(_ bytes: [UInt8]) -> Int {
    let n = bytes.count
    var i = n - 1
    var back = 0
    // Find the start of the last sequence (at most 3 bytes back).
    while i >= 0 && back < 4 && bytes[i] & 0xC0 == 0x80 {
        i -= 1
        back += 1
    }
    guard i >= 0 else { return n }
    let lead = bytes[i]
    let need: Int
    switch lead {
    case 0xC2...0xDF: need = 2
    case 0xE0...0xEF: need = 3
    case 0xF0...0xF4: need = 4
    default: return n
    }
    let have = n - i
    if have >= need { return n }
    // Check that what we have is a valid prefix (Unicode Table 3-7), else it is an error
    // that no later byte can repair.
    if have >= 2 {
        let b1 = bytes[i + 1]
        let ok: Bool
        switch lead {
        case 0xE0: ok = (0xA0...0xBF).contains(b1)
        case 0xED: ok = (0x80...0x9F).contains(b1)
        case 0xF0: ok = (0x90...0xBF).contains(b1)
        case 0xF4: ok = (0x80...0x8F).contains(b1)
        default: ok = true
        }
        if !ok { return n }
    }
    return i
}

/// Streaming detokenizer: feed tokens one at a time and get text as soon as it is complete
/// UTF-8. The concatenation of everything `append` and `flush` return equals
/// `Tokenizer.decode` of all the tokens (same special-token rendering, SentencePiece
/// leading-space removal and space clean-up), so emoji split over several byte tokens are
/// never emitted half-way.
public struct IncrementalDecoder: Sendable {
    private let tokenizer: Tokenizer
    private let special: Bool
    private var first = true
    private var cleaner: SpaceCleaner?
    private var pending: [UInt8] = []

    /// - Parameter special: render control tokens such as "<|im_end|>" (as `decode`).
    public init(tokenizer: Tokenizer, special: Bool = true) {
        self.tokenizer = tokenizer
        self.special = special
        cleaner = tokenizer.vocabulary.cleanSpaces ? SpaceCleaner() : nil
    }

    /// Adds one token; returns the text that became complete (possibly empty).
    public mutating func append(_ token: Int32) -> String {
        let piece = tokenizer.piece(token, special: special, stripLeadingSpace: first && tokenizer.vocabulary.addSpacePrefix)
        first = false
        if cleaner != nil {
            cleaner?.push(piece, into: &pending)
        } else {
            pending.append(contentsOf: piece)
        }
        let cut = completeUTF8Prefix(pending)
        guard cut > 0 else { return "" }
        let text = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// Returns whatever is held back (an incomplete UTF-8 tail becomes U+FFFD) and resets
    /// the decoder for a new text.
    public mutating func flush() -> String {
        cleaner?.finish(into: &pending)
        let text = String(decoding: pending, as: UTF8.self)
        pending = []
        first = true
        if cleaner != nil { cleaner = SpaceCleaner() }
        return text
    }
}
