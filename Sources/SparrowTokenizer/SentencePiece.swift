/// SentencePiece-style tokenization (llama.cpp's `llm_tokenizer_spm_session`): start from
/// UTF-8 characters, repeatedly merge the adjacent pair whose concatenation is the
/// vocabulary token with the highest score (leftmost on ties), then map every symbol to its
/// token, falling back to `<0xXX>` byte tokens for characters missing from the vocabulary.
struct SentencePieceModel: Sendable {
    /// Token text bytes → id (all tokens; the last of duplicate texts wins).
    let tokenIDs: ByteStringMap
    let scores: [Float]
    /// Token for each byte: `<0xXX>`, else the one-byte text, else nil.
    let byteTokens: [Int32?]
    let unknown: Int32?
    /// True when no token has "▁" right after another character: then no merge can cross
    /// the start of a run of "▁", and text can be cut there into independent segments
    /// (same result, much smaller work queues, and repeated words are cached).
    let splitsBeforeSpaces: Bool

    init(vocabulary v: TokenizerVocabulary, tokenIDs: ByteStringMap) {
        self.tokenIDs = tokenIDs
        var splittable = true
        for t in v.tokens where splittable {
            let u = Array(t.utf8)
            var i = 0
            var prevIsSpace = true  // the start of a token counts as a boundary
            while i < u.count {
                let isSpace = i + 2 < u.count && u[i] == 0xE2 && u[i + 1] == 0x96 && u[i + 2] == 0x81
                if isSpace && !prevIsSpace { splittable = false; break }
                prevIsSpace = isSpace
                i += isSpace ? 3 : 1
            }
        }
        splitsBeforeSpaces = splittable
        scores = v.scores
        unknown = v.unknown
        let hex = Array("0123456789ABCDEF".utf8)
        var bt = [Int32?](repeating: nil, count: 256)
        for b in 0..<256 {
            let name: [UInt8] = [0x3C, 0x30, 0x78, hex[b >> 4], hex[b & 15], 0x3E]  // <0xXX>
            bt[b] = tokenIDs.find(name) ?? tokenIDs.find([UInt8(b)])
        }
        byteTokens = bt
    }

    struct Workspace {
        var cache = ByteStringMap(capacity: 1024)
        var cacheTokens: [Int32] = []
        var cacheRanges: [Int32] = [0]
        var start: [Int32] = []
        var len: [Int32] = []
        var prev: [Int32] = []
        var next: [Int32] = []
        var heap = BinaryHeap<ScoredBigram>()
    }

    /// Tokenizes already escaped text (spaces replaced by U+2581), appending token ids.
    func encode(_ text: UnsafeBufferPointer<UInt8>, _ ws: inout Workspace, _ out: inout [Int32]) {
        guard let base = text.baseAddress, text.count > 0 else { return }
        guard splitsBeforeSpaces else {
            encodeSegment(text, &ws, &out)
            return
        }
        let n = text.count
        @inline(__always) func isSpace(_ i: Int) -> Bool { i + 2 < n && base[i] == 0xE2 && base[i + 1] == 0x96 && base[i + 2] == 0x81 }
        var segStart = 0
        var i = 0
        var prevIsSpace = false
        while i <= n {
            let space = i < n && isSpace(i)
            if i == n || (space && !prevIsSpace && i > segStart) {
                let len = i - segStart
                let p = base + segStart
                if let e = ws.cache.index(of: p, count: len) {
                    out.append(contentsOf: ws.cacheTokens[Int(ws.cacheRanges[e])..<Int(ws.cacheRanges[e + 1])])
                } else {
                    let before = out.count
                    encodeSegment(UnsafeBufferPointer(start: p, count: len), &ws, &out)
                    if len <= 64 && ws.cache.count < 1 << 20 {
                        ws.cache.insert(p, count: len, value: 0, overwrite: false)
                        ws.cacheTokens.append(contentsOf: out[before...])
                        ws.cacheRanges.append(Int32(ws.cacheTokens.count))
                    }
                }
                segStart = i
            }
            if i == n { break }
            prevIsSpace = space
            i += space ? 3 : 1
        }
    }

    /// The SentencePiece merge loop over one piece of text.
    private func encodeSegment(_ text: UnsafeBufferPointer<UInt8>, _ ws: inout Workspace, _ out: inout [Int32]) {
        guard let base = text.baseAddress, text.count > 0 else { return }
        let n = text.count
        ws.start.removeAll(keepingCapacity: true)
        ws.len.removeAll(keepingCapacity: true)
        ws.prev.removeAll(keepingCapacity: true)
        ws.next.removeAll(keepingCapacity: true)
        var offs = 0
        var index: Int32 = 0
        while offs < n {
            let l = min(UTF8Util.sequenceLength(text[offs]), n - offs)
            ws.start.append(Int32(offs))
            ws.len.append(Int32(l))
            ws.prev.append(index - 1)
            offs += l
            ws.next.append(offs == n ? -1 : index + 1)
            index += 1
        }
        ws.heap.removeAll()
        let count = ws.start.count
        if count > 1 {
            for i in 1..<count { tryAddBigram(Int32(i - 1), Int32(i), base, &ws) }
        }
        while let b = ws.heap.pop() {
            let l = Int(b.left), r = Int(b.right)
            let ll = ws.len[l], rl = ws.len[r]
            if ll == 0 || rl == 0 || ll + rl != b.size { continue }
            ws.len[l] = ll + rl
            ws.len[r] = 0
            let nx = ws.next[r]
            ws.next[l] = nx
            if nx >= 0 { ws.prev[Int(nx)] = b.left }
            tryAddBigram(ws.prev[l], b.left, base, &ws)
            tryAddBigram(b.left, nx, base, &ws)
        }
        var i: Int32 = 0
        while i != -1 {
            let s = Int(ws.start[Int(i)]), l = Int(ws.len[Int(i)])
            if let t = tokenIDs.find(base + s, count: l) {
                out.append(t)
            } else {
                // Every merged symbol is a token, so only single characters get here.
                for k in 0..<l {
                    if let t = byteTokens[Int(base[s + k])] {
                        out.append(t)
                    } else if let u = unknown {
                        out.append(u)  // llama.cpp would throw here; no vocabulary we know lacks byte tokens
                    }
                }
            }
            i = ws.next[Int(i)]
        }
    }

    @inline(__always)
    private func tryAddBigram(_ left: Int32, _ right: Int32, _ base: UnsafePointer<UInt8>, _ ws: inout Workspace) {
        guard left >= 0, right >= 0 else { return }
        let s = Int(ws.start[Int(left)])
        let size = ws.len[Int(left)] + ws.len[Int(right)]
        guard let t = tokenIDs.find(base + s, count: Int(size)), Int(t) < scores.count else { return }
        ws.heap.push(ScoredBigram(score: scores[Int(t)], left: left, right: right, size: size))
    }
}

struct ScoredBigram {
    var score: Float
    var left: Int32
    var right: Int32
    var size: Int32
}

/// Max-heap order on score, then min on left: llama.cpp's `llm_bigram_spm::comparator`.
extension ScoredBigram: HeapOrdered {
    @inline(__always)
    static func comesBefore(_ a: ScoredBigram, _ b: ScoredBigram) -> Bool {
        a.score > b.score || (a.score == b.score && a.left < b.left)
    }
}
