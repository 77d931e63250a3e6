/// Byte-level BPE (llama.cpp's `llm_tokenizer_bpe_session`).
///
/// llama.cpp works on byte-level text (each byte shown as a printable code point) and looks
/// strings up in maps. We work on raw bytes instead: every byte-level token and merge is
/// decoded back to the bytes it stands for and interned, so a symbol is an integer id and a
/// merge lookup is one hash probe on a pair of ids. Tokens whose text is not byte-level text
/// (added tokens containing a raw space or other unmapped characters) can never equal
/// byte-level text, so leaving them out changes no result.
struct BPEModel: Sendable {
    /// Interned byte strings: ids 0...255 are the single bytes, then merge sides and results.
    private let interned: ByteStringMap
    /// Vocabulary token for each interned string, or -1.
    private let internedToken: [Int32]
    /// (left id, right id) → rank << 32 | merged id.
    private let merges: PairTable
    /// Raw bytes → token id for every byte-level token (for ignore_merges lookups).
    let rawTokens: ByteStringMap
    /// Byte fallback: for GPT-2 byte-level text, the token of each ASCII byte's one-character
    /// string; for raw UTF-8 vocabularies (Gemma 4), the `<0xXX>` token of each byte.
    private let fallbackToken: [Int32]
    let ignoreMerges: Bool
    /// GPT-2 byte-level text (true) or raw UTF-8 with "▁" spaces (false, Gemma 4).
    let byteLevel: Bool

    /// Decodes a token or merge side into the bytes it matches in the input.
    private static func decode(_ u: UnsafeBufferPointer<UInt8>, byteLevel: Bool, into out: inout [UInt8]) -> Bool {
        if byteLevel { return ByteLevel.decode(u, into: &out) }
        out.append(contentsOf: u)
        return true
    }

    init(vocabulary v: TokenizerVocabulary) {
        let n = v.tokens.count
        let byteLevel = !v.escapeWhitespaces
        self.byteLevel = byteLevel
        var raw = ByteStringMap(capacity: n)
        var buf: [UInt8] = []
        for i in 0..<n {
            var text = v.tokens[i]
            text.withUTF8 { u in
                buf.removeAll(keepingCapacity: true)
                if Self.decode(u, byteLevel: byteLevel, into: &buf) {
                    raw.insert(buf, value: Int32(i), overwrite: true)  // token_to_id: last wins
                }
            }
        }
        rawTokens = raw

        var fallback = [Int32](repeating: -1, count: 256)
        let hex = Array("0123456789ABCDEF".utf8)
        for b in 0..<256 {
            if byteLevel {
                // llama.cpp looks up the one-byte string of each byte of the byte-level text.
                if b < 128, let t = raw.find([UInt8(b)]), ByteLevel.byteToScalar[b] == UInt32(b) { fallback[b] = t }
            } else if let t = raw.find([0x3C, 0x30, 0x78, hex[b >> 4], hex[b & 15], 0x3E]) {  // <0xXX>
                fallback[b] = t
            }
        }
        fallbackToken = fallback

        var strings = ByteStringMap(capacity: v.merges.count * 2 + 256)
        for b in 0..<256 { strings.insert([UInt8(b)], value: Int32(b), overwrite: false) }
        var table = PairTable(capacity: v.merges.count)
        var left: [UInt8] = [], right: [UInt8] = [], both: [UInt8] = []
        for (rank, merge) in v.merges.enumerated() {
            var m = merge
            m.withUTF8 { u in
                // Split at the first space after position 0, as llama.cpp (`find(' ', 1)`).
                guard u.count >= 2 else { return }
                var sp = 1
                while sp < u.count && u[sp] != 0x20 { sp += 1 }
                guard sp < u.count else { return }
                left.removeAll(keepingCapacity: true)
                right.removeAll(keepingCapacity: true)
                guard Self.decode(UnsafeBufferPointer(rebasing: u[..<sp]), byteLevel: byteLevel, into: &left),
                      Self.decode(UnsafeBufferPointer(rebasing: u[(sp + 1)...]), byteLevel: byteLevel, into: &right),
                      !left.isEmpty, !right.isEmpty else { return }
                both.removeAll(keepingCapacity: true)
                both.append(contentsOf: left)
                both.append(contentsOf: right)
                let li = strings.insert(left, value: Int32(strings.count), overwrite: false)
                let ri = strings.insert(right, value: Int32(strings.count), overwrite: false)
                let mi = strings.insert(both, value: Int32(strings.count), overwrite: false)
                table.insertIfAbsent(Int32(li), Int32(ri), UInt64(rank) << 32 | UInt64(mi))
            }
        }
        merges = table
        interned = strings

        var tok = [Int32](repeating: -1, count: strings.count)
        strings.pool.withUnsafeBufferPointer { pool in
            guard let base = pool.baseAddress else { return }
            for e in 0..<strings.count {
                let r = strings.keyRange(at: e)
                tok[e] = raw.find(base + r.lowerBound, count: r.count) ?? -1
            }
        }
        internedToken = tok
        ignoreMerges = v.ignoreMerges
    }

