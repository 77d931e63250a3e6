/// Pre-tokenization for byte-level BPE: splits text into words as llama.cpp's
/// `unicode_regex_split` does for each `tokenizer.ggml.pre`. The four common regexes have
/// hand-written scanners that port llama.cpp's custom implementations line by line (their
/// quirks included); the rarer regexes are emulated by small matchers with the leftmost,
/// first-alternative semantics of the `std::regex` that llama.cpp runs them with.
///
/// Code points are classified with llama.cpp's own tables (`CodepointFlags`): `\s` is the
/// whitespace flag, `\p{L}` / `\p{N}` / `\p{P}` / `\p{M}` the category flags.
struct PreTokenizer: Sendable {
    let rule: SplitRule

    private enum Stage {
        case gpt2, llama3, qwen2, qwen35
        case regex(Matcher)
    }

    /// One regex, as a function returning where a match starting at `i` ends (or -1).
    /// `end` is the end of the chunk the regex runs over.
    private typealias Matcher = @Sendable (_ c: UnsafeBufferPointer<UInt32>, _ f: UnsafeBufferPointer<UInt16>, _ i: Int, _ end: Int) -> Int

    private var stages: [Stage] {
        switch rule {
        case .gpt2: return [.gpt2]
        case .llama3: return [.llama3]
        case .qwen2: return [.qwen2]
        case .qwen35: return [.qwen35]
        case .digitsThenGPT2: return [.regex(Self.digit), .gpt2]
        case .falcon: return [.regex(Self.punctRunFalcon), .gpt2, .regex(Self.threeASCIIDigits)]
        case .default: return [.regex(Self.punctRunDefault), .gpt2, .regex(Self.digitRun), .regex(Self.threeASCIIDigits)]
        case .deepseekCoder:
            return [.regex(Self.crOrLf), .regex(Self.spaceThenLetters), .regex(Self.spaceThenPunct), .regex(Self.cjkRun), .regex(Self.digit)]
        case .deepseekLLM:
            return [.regex(Self.crOrLf), .regex(Self.spaceThenDeepseekLetters), .regex(Self.spaceThenDeepseekPunct),
                    .regex(Self.trailingSpaces), .regex(Self.cjkRun), .regex(Self.digitRun)]
        case .bloom: return [.regex(Self.bloomWord)]
        case .viking: return [.regex(Self.bloomWord), .regex(Self.digit)]
        case .newlines: return [.regex(Self.newlineRun)]
        }
    }

    /// Splits `cpts` (with their `flags`) into words; `lengths` receives each word's length
    /// in code points, in order.
    func split(_ cpts: [UInt32], _ flags: [UInt16], into lengths: inout [Int], scratch: inout [Int]) {
        lengths.removeAll(keepingCapacity: true)
        guard !cpts.isEmpty else { return }
        lengths.append(cpts.count)
        cpts.withUnsafeBufferPointer { c in
            flags.withUnsafeBufferPointer { f in
                for stage in stages {
                    swap(&lengths, &scratch)
                    lengths.removeAll(keepingCapacity: true)
                    var start = 0
                    for len in scratch {
                        let end = start + len
                        switch stage {
                        case .gpt2: Self.splitGPT2(c, f, start, end, &lengths)
                        case .llama3: Self.splitLlama3(c, f, start, end, digitsPerWord: 3, &lengths)
                        case .qwen2: Self.splitLlama3(c, f, start, end, digitsPerWord: 1, &lengths)
                        case .qwen35: Self.splitQwen35(c, f, start, end, &lengths)
                        case let .regex(m): Self.splitRegex(c, f, start, end, m, &lengths)
                        }
                        start = end
                    }
                }
            }
        }
    }

    // MARK: custom scanners (llama.cpp unicode.cpp)

    private static let outOfRange: UInt32 = 0xFFFF_FFFF
    private static let apostrophe: UInt32 = 0x27, space: UInt32 = 0x20, cr: UInt32 = 0x0D, lf: UInt32 = 0x0A

