/// Byte layouts of ggml's quantized blocks, and the half-precision scalar conversions every
/// block format relies on.
///
/// Each nested enum mirrors one `block_*` struct of ggml's `ggml/src/ggml-common.h`: the
/// offsets are byte offsets from the start of a block, all multi-byte fields little-endian
/// and, because blocks are packed back to back (a `block_q8_0` is 34 bytes), possibly
/// unaligned — read them with `loadUnaligned`. `f16` is IEEE binary16 (`ggml_half`).
///
/// Offsets are computed `@inlinable` properties rather than stored constants so that kernels
/// in other modules fold them to immediates.
public enum QuantBlock {
    /// Same layout as ggml's `block_q4_0` (18 bytes, 32 weights):
    /// `d` f16 @0, `qs[16]` @2 (weight j in the low nibble of qs[j], weight j+16 in the high
    /// nibble; value = (nibble - 8) * d).
    public enum Q4_0 {
        /// Bytes per block.
        @inlinable public static var byteCount: Int { 18 }
        /// Values per block.
        @inlinable public static var elementCount: Int { 32 }
        /// Byte offset of `d`.
        @inlinable public static var d: Int { 0 }
        /// Byte offset of `qs`.
        @inlinable public static var qs: Int { 2 }
    }

    /// Same layout as ggml's `block_q4_1` (20 bytes, 32 weights):
    /// `d` f16 @0, `m` f16 @2, `qs[16]` @4 (nibbles as in Q4_0; value = nibble * d + m).
    public enum Q4_1 {
        /// Bytes per block.
        @inlinable public static var byteCount: Int { 20 }
        /// Values per block.
        @inlinable public static var elementCount: Int { 32 }
        /// Byte offset of `d`.
        @inlinable public static var d: Int { 0 }
        /// Byte offset of `m`.
        @inlinable public static var m: Int { 2 }
        /// Byte offset of `qs`.
        @inlinable public static var qs: Int { 4 }
    }

    /// Same layout as ggml's `block_q5_0` (22 bytes, 32 weights):
    /// `d` f16 @0, `qh[4]` @2 (u32 LE: bit j is the 5th bit of weight j), `qs[16]` @6
    /// (low 4 bits as in Q4_0; value = (q5 - 16) * d).
    public enum Q5_0 {
        /// Bytes per block.
        @inlinable public static var byteCount: Int { 22 }
        /// Values per block.
        @inlinable public static var elementCount: Int { 32 }
        /// Byte offset of `d`.
        @inlinable public static var d: Int { 0 }
        /// Byte offset of `qh`.
        @inlinable public static var qh: Int { 2 }
        /// Byte offset of `qs`.
        @inlinable public static var qs: Int { 6 }
    }

    /// Same layout as ggml's `block_q5_1` (24 bytes, 32 weights):
    /// `d` f16 @0, `m` f16 @2, `qh[4]` @4, `qs[16]` @8 (value = q5 * d + m).
    public enum Q5_1 {
        /// Bytes per block.
        @inlinable public static var byteCount: Int { 24 }
        /// Values per block.
        @inlinable public static var elementCount: Int { 32 }
        /// Byte offset of `d`.
        @inlinable public static var d: Int { 0 }
        /// Byte offset of `m`.
        @inlinable public static var m: Int { 2 }
        /// Byte offset of `qh`.
        @inlinable public static var qh: Int { 4 }
        /// Byte offset of `qs`.
        @inlinable public static var qs: Int { 8 }
    }

    /// Same layout as ggml's `block_q8_0` (34 bytes, 32 values):
    /// `d` f16 @0, `qs[32]` int8 @2 (value = q * d).
    public enum Q8_0 {
        /// Bytes per block.
        @inlinable public static var byteCount: Int { 34 }
        /// Values per block.
        @inlinable public static var elementCount: Int { 32 }
        /// Byte offset of `d`.
        @inlinable public static var d: Int { 0 }
        /// Byte offset of `qs`.
        @inlinable public static var qs: Int { 2 }
    }

