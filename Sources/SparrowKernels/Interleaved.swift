#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SparrowFormats
#if arch(x86_64)
import SparrowKernelsAVX2
#endif

/// Q5_0, Q8_0, Q4_K and Q6_K weights repacked eight rows side by side, for the AVX2 kernels in
/// `AVX2Interleaved` (which documents the Q5_0/Q8_0 byte layout) and `AVX2KGroups`. A group of
/// 8 rows takes exactly the bytes the 8 rows take in the ggml layout, so group g starts at
/// `8·g·rowBytes`. K-quants: group block b (the rows' superblocks b) holds 32-bit word w of
/// row r's superblock at byte 32w + 4r — the word transpose the group kernels otherwise do on
/// the fly — so one-token decode reads eight rows at once without transposing. Q4_K (1152
/// bytes): words 0…3 are the rows' d, dmin and scales, words 4 + 8j ..< 12 + 8j quant chunk j.
/// Q6_K (1680 bytes): words 48…51 (scales), 0…15 (ql), 32…39 (qh), 16…31 (ql), 40…47 (qh) —
/// the order its kernel reads them — then the eight f16 d at 1664.
///
/// The repacked copy replaces the mapped rows (the loader releases the mapped pages), so
/// resident memory stays the file's size. Only CPUs with AVX2 use it: elsewhere the portable
/// kernels read the ggml layout in place.
public enum Interleaved {
    /// Rows per group.
    public static let groupRows = 8

    /// Whether model loaders repack (default on; `SPARROW_INTERLEAVE=0` keeps the ggml layout,
    /// for A/B measurements).
    public static let enabled: Bool = {
        if let v = getenv("SPARROW_INTERLEAVE"), String(cString: v) == "0" { return false }
        return true
    }()

    /// Whether `type` has an interleaved layout and `rows` fill whole groups.
    public static func supports(_ type: GGMLType, rows: Int) -> Bool {
        (type == .q5_0 || type == .q8_0 || type == .q4_K || type == .q6_K) && rows > 0 && rows % groupRows == 0
    }

    static func groupBlockBytes(_ type: GGMLType) -> Int { groupRows * type.typeSize }