    @inline(__always)
    private static func isContractionTail1(_ c: UInt32) -> Bool {
        c == 0x73 || c == 0x74 || c == 0x6D || c == 0x64  // s t m d
    }

    @inline(__always)
    private static func isContractionTail2(_ a: UInt32, _ b: UInt32) -> Bool {
        (a == 0x72 && b == 0x65) || (a == 0x76 && b == 0x65) || (a == 0x6C && b == 0x6C)  // re ve ll
    }

    /// ASCII lowercasing; llama.cpp's table maps no other code point onto the letters the
    /// contraction rules test (checked by scripts/gen_unicode_tables.py).
    @inline(__always)
    private static func lower(_ c: UInt32) -> UInt32 {
        (c >= 0x41 && c <= 0x5A) ? c + 32 : c
    }

    /// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
    private static func splitGPT2(_ c: UnsafeBufferPointer<UInt32>, _ f: UnsafeBufferPointer<UInt16>, _ ini: Int, _ end: Int, _ out: inout [Int]) {
        @inline(__always) func cpt(_ p: Int) -> UInt32 { p >= ini && p < end ? c[p] : outOfRange }
        @inline(__always) func fl(_ p: Int) -> UInt16 { p >= ini && p < end ? f[p] : 0 }
        let L = CodepointFlags.letter, N = CodepointFlags.number, W = CodepointFlags.whitespace
        var prevEnd = ini
        @inline(__always) func add(_ e: Int) -> Int {
            let len = e - prevEnd
            if len > 0 { out.append(len) }
            prevEnd = e
            return len
        }
        var pos = ini
        while pos < end {
            let cp = c[pos]
            let flags = f[pos]
            if cp == apostrophe && pos + 1 < end {
                let next = c[pos + 1]
                if isContractionTail1(next) { pos += add(pos + 2); continue }
                if pos + 2 < end, isContractionTail2(next, c[pos + 2]) { pos += add(pos + 3); continue }
            }
            let isSpace = cp == space
            let flags2 = isSpace ? fl(pos + 1) : flags
            if flags2 & L != 0 {
                pos += isSpace ? 1 : 0
                while fl(pos) & L != 0 { pos += 1 }
                _ = add(pos); continue
            }
            if flags2 & N != 0 {
                pos += isSpace ? 1 : 0
                while fl(pos) & N != 0 { pos += 1 }
                _ = add(pos); continue
            }
            if flags2 & (W | L | N) == 0 && flags2 != 0 {
                pos += isSpace ? 1 : 0
                while true {
                    let g = fl(pos)
                    if g & (W | L | N) == 0 && g != 0 { pos += 1 } else { break }
                }
                _ = add(pos); continue
            }
            var numWS = 0
            while fl(pos + numWS) & W != 0 { numWS += 1 }
            if numWS > 1 && cpt(pos + numWS) != outOfRange {
                pos += numWS - 1
                _ = add(pos); continue
            }
            if numWS > 0 {
                pos += numWS
                _ = add(pos); continue
            }
            pos += 1
            _ = add(pos)
        }
    }