    /// Same layout as ggml's `block_q8_1` (36 bytes, 32 values), an activation format:
    /// `d` f16 @0, `s` f16 @2 (= d * sum(qs)), `qs[32]` int8 @4.
    public enum Q8_1 {
        /// Bytes per block.
        @inlinable public static var byteCount: Int { 36 }
        /// Values per block.
        @inlinable public static var elementCount: Int { 32 }
        /// Byte offset of `d`.
        @inlinable public static var d: Int { 0 }
        /// Byte offset of `s`.
        @inlinable public static var s: Int { 2 }
        /// Byte offset of `qs`.
        @inlinable public static var qs: Int { 4 }
    }

    /// Same layout as ggml's `block_q2_K` (84 bytes, 256 weights in 16 groups of 16):
    /// `scales[16]` @0 (low nibble scale, high nibble min, per group), `qs[64]` @16 (2-bit
    /// quants), `d` f16 @80, `dmin` f16 @82.
    public enum Q2_K {
        /// Bytes per block.
        @inlinable public static var byteCount: Int { 84 }
        /// Values per block.
        @inlinable public static var elementCount: Int { 256 }
        /// Byte offset of `scales`.
        @inlinable public static var scales: Int { 0 }
        /// Byte offset of `qs`.
        @inlinable public static var qs: Int { 16 }
        /// Byte offset of `d`.
        @inlinable public static var d: Int { 80 }
        /// Byte offset of `dmin`.
        @inlinable public static var dmin: Int { 82 }
    }

    /// Same layout as ggml's `block_q3_K` (110 bytes, 256 weights in 16 groups of 16):
    /// `hmask[32]` @0 (high bit, clear means "subtract 4"), `qs[64]` @32 (low 2 bits),
    /// `scales[12]` @96 (sixteen 6-bit scales, biased by 32), `d` f16 @108.
    public enum Q3_K {
        /// Bytes per block.
        @inlinable public static var byteCount: Int { 110 }
        /// Values per block.
        @inlinable public static var elementCount: Int { 256 }
        /// Byte offset of `hmask`.
        @inlinable public static var hmask: Int { 0 }
        /// Byte offset of `qs`.
        @inlinable public static var qs: Int { 32 }
        /// Byte offset of `scales`.
        @inlinable public static var scales: Int { 96 }
        /// Byte offset of `d`.
        @inlinable public static var d: Int { 108 }
    }

    /// Same layout as ggml's `block_q4_K` (144 bytes, 256 weights in 8 groups of 32):
    /// `d` f16 @0, `dmin` f16 @2, `scales[12]` @4 (eight 6-bit scales and eight 6-bit mins),
    /// `qs[128]` @16 (4-bit quants; group 2k in the low nibbles of qs[32k..<32k+32], group
    /// 2k+1 in the high nibbles).
    public enum Q4_K {
        /// Bytes per block.
        @inlinable public static var byteCount: Int { 144 }
        /// Values per block.
        @inlinable public static var elementCount: Int { 256 }
        /// Byte offset of `d`.
        @inlinable public static var d: Int { 0 }
        /// Byte offset of `dmin`.
        @inlinable public static var dmin: Int { 2 }
        /// Byte offset of `scales`.
        @inlinable public static var scales: Int { 4 }
        /// Byte offset of `qs`.
        @inlinable public static var qs: Int { 16 }
    }

    /// Same layout as ggml's `block_q5_K` (176 bytes, 256 weights in 8 groups of 32):
    /// `d` f16 @0, `dmin` f16 @2, `scales[12]` @4 (as Q4_K), `qh[32]` @16 (5th bits: bit g of
    /// qh[l] belongs to weight 32g + l), `qs[128]` @48 (low 4 bits as Q4_K).
    public enum Q5_K {
        /// Bytes per block.
        @inlinable public static var byteCount: Int { 176 }
        /// Values per block.
        @inlinable public static var elementCount: Int { 256 }
        /// Byte offset of `d`.
        @inlinable public static var d: Int { 0 }
        /// Byte offset of `dmin`.
        @inlinable public static var dmin: Int { 2 }
        /// Byte offset of `scales`.
        @inlinable public static var scales: Int { 4 }
        /// Byte offset of `qh`.
        @inlinable public static var qh: Int { 16 }
        /// Byte offset of `qs`.
        @inlinable public static var qs: Int { 48 }
    }

