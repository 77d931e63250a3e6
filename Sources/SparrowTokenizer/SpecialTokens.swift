/// Splitting text around special tokens, as llama.cpp's `tokenizer_st_partition`.
///
/// llama.cpp takes the special tokens longest first and, for each, splits every remaining
/// text fragment at all of its occurrences (left to right). That is not always a leftmost
/// longest match ("xabc" with tokens "abc" and "xa" gives "x", "abc"), so we keep the same
/// order; a trie scan first finds which special tokens occur at all, so typical text costs
/// one pass.
struct SpecialTokenMatcher: Sendable {
    /// Control, user-defined and unknown tokens: longest text first (ties: lower id first).
    let ordered: [Int32]
    let texts: [[UInt8]]          // by position in `ordered`
    let lstrip: [Bool], rstrip: [Bool]
    let parseOnly: [Bool]         // control/unknown: only matched when parsing special tokens
    private let trie: ByteTrie

    init(vocabulary v: TokenizerVocabulary) {
        var ids: [Int32] = []
        for i in 0..<v.count where !v.attributes[i].isDisjoint(with: [.control, .userDefined, .unknown]) {
            ids.append(Int32(i))
        }
        let lengths = ids.map { v.tokens[Int($0)].utf8.count }
        let order = ids.indices.sorted { lengths[$0] > lengths[$1] || (lengths[$0] == lengths[$1] && ids[$0] < ids[$1]) }
        ordered = order.map { ids[$0] }
        texts = ordered.map { Array(v.tokens[Int($0)].utf8) }
        lstrip = ordered.map { v.attributes[Int($0)].contains(.lstrip) }
        rstrip = ordered.map { v.attributes[Int($0)].contains(.rstrip) }
        parseOnly = ordered.map { !v.attributes[Int($0)].isDisjoint(with: [.control, .unknown]) }
        var t = ByteTrie()
        for (k, text) in texts.enumerated() { t.insert(text, value: Int32(k)) }
        trie = t
    }

    /// A piece of the input: a byte range of raw text or a special token.
    enum Fragment: Equatable {
        case text(start: Int, end: Int)
        case token(Int32)
    }

    /// Partitions `bytes` into raw text and special tokens.
    func partition(_ bytes: UnsafeBufferPointer<UInt8>, parseSpecial: Bool) -> [Fragment] {
        let n = bytes.count
        guard n > 0 else { return [] }
        var fragments: [Fragment] = [.text(start: 0, end: n)]
        guard !ordered.isEmpty else { return fragments }

        // Which special tokens occur anywhere in the text.
        var present = [Bool](repeating: false, count: ordered.count)
        var any = false
        for i in 0..<n where trie.startsWithAnyKey(bytes[i]) {
            trie.forEachMatch(bytes, from: i) { k in
                if parseSpecial || !parseOnly[Int(k)] {
                    present[Int(k)] = true
                    any = true
                }
            }
        }
        guard any else { return fragments }

        for k in 0..<ordered.count where present[k] {
            let text = texts[k]
            var next: [Fragment] = []
            next.reserveCapacity(fragments.count + 4)
            for fragment in fragments {
                guard case .text(var base, let end) = fragment else {
                    next.append(fragment)
                    continue
                }
                while true {
                    guard let match = Self.find(text, in: bytes, from: base, to: end) else {
                        if base < end { next.append(.text(start: base, end: end)) }
                        break
                    }
                    if match > base {
                        var leftEnd = match
                        if lstrip[k] { while leftEnd > base && Self.isSpace(bytes[leftEnd - 1]) { leftEnd -= 1 } }
                        if leftEnd > base { next.append(.text(start: base, end: leftEnd)) }
                    }
                    next.append(.token(ordered[k]))
                    var rightStart = match + text.count
                    if rightStart < end {
                        if rstrip[k] { while rightStart < end && Self.isSpace(bytes[rightStart]) { rightStart += 1 } }
                        base = rightStart
                    } else {
                        break
                    }
                }
            }
            fragments = next
        }
        return fragments
    }

    /// C `isspace` in the C locale.
    @inline(__always)
    static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }

    /// First occurrence of `needle` entirely inside bytes[from..<to].
    private static func find(_ needle: [UInt8], in hay: UnsafeBufferPointer<UInt8>, from: Int, to: Int) -> Int? {
        let m = needle.count
        guard m > 0, to - from >= m else { return nil }
        let first = needle[0]
        var i = from
        let last = to - m
        while i <= last {
            if hay[i] == first {
                var j = 1
                while j < m && hay[i + j] == needle[j] { j += 1 }
                if j == m { return i }
            }
            i += 1
        }
        return nil
    }
}

/// A byte trie over the special token texts.
struct ByteTrie: Sendable {
    // Node i's children are kept in a sorted list of (byte, child) at childStart[i].
    private var edges: [[(UInt8, Int32)]] = [[]]
    private var value: [Int32] = [-1]
    private var firstByte = [Bool](repeating: false, count: 256)

    mutating func insert(_ key: [UInt8], value v: Int32) {
        guard let f = key.first else { return }
        firstByte[Int(f)] = true
        var node = 0
        for b in key {
            if let e = edges[node].first(where: { $0.0 == b }) {
                node = Int(e.1)
            } else {
                let child = Int32(edges.count)
                edges.append([])
                value.append(-1)
                edges[node].append((b, child))
                node = Int(child)
            }
        }
        if value[node] < 0 { value[node] = v }
    }

    @inline(__always)
    func startsWithAnyKey(_ b: UInt8) -> Bool { firstByte[Int(b)] }

    /// Calls `body` with the value of every key that starts at `from`.
    func forEachMatch(_ bytes: UnsafeBufferPointer<UInt8>, from: Int, _ body: (Int32) -> Void) {
        var node = 0
        var i = from
        while i < bytes.count {
            guard let e = edges[node].first(where: { $0.0 == bytes[i] }) else { return }
            node = Int(e.1)
            if value[node] >= 0 { body(value[node]) }
            i += 1
        }
    }
}
