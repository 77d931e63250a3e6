import SparrowTokenizer

/// Restricts which tokens may come next. The scheduler asks it before every sample of its
/// sequence (`mask`), then tells it the token chosen (`accept`). One instance per sequence;
/// a job carries a factory (`GenerationJob.constraint`) so `n` choices each get their own.
public protocol TokenConstraint {
    /// False once the constraint no longer restricts anything (the scheduler stops asking).
    var isActive: Bool { get }
    /// Sets the logits of tokens that may not come next to -infinity. logits: [vocab] f32
    mutating func mask(_ logits: inout [Float])
    /// Records the token that was sampled.
    mutating func accept(_ token: Int32)
}

/// The bytes each token decodes to, computed once per tokenizer for constraints to match against.
public final class TokenPieces: Sendable {
    /// pieces[id]: the token's bytes (empty for control tokens such as end-of-generation).
    public let pieces: [[UInt8]]
    /// Ids of the tokens with bytes, sorted by their bytes: tokens sharing a prefix are
    /// contiguous, so a constraint can walk the vocabulary like a trie.
    public let sorted: [Int32]
    /// End-of-generation tokens (allowed by a grammar only once its document is complete).
    public let endOfGeneration: Set<Int32>
    /// plainText[id]: the token can sit anywhere inside a JSON string as is (no quote,
    /// backslash or control byte), so a grammar inside a string need not simulate it.
    public let plainText: [Bool]

    public init(tokenizer: Tokenizer) {
        let p: [[UInt8]] = (0..<tokenizer.vocabularySize).map { id in
            let t = Int32(id)
            if let a = tokenizer.attributes(t), a.contains(.control) { return [] }
            return tokenizer.piece(t, special: false)
        }
        pieces = p
        sorted = (0..<p.count).filter { !p[$0].isEmpty }.map { Int32($0) }.sorted { p[Int($0)].lexicographicallyPrecedes(p[Int($1)]) }
        endOfGeneration = tokenizer.endOfGenerationTokens
        plainText = p.map { bytes in !bytes.isEmpty && bytes.allSatisfy { $0 >= 0x20 && $0 != 0x22 && $0 != 0x5C } }
    }
}

/// The next bytes must spell one of `options` (e.g. a tool name and its closing quote); after
/// that, anything goes. Tokens that would leave every option are masked, including
/// end-of-generation, so the model cannot stop or stray in the middle.
public struct ChoiceConstraint: TokenConstraint {
    let pieces: TokenPieces
    let options: [[UInt8]]
    /// Bytes generated since the constraint began.
    private var written: [UInt8] = []
    public private(set) var isActive = true

    public init(options: [String], pieces: TokenPieces) {
        self.options = options.map { Array($0.utf8) }.filter { !$0.isEmpty }
        self.pieces = pieces
        isActive = !self.options.isEmpty
    }

    /// Whether `written + piece` is still on the way to (or past the end of) some option.
    func allows(_ piece: [UInt8]) -> Bool {
        guard !piece.isEmpty else { return false }
        let candidate = written + piece
        return options.contains { o in
            candidate.count <= o.count ? o.starts(with: candidate) : candidate.starts(with: o)
        }
    }

    public mutating func mask(_ logits: inout [Float]) {
        guard isActive else { return }
        let allowed = logits.indices.map { $0 < pieces.pieces.count && allows(pieces.pieces[$0]) }
        // Unreachable with a vocabulary that has every byte; never leave nothing to sample.
        guard allowed.contains(true) else { isActive = false; return }
        for id in logits.indices where !allowed[id] { logits[id] = -.infinity }
    }

    public mutating func accept(_ token: Int32) {
        guard isActive, Int(token) < pieces.pieces.count else { return }
        written += pieces.pieces[Int(token)]
        if options.contains(where: { written.starts(with: $0) }) { isActive = false }
    }
}