    /// Same layout as ggml's `block_q6_K` (210 bytes, 256 weights in 16 groups of 16):
    /// `ql[128]` @0 (low 4 bits), `qh[64]` @128 (high 2 bits), `scales[16]` int8 @192,
    /// `d` f16 @208 (value = d * scale * (q6 - 32)).
    public enum Q6_K {
        /// Bytes per block.
        @inlinable public static var byteCount: Int { 210 }
        /// Values per block.
        @inlinable public static var elementCount: Int { 256 }
        /// Byte offset of `ql`.
        @inlinable public static var ql: Int { 0 }
        /// Byte offset of `qh`.
        @inlinable public static var qh: Int { 128 }
        /// Byte offset of `scales`.
        @inlinable public static var scales: Int { 192 }
        /// Byte offset of `d`.
        @inlinable public static var d: Int { 208 }
    }

    /// Same layout as ggml's `block_q8_K` (292 bytes, 256 values), the activation format of
    /// the K-quants: `d` **f32** @0, `qs[256]` int8 @4, `bsums[16]` int16 @260 (sum of each
    /// group of 16 quants).
    public enum Q8_K {
        /// Bytes per block.
        @inlinable public static var byteCount: Int { 292 }
        /// Values per block.
        @inlinable public static var elementCount: Int { 256 }
        /// Byte offset of `d`.
        @inlinable public static var d: Int { 0 }
        /// Byte offset of `qs`.
        @inlinable public static var qs: Int { 4 }
        /// Byte offset of `bsums`.
        @inlinable public static var bsums: Int { 260 }
    }

