/// Constrained decoding for JSON output (`response_format` json_object / json_schema): before
/// each sample, every token whose bytes cannot continue a document valid for the schema is
/// masked; end-of-generation is allowed only once the document is complete.
///
/// The vocabulary is walked in byte order (`TokenPieces.sorted`), so tokens sharing a prefix
/// share the matcher work and a refused first byte prunes all tokens that start with it.
public struct JSONConstraint: TokenConstraint {
    let pieces: TokenPieces
    private var matcher: JSONMatcher
    /// Text that must appear in the output before the JSON starts (`</think>` when the model
    /// reasons first, so reasoning stays free and apart); nil = JSON from the first token.
    private let activateAfter: [UInt8]?
    private var activated: Bool
    private var window: [UInt8] = []
    public var isActive: Bool { true }

    public init(schema: SchemaNode, pieces: TokenPieces, activateAfter: String? = nil) {
        self.pieces = pieces
        matcher = JSONMatcher(schema)
        self.activateAfter = activateAfter.map { Array($0.utf8) }
        activated = activateAfter == nil
    }

    /// Whether the JSON so far is a complete document.
    public var isComplete: Bool { activated && matcher.isComplete }

    public mutating func mask(_ logits: inout [Float]) {
        guard activated else { return }
        var allowed = [Bool](repeating: false, count: logits.count)
        let complete = matcher.isComplete
        for t in pieces.endOfGeneration where Int(t) < allowed.count { allowed[Int(t)] = complete }
        if matcher.inFreeString {
            // The common case (names, descriptions): plain tokens stay inside the string; only
            // tokens with a quote, backslash or control byte need the matcher.
            let plain = pieces.plainText, p = pieces.pieces
            for id in 0..<min(allowed.count, p.count) where !p[id].isEmpty {
                if plain[id] { allowed[id] = true; continue }
                var m = matcher
                allowed[id] = m.consume(p[id])
            }
        } else {
            visit(0, pieces.sorted.count, depth: 0, matcher, &allowed)
        }
        guard allowed.contains(true) else { return }  // a dead end cannot happen; never mask everything
        for i in logits.indices where !allowed[i] { logits[i] = -.infinity }
    }

    /// Tokens in sorted[lo..<hi] share their first `depth` bytes, which `m` has consumed.
    private func visit(_ lo: Int, _ hi: Int, depth: Int, _ m: JSONMatcher, _ allowed: inout [Bool]) {
        let ids = pieces.sorted, p = pieces.pieces
        var i = lo
        while i < hi && p[Int(ids[i])].count == depth {
            if Int(ids[i]) < allowed.count { allowed[Int(ids[i])] = true }
            i += 1
        }
        while i < hi {
            let byte = p[Int(ids[i])][depth]
            // The group of tokens with this byte at `depth`: binary search for its end.
            var a = i + 1, b = hi
            while a < b {
                let mid = (a + b) / 2
                if p[Int(ids[mid])][depth] == byte { a = mid + 1 } else { b = mid }
            }
            var next = m
            if next.consume(byte) { visit(i, a, depth: depth + 1, next, &allowed) }
            i = a
        }
    }

    public mutating func accept(_ token: Int32) {
        guard Int(token) < pieces.pieces.count else { return }
        let bytes = pieces.pieces[Int(token)]
        if activated {
            _ = matcher.consume(bytes)
            return
        }
        guard let marker = activateAfter else { return }
        window += bytes
        if let r = Self.find(marker, in: window) {
            activated = true
            _ = matcher.consume(window[r...])
            window = []
        } else if window.count > 4 * marker.count {
            window.removeFirst(window.count - marker.count)
        }
    }

    /// Index just past the first occurrence of `needle` in `hay`.
    static func find(_ needle: [UInt8], in hay: [UInt8]) -> Int? {
        guard needle.count <= hay.count else { return nil }
        for i in 0...(hay.count - needle.count) where hay[i..<(i + needle.count)].elementsEqual(needle) { return i + needle.count }
        return nil
    }
}