    /// Repacks 8 ggml-layout rows (`rowBytes` apart, `blocks` blocks of the type each) into one
    /// group at `dst` (`8·rowBytes` bytes). Word moves only: a Q5_0 nibble chunk c is exactly
    /// bytes 4c..4c+3 of each row's ggml nibbles (quant 4c+j in the low nibble, 4c+16+j in the
    /// high one), and high-bit byte 4r+j gathers bits j, j+4, …, j+28 of row r's `qh`.
    public static func repack(_ type: GGMLType, _ src: UnsafeRawPointer, rowBytes: Int, blocks: Int,
                              into dst: UnsafeMutableRawPointer) {
        precondition(supports(type, rows: groupRows))
        let gbb = groupBlockBytes(type), bb = type.typeSize
        if type == .q4_K || type == .q6_K {
            repackK(type, src, rowBytes: rowBytes, blocks: blocks, into: dst)
            return
        }
        for b in 0..<blocks {
            let gb = dst + b * gbb
            for r in 0..<groupRows {
                let xb = src + r * rowBytes + b * bb
                gb.storeBytes(of: xb.loadUnaligned(as: UInt16.self), toByteOffset: 2 * r, as: UInt16.self)
                if type == .q8_0 {
                    for k in 0..<8 {
                        gb.storeBytes(of: xb.loadUnaligned(fromByteOffset: 2 + 4 * k, as: UInt32.self),
                                      toByteOffset: 16 + 32 * k + 4 * r, as: UInt32.self)
                    }
                    continue
                }
                for c in 0..<4 {
                    gb.storeBytes(of: xb.loadUnaligned(fromByteOffset: 6 + 4 * c, as: UInt32.self),
                                  toByteOffset: 16 + 32 * c + 4 * r, as: UInt32.self)
                }
                let qh = UInt32(littleEndian: xb.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
                for j in 0..<4 { gb.storeBytes(of: gatherNibbleBits(qh >> j), toByteOffset: 144 + 4 * r + j, as: UInt8.self) }
            }
        }
    }

    /// `repack` for Q4_K/Q6_K: the superblocks' whole words transposed (eight at a time with
    /// AVX2, the rest one by one), then Q6_K's trailing f16 d after its 52 words.
    static func repackK(_ type: GGMLType, _ src: UnsafeRawPointer, rowBytes: Int, blocks: Int, into dst: UnsafeMutableRawPointer) {
        let gbb = groupBlockBytes(type), bb = type.typeSize, words = bb / 4
        var fast = 0
        #if arch(x86_64)
        if QuantKernels.useAVX2 { fast = words / 8 * 8 }
        #endif
        for b in 0..<blocks {
            let gb = dst + b * gbb
            #if arch(x86_64)
            // Runs of eight words stay contiguous in Q6_K's order (`packedWord`).
            for w in stride(from: 0, to: fast, by: 8) {
                AVX2Dot.transposeWords8(src + b * bb + 4 * w, rowBytes: rowBytes, into: gb + 32 * packedWord(type, w))
            }
            #endif
            for r in 0..<groupRows {
                let xb = src + r * rowBytes + b * bb
                for w in fast..<words {
                    gb.storeBytes(of: xb.loadUnaligned(fromByteOffset: 4 * w, as: UInt32.self), toByteOffset: 32 * packedWord(type, w) + 4 * r,
                                  as: UInt32.self)
                }
                if type == .q6_K { gb.storeBytes(of: xb.loadUnaligned(fromByteOffset: 208, as: UInt16.self), toByteOffset: 1664 + 2 * r, as: UInt16.self) }
            }
        }
    }

    /// Where a K-quant superblock's word `w` sits in a group block (in units of 32 bytes):
    /// Q4_K in order, Q6_K in its kernel's reading order (`AVX2Dot.q6PackedWord`).
    static func packedWord(_ type: GGMLType, _ w: Int) -> Int {
        #if arch(x86_64)
        if type == .q6_K { return AVX2Dot.q6PackedWord(w) }
        #endif
        return w
    }

    /// The inverse of `repack` for one row: lane `r` of the group at `group`, written as a
    /// ggml-layout row at `dst` (`blocks` blocks).
    public static func unpack(_ type: GGMLType, group: UnsafeRawPointer, lane r: Int, blocks: Int,
                              into dst: UnsafeMutableRawPointer) {
        let gbb = groupBlockBytes(type), bb = type.typeSize
        for b in 0..<blocks {
            let gb = group + b * gbb, xb = dst + b * bb
            if type == .q4_K || type == .q6_K {
                for w in 0..<bb / 4 {
                    xb.storeBytes(of: gb.loadUnaligned(fromByteOffset: 32 * packedWord(type, w) + 4 * r, as: UInt32.self), toByteOffset: 4 * w,
                                  as: UInt32.self)
                }
                if type == .q6_K { xb.storeBytes(of: gb.loadUnaligned(fromByteOffset: 1664 + 2 * r, as: UInt16.self), toByteOffset: 208, as: UInt16.self) }
                continue
            }
            xb.storeBytes(of: gb.loadUnaligned(fromByteOffset: 2 * r, as: UInt16.self), as: UInt16.self)
            if type == .q8_0 {
                for k in 0..<8 {
                    xb.storeBytes(of: gb.loadUnaligned(fromByteOffset: 16 + 32 * k + 4 * r, as: UInt32.self),
                                  toByteOffset: 2 + 4 * k, as: UInt32.self)
                }
                continue
            }
            for c in 0..<4 {
                xb.storeBytes(of: gb.loadUnaligned(fromByteOffset: 16 + 32 * c + 4 * r, as: UInt32.self),
                              toByteOffset: 6 + 4 * c, as: UInt32.self)
            }
            var qh: UInt32 = 0
            for j in 0..<4 {
                let byte = UInt32(gb.load(fromByteOffset: 144 + 4 * r + j, as: UInt8.self))
                for k in 0..<8 { qh |= ((byte >> k) & 1) << (4 * k + j) }
            }
            xb.storeBytes(of: qh.littleEndian, toByteOffset: 2, as: UInt32.self)
        }
    }

    /// Bits 0, 4, 8, …, 28 of `x` as one byte (bit k ← bit 4k).
    @inline(__always)
    static func gatherNibbleBits(_ x: UInt32) -> UInt8 {
        var v = x & 0x1111_1111
        v = (v | v >> 3) & 0x0303_0303
        v = (v | v >> 6) & 0x000F_000F
        v = (v | v >> 12) & 0xFF
        return UInt8(v)
    }
}