    /// The eight 6-bit scales and eight 6-bit mins packed in the 12 `scales` bytes of a Q4_K or
    /// Q5_K block: bytes 0..<8 of the result are the scales, 8..<16 the mins.
    ///
    /// Same values as ggml's `get_scale_min_k4(j, ...)` for j = 0..<8, unpacked the way
    /// `ggml_vec_dot_q4_K_q8_K_generic` does it (the `utmp`/`kmask` word shuffle).
    @inlinable
    public static func unpackScaleMinK4(_ scales: UnsafeRawPointer) -> SIMD16<UInt8> {
        let kmask1: UInt32 = 0x3f3f_3f3f, kmask2: UInt32 = 0x0f0f_0f0f, kmask3: UInt32 = 0x0303_0303
        let u0 = UInt32(littleEndian: scales.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        let u1 = UInt32(littleEndian: scales.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        let u2 = UInt32(littleEndian: scales.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        let t3 = ((u2 >> 4) & kmask2) | (((u1 >> 6) & kmask3) << 4)
        let t2 = u1 & kmask1
        let t1 = (u2 & kmask2) | (((u0 >> 6) & kmask3) << 4)
        let t0 = u0 & kmask1
        return unsafeBitCast(SIMD4<UInt32>(t0, t1, t2, t3), to: SIMD16<UInt8>.self)
    }

    /// The sixteen signed scales of a Q3_K block, already unbiased (`raw - 32`, in -32...31).
    ///
    /// Same values and unpacking as the `aux`/`kmask` shuffle of ggml's `dequantize_row_q3_K`.
    @inlinable
    public static func unpackScalesQ3K(_ scales: UnsafeRawPointer) -> SIMD16<Int8> {
        let kmask1: UInt32 = 0x0303_0303, kmask2: UInt32 = 0x0f0f_0f0f
        let a0 = UInt32(littleEndian: scales.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        let a1 = UInt32(littleEndian: scales.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        let tmp = UInt32(littleEndian: scales.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        let r2 = ((a0 >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4)
        let r3 = ((a1 >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4)
        let r0 = (a0 & kmask2) | (((tmp >> 0) & kmask1) << 4)
        let r1 = (a1 & kmask2) | (((tmp >> 2) & kmask1) << 4)
        let raw = unsafeBitCast(SIMD4<UInt32>(r0, r1, r2, r3), to: SIMD16<Int8>.self)
        return raw &- 32
    }
}

// MARK: - Half-precision scalars

/// Widens an IEEE binary16 value (bit pattern) to Float, exactly.
///
/// Port of ggml's `ggml_compute_fp16_to_fp32` (ggml-impl.h): branch-free integer and float
/// operations, so loops over it vectorize, unlike Swift's `Float(Float16)` which on x86-64
/// Linux without F16C is a `__extendhfsf2` call per value. Every finite value, infinity and
/// NaN payload converts exactly (tests check all 65,536 inputs against `Float16`).
@inlinable @inline(__always)
public func fp16ToFloat(_ h: UInt16) -> Float {
    let w = UInt32(h) << 16
    let sign = w & 0x8000_0000
    let twoW = w &+ w
    let expOffset: UInt32 = 0xE0 << 23
    let expScale = Float(bitPattern: 0x0780_0000)  // 0x1.0p-112
    let normalized = Float(bitPattern: (twoW >> 4) &+ expOffset) * expScale
    let magicMask: UInt32 = 126 << 23
    let denormalized = Float(bitPattern: (twoW >> 17) | magicMask) - 0.5
    let denormalizedCutoff: UInt32 = 1 << 27
    let bits = sign | (twoW < denormalizedCutoff ? denormalized.bitPattern : normalized.bitPattern)
    return Float(bitPattern: bits)
}

/// Rounds a Float to IEEE binary16 (bit pattern), round-to-nearest-even.
///
/// Port of ggml's `ggml_compute_fp32_to_fp16` (`GGML_FP32_TO_FP16`, ggml-impl.h): overflow
/// gives ±infinity, subnormal results are rounded correctly, and every NaN becomes the
/// canonical quiet NaN `0x7E00` with its sign kept (the payload is dropped, as in ggml).
/// For non-NaN inputs this equals `Float16(f).bitPattern`.
@inlinable @inline(__always)
public func floatToFP16(_ f: Float) -> UInt16 {
    let scaleToInf = Float(bitPattern: 0x7780_0000)   // 0x1.0p+112
    let scaleToZero = Float(bitPattern: 0x0880_0000)  // 0x1.0p-110
    var base = (f.magnitude * scaleToInf) * scaleToZero
    let w = f.bitPattern
    let shl1W = w &+ w
    let sign = w & 0x8000_0000
    var bias = shl1W & 0xFF00_0000
    if bias < 0x7100_0000 { bias = 0x7100_0000 }
    base = Float(bitPattern: (bias >> 1) &+ 0x0780_0000) + base
    let bits = base.bitPattern
    let expBits = (bits >> 13) & 0x0000_7C00
    let mantissaBits = bits & 0x0000_0FFF
    let nonsign = expBits &+ mantissaBits
    return UInt16(truncatingIfNeeded: (sign >> 16) | (shl1W > 0xFF00_0000 ? 0x7E00 : nonsign))
}

/// Widens a bfloat16 value (bit pattern) to Float, exactly (ggml's `ggml_compute_bf16_to_fp32`).
@inlinable @inline(__always)
public func bf16ToFloat(_ h: UInt16) -> Float {
    Float(bitPattern: UInt32(h) << 16)
}

/// Rounds a Float to bfloat16 (bit pattern), round-to-nearest-even; NaNs are kept (top
/// payload bits) and forced quiet. Same as ggml's `ggml_compute_fp32_to_bf16`.
@inlinable @inline(__always)
public func floatToBF16(_ f: Float) -> UInt16 {
    let u = f.bitPattern
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return UInt16(truncatingIfNeeded: (u >> 16) | 64)
    }
    return UInt16(truncatingIfNeeded: (u &+ (0x7fff &+ ((u >> 16) & 1))) >> 16)
}