    /// Llama 3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    /// Qwen2: the same with \p{N} (one digit per word): `digitsPerWord` 1.
    private static func splitLlama3(_ c: UnsafeBufferPointer<UInt32>, _ f: UnsafeBufferPointer<UInt16>, _ ini: Int, _ end: Int,
                                    digitsPerWord: Int, _ out: inout [Int]) {
        @inline(__always) func cpt(_ p: Int) -> UInt32 { p >= ini && p < end ? c[p] : outOfRange }
        @inline(__always) func fl(_ p: Int) -> UInt16 { p >= ini && p < end ? f[p] : 0 }
        let L = CodepointFlags.letter, N = CodepointFlags.number, W = CodepointFlags.whitespace
        var prevEnd = ini
        @inline(__always) func add(_ e: Int) -> Int {
            let len = e - prevEnd
            if len > 0 { out.append(len) }
            prevEnd = e
            return len
        }
        var pos = ini
        while pos < end {
            let cp = c[pos]
            let flags = f[pos]
            if cp == apostrophe && pos + 1 < end {
                let next = lower(c[pos + 1])
                if isContractionTail1(next) { pos += add(pos + 2); continue }
                if pos + 2 < end, isContractionTail2(next, lower(c[pos + 2])) { pos += add(pos + 3); continue }
            }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !(cp == cr || cp == lf || flags & N != 0) {
                if flags & L != 0 || fl(pos + 1) & L != 0 {
                    pos += 1
                    while fl(pos) & L != 0 { pos += 1 }
                    _ = add(pos); continue
                }
            }
            // \p{N}{1,3} or \p{N}
            if flags & N != 0 {
                if digitsPerWord == 1 {
                    pos += 1
                    _ = add(pos); continue
                }
                var first = pos
                while fl(pos) & N != 0 {
                    pos += 1
                    if pos - first >= digitsPerWord {
                        _ = add(pos)
                        first = pos
                    }
                }
                _ = add(pos); continue
            }
            // <space>?[^\s\p{L}\p{N}]+[\r\n]*
            let isSpace = cp == space
            var flags2 = isSpace ? fl(pos + 1) : flags
            if flags2 & (W | L | N) == 0 && flags != 0 {
                pos += isSpace ? 1 : 0
                while flags2 & (W | L | N) == 0 && flags2 != 0 {
                    pos += 1
                    flags2 = fl(pos)
                }
                var cp2 = cpt(pos)
                while cp2 == cr || cp2 == lf {
                    pos += 1
                    cp2 = cpt(pos)
                }
                _ = add(pos); continue
            }
            var numWS = 0
            var lastEndRN = 0
            while fl(pos + numWS) & W != 0 {
                let cp2 = cpt(pos + numWS)
                if cp2 == cr || cp2 == lf { lastEndRN = pos + numWS + 1 }
                numWS += 1
            }
            if lastEndRN > 0 {  // \s*[\r\n]+
                pos = lastEndRN
                _ = add(pos); continue
            }
            if numWS > 1 && cpt(pos + numWS) != outOfRange {  // \s+(?!\S)
                pos += numWS - 1
                _ = add(pos); continue
            }
            if numWS > 0 {  // \s+
                pos += numWS
                _ = add(pos); continue
            }
            pos += 1
            _ = add(pos)
        }
    }