    /// Reusable buffers for one encode call.
    struct Workspace {
        var symStart: [Int32] = []
        var symLen: [Int32] = []
        var symID: [Int32] = []
        var symPrev: [Int32] = []
        var symNext: [Int32] = []
        var heap = BinaryHeap<Bigram>()
    }

    /// Encodes one pre-tokenized word (raw UTF-8 bytes), appending token ids.
    func encodeWord(_ w: UnsafeBufferPointer<UInt8>, _ ws: inout Workspace, _ out: inout [Int32]) {
        let n = w.count
        guard n > 0, let base = w.baseAddress else { return }
        if ignoreMerges, let t = rawTokens.find(base, count: n) {
            out.append(t)
            return
        }
        if n == 1 {
            emit(symbolID: Int32(w[0]), base, 1, &out)
            return
        }
        ws.symStart.removeAll(keepingCapacity: true)
        ws.symLen.removeAll(keepingCapacity: true)
        ws.symID.removeAll(keepingCapacity: true)
        ws.symPrev.removeAll(keepingCapacity: true)
        ws.symNext.removeAll(keepingCapacity: true)
        if byteLevel {
            // Each byte-level character stands for one input byte.
            for i in 0..<n {
                ws.symStart.append(Int32(i))
                ws.symLen.append(1)
                ws.symID.append(Int32(w[i]))
                ws.symPrev.append(Int32(i - 1))
                ws.symNext.append(i + 1 == n ? -1 : Int32(i + 1))
            }
        } else {
            // Gemma 4: a word made of newlines only is taken whole when it is a token.
            if !w.contains(where: { $0 != 0x0A }), let t = rawTokens.find(base, count: n) {
                out.append(t)
                return
            }
            var i = 0
            var k: Int32 = 0
            while i < n {
                let len = min(UTF8Util.sequenceLength(w[i]), n - i)
                ws.symStart.append(Int32(i))
                ws.symLen.append(Int32(len))
                ws.symID.append(len == 1 ? Int32(w[i]) : Int32(interned.index(of: base + i, count: len) ?? -1))
                ws.symPrev.append(k - 1)
                i += len
                ws.symNext.append(i == n ? -1 : k + 1)
                k += 1
            }
        }
        ws.heap.removeAll()
        for i in 1..<ws.symStart.count { addBigram(Int32(i - 1), Int32(i), &ws) }

        while let b = ws.heap.pop() {
            let l = Int(b.left), r = Int(b.right)
            let ll = ws.symLen[l], rl = ws.symLen[r]
            // Skip bigrams whose symbols changed since they were queued.
            if ll == 0 || rl == 0 || ll + rl != b.size { continue }
            ws.symLen[l] = ll + rl
            ws.symID[l] = b.merged
            ws.symLen[r] = 0
            let next = ws.symNext[r]
            ws.symNext[l] = next
            if next >= 0 { ws.symPrev[Int(next)] = b.left }
            addBigram(ws.symPrev[l], b.left, &ws)
            addBigram(b.left, next, &ws)
        }
        for i in 0..<ws.symStart.count where ws.symLen[i] > 0 {
            emit(symbolID: ws.symID[i], base + Int(ws.symStart[i]), Int(ws.symLen[i]), &out)
        }
    }

    @inline(__always)
    private func addBigram(_ left: Int32, _ right: Int32, _ ws: inout Workspace) {
        guard left >= 0, right >= 0 else { return }
        let l = Int(left), r = Int(right)
        guard ws.symID[l] >= 0, ws.symID[r] >= 0, let v = merges.find(ws.symID[l], ws.symID[r]) else { return }
        ws.heap.push(Bigram(rank: Int32(truncatingIfNeeded: v >> 32), left: left, right: right,
                            size: ws.symLen[l] + ws.symLen[r], merged: Int32(truncatingIfNeeded: v & 0xFFFF_FFFF)))
    }

    /// Appends the token for a final symbol, or llama.cpp's per-byte fallback when the symbol
    /// is not in the vocabulary.
    @inline(__always)
    private func emit(symbolID: Int32, _ p: UnsafePointer<UInt8>, _ len: Int, _ out: inout [Int32]) {
        let t = symbolID >= 0 ? internedToken[Int(symbolID)] : (rawTokens.find(p, count: len) ?? -1)
        if t >= 0 {
            out.append(t)
            return
        }
        for k in 0..<len {
            let f = fallbackToken[Int(p[k])]
            if f >= 0 { out.append(f) }
        }
    }
}

/// A candidate merge of two adjacent symbols.
struct Bigram {
    var rank: Int32
    var left: Int32
    var right: Int32
    var size: Int32
    var merged: Int32
}

/// Min-heap order on (rank, left): llama.cpp's `llm_bigram_bpe::comparator`.
extension Bigram: HeapOrdered {
    @inline(__always)
    static func comesBefore(_ a: Bigram, _ b: Bigram) -> Bool {
        a.rank < b.rank || (a.rank == b.rank && a.left < b.left)
    }
}
