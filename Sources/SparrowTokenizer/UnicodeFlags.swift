/// Code point classification as llama.cpp's `unicode_cpt_flags` (from its generated tables,
/// see `UnicodeTables.swift`), so the pre-tokenizers split text exactly as llama.cpp does.
enum CodepointFlags {
    static let undefined: UInt16 = 0x0001
    static let number: UInt16 = 0x0002       // \p{N}
    static let letter: UInt16 = 0x0004       // \p{L}
    static let separator: UInt16 = 0x0008    // \p{Z}
    static let accentMark: UInt16 = 0x0010   // \p{M}
    static let punctuation: UInt16 = 0x0020  // \p{P}
    static let symbol: UInt16 = 0x0040       // \p{S}
    static let control: UInt16 = 0x0080      // \p{C}
    static let whitespace: UInt16 = 0x0100   // \s

    /// One entry per code point 0...0x10FFFF (2.2 MB), built once on first use.
    static let table: [UInt16] = buildTable()

    /// Flags of a code point; code points past U+10FFFF are `undefined`, as in llama.cpp.
    @inline(__always)
    static func of(_ cp: UInt32) -> UInt16 {
        cp < 0x110000 ? table[Int(cp)] : undefined
    }

    private static func buildTable() -> [UInt16] {
        var table = [UInt16](repeating: undefined, count: 0x110000)
        var starts: [Int] = []
        var flags: [UInt16] = []
        for entry in unicodeRangeFlagsData.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            let parts = entry.split(separator: ":")
            guard parts.count == 2, let s = Int(parts[0], radix: 16), let f = UInt16(parts[1], radix: 16) else { continue }
            starts.append(s)
            flags.append(f)
        }
        if starts.count >= 2 {
            for i in 1..<starts.count {
                let lo = min(starts[i - 1], 0x110000), hi = min(starts[i], 0x110000)
                if lo < hi {
                    for cp in lo..<hi { table[cp] = flags[i - 1] }
                }
            }
        }
        for cp in unicodeWhitespace where cp < 0x110000 {
            table[Int(cp)] |= whitespace
        }
        return table
    }
}

/// The GPT-2 byte-to-unicode mapping (`unicode_byte_to_utf8_map` in llama.cpp): printable
/// Latin-1 bytes map to themselves, the rest to U+0100 and up, so any byte string becomes
/// printable text for byte-level BPE vocabularies.
enum ByteLevel {
    /// Code point standing for each byte.
    static let byteToScalar: [UInt32] = {
        var map = [UInt32](repeating: 0, count: 256)
        var assigned = [Bool](repeating: false, count: 256)
        for b in 0x21...0x7E { map[b] = UInt32(b); assigned[b] = true }
        for b in 0xA1...0xAC { map[b] = UInt32(b); assigned[b] = true }
        for b in 0xAE...0xFF { map[b] = UInt32(b); assigned[b] = true }
        var n: UInt32 = 0
        for b in 0..<256 where !assigned[b] {
            map[b] = 256 + n
            n += 1
        }
        return map
    }()

    /// Inverse mapping, indexed by code point (all mapped code points are below 0x144).
    static let scalarToByte: [Int16] = {
        var inv = [Int16](repeating: -1, count: 0x144)
        for b in 0..<256 { inv[Int(byteToScalar[b])] = Int16(b) }
        return inv
    }()

    /// The byte a code point stands for, or nil when it is outside the mapping.
    @inline(__always)
    static func byte(for cp: UInt32) -> UInt8? {
        guard cp < 0x144 else { return nil }
        let b = scalarToByte[Int(cp)]
        return b >= 0 ? UInt8(b) : nil
    }