    /// Qwen3.5: (?i:'s|...)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    private static func splitQwen35(_ c: UnsafeBufferPointer<UInt32>, _ f: UnsafeBufferPointer<UInt16>, _ ini: Int, _ end: Int, _ out: inout [Int]) {
        @inline(__always) func cpt(_ p: Int) -> UInt32 { p >= ini && p < end ? c[p] : outOfRange }
        @inline(__always) func fl(_ p: Int) -> UInt16 { p >= ini && p < end ? f[p] : 0 }
        let L = CodepointFlags.letter, N = CodepointFlags.number, W = CodepointFlags.whitespace, M = CodepointFlags.accentMark
        var prevEnd = ini
        @inline(__always) func add(_ e: Int) -> Int {
            let len = e - prevEnd
            if len > 0 { out.append(len) }
            prevEnd = e
            return len
        }
        var pos = ini
        while pos < end {
            let cp = c[pos]
            let flags = f[pos]
            if cp == apostrophe && pos + 1 < end {
                let next = lower(c[pos + 1])
                if isContractionTail1(next) { pos += add(pos + 2); continue }
                if pos + 2 < end, isContractionTail2(next, lower(c[pos + 2])) { pos += add(pos + 3); continue }
            }
            if !(cp == cr || cp == lf || flags & N != 0) {
                if flags & (L | M) != 0 || fl(pos + 1) & (L | M) != 0 {
                    pos += 1
                    while fl(pos) & (L | M) != 0 { pos += 1 }
                    _ = add(pos); continue
                }
            }
            if flags & N != 0 {
                pos += 1
                _ = add(pos); continue
            }
            let isSpace = cp == space
            var flags2 = isSpace ? fl(pos + 1) : flags
            if flags2 & (W | L | M | N) == 0 && flags != 0 {
                pos += isSpace ? 1 : 0
                while flags2 & (W | L | M | N) == 0 && flags2 != 0 {
                    pos += 1
                    flags2 = fl(pos)
                }
                var cp2 = cpt(pos)
                while cp2 == cr || cp2 == lf {
                    pos += 1
                    cp2 = cpt(pos)
                }
                _ = add(pos); continue
            }
            var numWS = 0
            var lastEndRN = 0
            while fl(pos + numWS) & W != 0 {
                let cp2 = cpt(pos + numWS)
                if cp2 == cr || cp2 == lf { lastEndRN = pos + numWS + 1 }
                numWS += 1
            }
            if lastEndRN > 0 {
                pos = lastEndRN
                _ = add(pos); continue
            }
            if numWS > 1 && cpt(pos + numWS) != outOfRange {
                pos += numWS - 1
                _ = add(pos); continue
            }
            if numWS > 0 {
                pos += numWS
                _ = add(pos); continue
            }
            pos += 1
            _ = add(pos)
        }
    }

    // MARK: std::regex emulation

    /// `std::regex_iterator` over one chunk: matches are words, and so is any text between
    /// them.
    private static func splitRegex(_ c: UnsafeBufferPointer<UInt32>, _ f: UnsafeBufferPointer<UInt16>, _ ini: Int, _ end: Int,
                                   _ match: Matcher, _ out: inout [Int]) {
        var last = ini
        var i = ini
        while i < end {
            let e = match(c, f, i, end)
            if e > i {
                if i > last { out.append(i - last) }
                out.append(e - i)
                last = e
                i = e
            } else {
                i += 1
            }
        }
        if last < end { out.append(end - last) }
    }

    @inline(__always) private static func isWS(_ f: UInt16) -> Bool { f & CodepointFlags.whitespace != 0 }

    /// `\p{N}`
    private static let digit: Matcher = { _, f, i, _ in f[i] & CodepointFlags.number != 0 ? i + 1 : -1 }

    /// `\p{N}+`
    private static let digitRun: Matcher = { _, f, i, end in
        var j = i
        while j < end && f[j] & CodepointFlags.number != 0 { j += 1 }
        return j > i ? j : -1
    }

    /// `[0-9][0-9][0-9]`
    private static let threeASCIIDigits: Matcher = { c, _, i, end in
        guard i + 3 <= end else { return -1 }
        for k in i..<(i + 3) where !(c[k] >= 0x30 && c[k] <= 0x39) { return -1 }
        return i + 3
    }

    /// `[\p{P}\$\+<=>\^~\|]+` (llama.cpp's default set) and, with a backtick, falcon's.
    private static func punctRun(_ c: UnsafeBufferPointer<UInt32>, _ f: UnsafeBufferPointer<UInt16>, _ i: Int, _ end: Int, backtick: Bool) -> Int {
        var j = i
        while j < end {
            let cp = c[j]
            let ok = f[j] & CodepointFlags.punctuation != 0 || cp == 0x24 || cp == 0x2B || cp == 0x3C || cp == 0x3D
                || cp == 0x3E || cp == 0x5E || cp == 0x7E || cp == 0x7C || (backtick && cp == 0x60)
            if !ok { break }
            j += 1
        }
        return j > i ? j : -1
    }
    private static let punctRunDefault: Matcher = { c, f, i, end in punctRun(c, f, i, end, backtick: false) }
    private static let punctRunFalcon: Matcher = { c, f, i, end in punctRun(c, f, i, end, backtick: true) }

    /// `[^\n]+|[\n]+` (every code point is in one run or the other).
    private static let newlineRun: Matcher = { c, _, i, end in
        let isNewline = c[i] == lf
        var j = i + 1
        while j < end && (c[j] == lf) == isNewline { j += 1 }
        return j
    }

    /// `[\r\n]`
    private static let crOrLf: Matcher = { c, _, i, _ in c[i] == cr || c[i] == lf ? i + 1 : -1 }

    /// `\s?X+` for a class X.
    @inline(__always)
    private static func optionalSpaceThenRun(_ c: UnsafeBufferPointer<UInt32>, _ f: UnsafeBufferPointer<UInt16>, _ i: Int, _ end: Int,
                                             _ inClass: (UInt32, UInt16) -> Bool) -> Int {
        var j = i
        if isWS(f[i]), i + 1 < end, inClass(c[i + 1], f[i + 1]) {
            j = i + 1
        } else if !inClass(c[i], f[i]) {
            return -1
        }
        while j < end && inClass(c[j], f[j]) { j += 1 }
        return j
    }

    /// `\s?\p{L}+`
    private static let spaceThenLetters: Matcher = { c, f, i, end in
        optionalSpaceThenRun(c, f, i, end) { _, fl in fl & CodepointFlags.letter != 0 }
    }
    /// `\s?\p{P}+`
    private static let spaceThenPunct: Matcher = { c, f, i, end in
        optionalSpaceThenRun(c, f, i, end) { _, fl in fl & CodepointFlags.punctuation != 0 }
    }

    /// In llama.cpp's `std::wregex` path, non-ASCII whitespace is replaced by U+000B before
    /// matching, so it never matches a literal range.
    @inline(__always)
    private static func literal(_ cp: UInt32, _ fl: UInt16) -> UInt32 {
        cp > 0x7F && isWS(fl) ? 0x0B : cp
    }

    /// `[一-龥ࠀ-一가-퟿]+`
    private static let cjkRun: Matcher = { c, f, i, end in
        var j = i
        while j < end {
            let cp = literal(c[j], f[j])
            guard (cp >= 0x4E00 && cp <= 0x9FA5) || (cp >= 0x0800 && cp <= 0x4E00) || (cp >= 0xAC00 && cp <= 0xD7FF) else { break }
            j += 1
        }
        return j > i ? j : -1
    }

    /// deepseek-llm's letter class.
    private static let deepseekLetterRanges: [(UInt32, UInt32)] = [
        (0x41, 0x5A), (0x61, 0x7A), (0xB5, 0xB5), (0xC0, 0xD6), (0xD8, 0xF6), (0xF8, 0x1BA), (0x1BC, 0x1BF), (0x1C4, 0x293),
        (0x295, 0x2AF), (0x370, 0x373), (0x376, 0x377), (0x37B, 0x37D), (0x37F, 0x37F), (0x386, 0x386), (0x388, 0x38A),
        (0x38C, 0x38C), (0x38E, 0x3A1), (0x3A3, 0x3F5), (0x3F7, 0x481), (0x48A, 0x52F), (0x531, 0x556), (0x10A0, 0x10C5),
        (0x13A0, 0x13F5), (0x13F8, 0x13FD), (0x1C90, 0x1CBA), (0x1CBD, 0x1CBF), (0x1D00, 0x1D2B), (0x1D6B, 0x1D77),
        (0x1D79, 0x1D9A), (0x1E00, 0x1F15), (0x1F18, 0x1F1D), (0x1F20, 0x1F45), (0x1F48, 0x1F4D), (0x1F50, 0x1F57),
        (0x1F59, 0x1F59), (0x1F5B, 0x1F5B), (0x1F5D, 0x1F5D), (0x1F5F, 0x1F7D), (0x1F80, 0x1FB4), (0x1FB6, 0x1FBC),
        (0x1FBE, 0x1FBE), (0x1FC2, 0x1FC4), (0x1FC6, 0x1FCC), (0x1FD0, 0x1FD3), (0x1FD6, 0x1FDB), (0x1FE0, 0x1FEC),
        (0x1FF2, 0x1FF4), (0x1FF6, 0x1FFC), (0x2102, 0x2102), (0x2107, 0x2107), (0x210A, 0x2113), (0x2115, 0x2115),
        (0x2119, 0x211D), (0x2124, 0x2124), (0x2126, 0x2126), (0x2128, 0x2128), (0x212A, 0x212D), (0x212F, 0x2134),
        (0x2139, 0x2139), (0x213C, 0x213F), (0x2145, 0x2149), (0x214E, 0x214E), (0x2183, 0x2184), (0x2C00, 0x2C7B),
        (0x2C7E, 0x2CE4), (0x2CEB, 0x2CEE), (0x2CF2, 0x2CF3), (0xA640, 0xA66D), (0xA680, 0xA69B), (0xA722, 0xA76F),
        (0xA771, 0xA787), (0xA78B, 0xA78E), (0xAB70, 0xABBF), (0xFB00, 0xFB06), (0xFB13, 0xFB17), (0xFF21, 0xFF3A),
        (0xFF41, 0xFF5A), (0x10400, 0x1044F), (0x104B0, 0x104D3), (0x104D8, 0x104FB), (0x10C80, 0x10CB2),
        (0x10CC0, 0x10CF2), (0x118A0, 0x118DF), (0x1E900, 0x1E943),
    ]

    @inline(__always)
    private static func inRanges(_ cp: UInt32, _ ranges: [(UInt32, UInt32)]) -> Bool {
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if ranges[mid].1 < cp { lo = mid + 1 } else { hi = mid }
        }
        return lo < ranges.count && ranges[lo].0 <= cp
    }

    /// `\s?[A-Za-zµÀ-Ö...]+`
    private static let spaceThenDeepseekLetters: Matcher = { c, f, i, end in
        optionalSpaceThenRun(c, f, i, end) { cp, fl in inRanges(literal(cp, fl), deepseekLetterRanges) }
    }

    /// `\s?[!-/:-~！-／：-～‘-‟　-。]+`
    private static let spaceThenDeepseekPunct: Matcher = { c, f, i, end in
        optionalSpaceThenRun(c, f, i, end) { cp, fl in
            let x = literal(cp, fl)
            return (x >= 0x21 && x <= 0x2F) || (x >= 0x3A && x <= 0x7E) || (x >= 0xFF01 && x <= 0xFF0F)
                || (x >= 0xFF1A && x <= 0xFF5E) || (x >= 0x2018 && x <= 0x201F) || (x >= 0x3000 && x <= 0x3002)
        }
    }

    /// `\s+$` (`$` is the end of the chunk).
    private static let trailingSpaces: Matcher = { _, f, i, end in
        guard isWS(f[i]) else { return -1 }
        var j = i
        while j < end && isWS(f[j]) { j += 1 }
        return j == end ? end : -1
    }

    /// ` ?[^(\s|.,!?…。，、।۔،)]+`
    private static let bloomWord: Matcher = { c, f, i, end in
        @inline(__always) func ok(_ k: Int) -> Bool {
            if isWS(f[k]) { return false }
            switch c[k] {
            case 0x28, 0x7C, 0x2E, 0x2C, 0x21, 0x3F, 0x2026, 0x3002, 0xFF0C, 0x3001, 0x0964, 0x06D4, 0x060C, 0x29: return false
            default: return true
            }
        }
        var j = i
        if c[i] == space, i + 1 < end, ok(i + 1) {
            j = i + 1
        } else if !ok(i) {
            return -1
        }
        while j < end && ok(j) { j += 1 }
        return j
    }
}