    /// Decodes byte-level text (UTF-8) into the raw bytes it stands for, appending to
    /// `out`; false when some character is outside the mapping (such text can never be
    /// produced by byte-level encoding). All mapped characters are below U+0144, so one or
    /// two UTF-8 bytes each.
    static func decode(_ u: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) -> Bool {
        var i = 0
        let n = u.count
        while i < n {
            let b0 = u[i]
            let cp: UInt32
            if b0 < 0x80 {
                cp = UInt32(b0)
                i += 1
            } else if b0 >= 0xC2 && b0 <= 0xC5 && i + 1 < n && u[i + 1] & 0xC0 == 0x80 {
                cp = UInt32(b0 & 0x1F) << 6 | UInt32(u[i + 1] & 0x3F)
                i += 2
            } else {
                return false
            }
            guard let b = byte(for: cp) else { return false }
            out.append(b)
        }
        return true
    }

    /// `decode` for a string.
    static func decode(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        var t = text
        let ok = t.withUTF8 { decode($0, into: &out) }
        return ok ? out : nil
    }
}

/// UTF-8 helpers.
enum UTF8Util {
    /// Length of a UTF-8 sequence from its first byte, as llama.cpp's `unicode_len_utf8`.
    @inline(__always)
    static func sequenceLength(_ lead: UInt8) -> Int {
        switch lead >> 4 {
        case 0xC, 0xD: return 2
        case 0xE: return 3
        case 0xF: return 4
        default: return 1
        }
    }

    /// Appends the UTF-8 encoding of a code point.
    @inline(__always)
    static func append(_ cp: UInt32, to out: inout [UInt8]) {
        switch cp {
        case 0..<0x80:
            out.append(UInt8(cp))
        case 0x80..<0x800:
            out.append(UInt8(0xC0 | (cp >> 6)))
            out.append(UInt8(0x80 | (cp & 0x3F)))
        case 0x800..<0x10000:
            out.append(UInt8(0xE0 | (cp >> 12)))
            out.append(UInt8(0x80 | ((cp >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (cp & 0x3F)))
        default:
            out.append(UInt8(0xF0 | ((cp >> 18) & 0x07)))
            out.append(UInt8(0x80 | ((cp >> 12) & 0x3F)))
            out.append(UInt8(0x80 | ((cp >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (cp & 0x3F)))
        }
    }

    /// Decodes valid UTF-8 into code points and the byte offset where each one starts
    /// (plus a final entry for the end). Invalid sequences become U+FFFD one byte at a time,
    /// as llama.cpp's `unicode_cpts_from_utf8` (Swift strings never contain them).
    static func decode(_ bytes: UnsafeBufferPointer<UInt8>, cpts: inout [UInt32], offsets: inout [Int32], base: Int) {
        cpts.removeAll(keepingCapacity: true)
        offsets.removeAll(keepingCapacity: true)
        let n = bytes.count
        var i = 0
        while i < n {
            let b0 = bytes[i]
            offsets.append(Int32(base + i))
            if b0 < 0x80 {
                cpts.append(UInt32(b0)); i += 1; continue
            }
            if b0 & 0xE0 == 0xC0, i + 1 < n, bytes[i + 1] & 0xC0 == 0x80 {
                cpts.append(UInt32(b0 & 0x1F) << 6 | UInt32(bytes[i + 1] & 0x3F)); i += 2; continue
            }
            if b0 & 0xF0 == 0xE0, i + 2 < n, bytes[i + 1] & 0xC0 == 0x80, bytes[i + 2] & 0xC0 == 0x80 {
                cpts.append(UInt32(b0 & 0x0F) << 12 | UInt32(bytes[i + 1] & 0x3F) << 6 | UInt32(bytes[i + 2] & 0x3F)); i += 3; continue
            }
            if b0 & 0xF8 == 0xF0, i + 3 < n, bytes[i + 1] & 0xC0 == 0x80, bytes[i + 2] & 0xC0 == 0x80, bytes[i + 3] & 0xC0 == 0x80 {
                cpts.append(UInt32(b0 & 0x07) << 18 | UInt32(bytes[i + 1] & 0x3F) << 12 | UInt32(bytes[i + 2] & 0x3F) << 6 | UInt32(bytes[i + 3] & 0x3F))
                i += 4; continue
            }
            cpts.append(0xFFFD); i += 1
        }
        offsets.append(Int32(base + n))
    }
}
