#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SparrowFormats
#if arch(x86_64)
import SparrowKernelsAVX2
#endif

/// Quantized dot products between one weight row and one activation row, ggml style.
///
/// ggml's CPU matmul never multiplies a quantized weight by f32 activations directly: it
/// first quantizes the activations to the weight type's `vec_dot_type` (type_traits_cpu in
/// ggml-cpu.c) and then runs an integer dot product per block. These functions do the same,
/// following the portable `ggml_vec_dot_*_generic` routines (ggml-cpu/quants.c, and
/// `ggml_vec_dot_f32/f16/bf16` in ggml-cpu/vec.cpp without SIMD): the integer sums are
/// exact, and the float scale products and accumulation happen in ggml's order, so a result
/// is bit-identical to ggml's generic path. (ggml's AVX2 paths sum in a different order and
/// can differ in the last bits.)
///
/// Typical use, once per matmul:
/// ```swift
/// let bytes = QuantKernels.activationRowBytes(for: w.type, count: cols)
/// QuantKernels.quantizeActivations(x, count: cols, for: w.type, into: act)
/// for r in 0..<rows { y[r] = QuantKernels.dot(w.type, row: w.data + r * rowBytes, activations: act, count: cols) }
/// ```
public enum QuantKernels {
    /// The activation format ggml pairs with a weight type (its `vec_dot_type`): Q8_0 for
    /// Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for the K-quants, and the type itself for
    /// F32, F16 and BF16. Types Sparrow cannot compute with map to ggml's pairing where ggml
    /// has one and to F32 otherwise; check `GGMLType.isSupported` first.
    public static func activationType(for weight: GGMLType) -> GGMLType {
        switch weight {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .q4_0, .q5_0, .q8_0, .iq4_nl, .mxfp4: return .q8_0
        case .q4_1, .q5_1, .q8_1: return .q8_1
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .iq2_xxs, .iq2_xs, .iq3_xxs, .iq1_s, .iq3_s, .iq2_s, .iq4_xs, .iq1_m,
             .tq1_0, .tq2_0:
            return .q8_K
        case .q8_K, .i8, .i16, .i32, .i64, .f64: return .f32
        }
    }

    /// Bytes needed to hold `n` activations quantized for `weight` (`n` a multiple of the
    /// weight's block size, which `GGMLType.rowBytes` checks when a weight is loaded).
    public static func activationRowBytes(for weight: GGMLType, count n: Int) -> Int {
        let a = activationType(for: weight)
        return n / a.blockSize * a.typeSize
    }

    /// How `quantizeActivations` rounds Q8_0/Q8_1 blocks. On x86-64 the default follows ggml's
    /// AVX/AVX2 quantizer (what llama.cpp runs on such CPUs), so ties round as llama.cpp's do;
    /// elsewhere ggml's reference quantizer.
    nonisolated(unsafe) public static var activationRounding: Q8Rounding = {
        #if arch(x86_64)
        return .x86SIMD
        #else
        return .reference
        #endif
    }()

    /// Quantizes `count` f32 activations into `dst` in the format `dot` expects for `weight`
    /// (`activationRowBytes(for: weight, count: count)` bytes, no alignment needed), rounding
    /// per `activationRounding`. `count` must be a multiple of the weight's block size;
    /// for an unsupported weight type nothing is written.
    public static func quantizeActivations(_ x: UnsafePointer<Float>, count: Int, for weight: GGMLType, into dst: UnsafeMutableRawPointer) {
        guard weight.isSupported else { return }
        #if arch(x86_64)
        if useAVX2, activationType(for: weight) == .q8_K {
            AVX2Dot.quantizeQ8_K(x, count: count, into: dst)
            return
        }
        if useAVX2, activationRounding == .x86SIMD {
            switch activationType(for: weight) {
            case .q8_0: AVX2Dot.quantizeQ8_0(x, count: count, into: dst); return
            case .q8_1: AVX2Dot.quantizeQ8_1(x, count: count, into: dst); return
            default: break
            }
        }
        #endif
        switch activationType(for: weight) {
        case .q8_0: quantizeRowQ8_0(x, count: count, into: dst, rounding: activationRounding)
        case .q8_1: quantizeRowQ8_1(x, count: count, into: dst, rounding: activationRounding)
        case .q8_K: quantizeRowQ8_K(x, count: count, into: dst)
        case .f16: HalfRows.toF16(x, count: count, into: dst)
        case .bf16: HalfRows.toBF16(x, count: count, into: dst)
        default: dst.copyMemory(from: x, byteCount: count * 4)
        }
    }

    /// The dot product of one weight row of type `weight` with `count` activations already
    /// quantized by `quantizeActivations(_:count:for:into:)`, as ggml's `ggml_vec_dot_*`
    /// generic routine for that pair computes it. Neither pointer needs alignment.
    ///
    /// Returns NaN for a weight type Sparrow does not support (check `isSupported` when
    /// loading). `count` must be a multiple of the weight's block size; a partial last block
    /// is ignored.
    public static func dot(_ weight: GGMLType, row: UnsafeRawPointer, activations: UnsafeRawPointer, count: Int) -> Float {
        #if arch(x86_64)
        if useAVX2 {
            switch weight {
            case .q4_K: return AVX2Dot.q4_KFolded(row, activations, blocks: count / 256)
            case .q6_K: return AVX2Dot.q6_K(row, activations, blocks: count / 256)
            case .q8_0: return AVX2Dot.q8_0(row, activations, blocks: count / 32)
            case .q5_0: return AVX2Dot.q5_0(row, activations, blocks: count / 32)
            case .q4_1: return AVX2Dot.q4_1(row, activations, blocks: count / 32)
            case .q5_K: return AVX2Dot.q5_K(row, activations, blocks: count / 256)
            case .f16: return AVX2Vector.dotF16F16(row, activations, count: count)
            case .bf16: return AVX2Vector.dotBF16BF16(row, activations, count: count)
            case .f32:
                return AVX2Vector.dotF32(row.assumingMemoryBound(to: Float.self), activations.assumingMemoryBound(to: Float.self), count: count)
            default: break
            }
        }
        #endif
        return dotGeneric(weight, row: row, activations: activations, count: count)
    }

    /// True when `dot` uses the AVX2/FMA kernels (ggml's x86 order, last-bit differences from
    /// the generic routines) for Q4_K, Q5_K, Q6_K, Q8_0, Q5_0, Q4_1, F16, BF16 and F32, and
    /// `WeightMatrix` its tile kernels (also Q4_0 and Q5_1): an x86-64 CPU with AVX2, FMA
    /// and F16C, unless the environment sets `SPARROW_NO_SIMD=1`.
    public static let useAVX2: Bool = {
        #if arch(x86_64)
        if let v = getenv("SPARROW_NO_SIMD"), String(cString: v) == "1" { return false }
        return CPUFeatures.hasAVX2FMAF16C
        #else
        return false
        #endif
    }()

    /// True when the row-interleaved Q5_0/Q8_0 kernels and the Q4_K/Q6_K group kernels use
    /// `vpdpbusd` (`SparrowKernelsVNNI`, the same results): `useAVX2` and a CPU with
    /// AVX512-VNNI, unless `SPARROW_NO_VNNI=1`.
    public static let useVNNI: Bool = {
        #if arch(x86_64)
        if let v = getenv("SPARROW_NO_VNNI"), String(cString: v) == "1" { return false }
        return useAVX2 && CPUFeatures.hasAVX512VNNI
        #else
        return false
        #endif
    }()

    /// `dot` through the portable scalar ports only, bit-identical to ggml's
    /// `ggml_vec_dot_*_generic` whatever the CPU.
    public static func dotGeneric(_ weight: GGMLType, row: UnsafeRawPointer, activations: UnsafeRawPointer, count: Int) -> Float {
        switch weight {
        case .q4_0: return dotQ4_0(row, activations, blocks: count / 32)
        case .q4_1: return dotQ4_1(row, activations, blocks: count / 32)
        case .q5_0: return dotQ5_0(row, activations, blocks: count / 32)
        case .q5_1: return dotQ5_1(row, activations, blocks: count / 32)
        case .q8_0: return dotQ8_0(row, activations, blocks: count / 32)
        case .q2_K: return dotQ2_K(row, activations, blocks: count / 256)
        case .q3_K: return dotQ3_K(row, activations, blocks: count / 256)
        case .q4_K: return dotQ4_K(row, activations, blocks: count / 256)
        case .q5_K: return dotQ5_K(row, activations, blocks: count / 256)
        case .q6_K: return dotQ6_K(row, activations, blocks: count / 256)
        case .f32: return dotF32(row, activations, count: count)
        case .f16: return dotF16(row, activations, count: count)
        case .bf16: return dotBF16(row, activations, count: count)
        default: return .nan
        }
    }
}

/// x86 feature detection without cpuid intrinsics (Swift cannot import cpuid.h's macros):
/// Linux's /proc/cpuinfo flags (the kernel drops AVX flags when the OS does not save YMM
/// state, AVX-512 flags when it does not save ZMM and mask state), Darwin's hw.optional sysctls.
enum CPUFeatures {
    static let hasAVX2FMAF16C: Bool = {
        #if os(Linux)
        return ["avx2", "fma", "f16c"].allSatisfy(linuxFlags.contains)
        #elseif canImport(Darwin)
        return has("hw.optional.avx2_0") && has("hw.optional.fma") && has("hw.optional.f16c")
        #else
        return false
        #endif
    }()

    /// AVX512-VNNI with 256-bit (VL) encodings, what `SparrowKernelsVNNI` is compiled for.
    static let hasAVX512VNNI: Bool = {
        #if os(Linux)
        return ["avx512f", "avx512bw", "avx512vl", "avx512_vnni"].allSatisfy(linuxFlags.contains)
        #elseif canImport(Darwin)
        return has("hw.optional.avx512f") && has("hw.optional.avx512bw") && has("hw.optional.avx512vl")
            && has("hw.optional.avx512vnni")
        #else
        return false
        #endif
    }()

    #if os(Linux)
    /// The first "flags" line of /proc/cpuinfo.
    static let linuxFlags: Set<Substring> = {
        guard let f = fopen("/proc/cpuinfo", "r") else { return [] }
        defer { fclose(f) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var cap = 0
        defer { free(line) }
        while getline(&line, &cap, f) > 0 {
            let s = String(cString: line!)
            guard s.hasPrefix("flags") else { continue }
            return Set(s.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == ":" }))
        }
        return []
    }()
    #elseif canImport(Darwin)
    static func has(_ name: String) -> Bool {
        var v: Int32 = 0
        var size = MemoryLayout<Int32>.size
        return sysctlbyname(name, &v, &size, nil, 0) == 0 && v != 0
    }
    #endif
}

// MARK: - Helpers shared with VecDotK.swift
//
// Everything works on eight-lane vectors, and lane-type conversions are spelled out lane by
// lane: LLVM folds those into two or three SSE2 instructions, while Swift's generic
// `init(truncatingIfNeeded:)` / `wrappedSum()` on SIMD types are often left as out-of-line
// generic calls that cost more than the arithmetic. Products of two 8-bit quants fit Int16
// and are widened to Int32 before any sum that could overflow.

@inline(__always)
func loadHalf(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
    fp16ToFloat(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
}

/// Eight signed bytes widened to Int16 lanes.
@inline(__always)
func loadI8x8(_ p: UnsafeRawPointer, _ offset: Int) -> SIMD8<Int16> {
    let v = p.loadUnaligned(fromByteOffset: offset, as: SIMD8<Int8>.self)
    return SIMD8(Int16(v[0]), Int16(v[1]), Int16(v[2]), Int16(v[3]), Int16(v[4]), Int16(v[5]), Int16(v[6]), Int16(v[7]))
}

/// Eight unsigned bytes.
@inline(__always)
func loadU8x8(_ p: UnsafeRawPointer, _ offset: Int) -> SIMD8<UInt8> {
    p.loadUnaligned(fromByteOffset: offset, as: SIMD8<UInt8>.self)
}

/// Unsigned bytes to Int16 lanes.
@inline(__always)
func i16(_ v: SIMD8<UInt8>) -> SIMD8<Int16> {
    SIMD8(Int16(v[0]), Int16(v[1]), Int16(v[2]), Int16(v[3]), Int16(v[4]), Int16(v[5]), Int16(v[6]), Int16(v[7]))
}

/// Int16 lanes sign-extended to Int32.
@inline(__always)
func widen(_ v: SIMD8<Int16>) -> SIMD8<Int32> {
    SIMD8(Int32(v[0]), Int32(v[1]), Int32(v[2]), Int32(v[3]), Int32(v[4]), Int32(v[5]), Int32(v[6]), Int32(v[7]))
}

/// Int32 lanes converted to Float (round to nearest, as C's int → float).
@inline(__always)
func toFloat(_ v: SIMD8<Int32>) -> SIMD8<Float> {
    SIMD8(Float(v[0]), Float(v[1]), Float(v[2]), Float(v[3]), Float(v[4]), Float(v[5]), Float(v[6]), Float(v[7]))
}

/// Sum of the eight lanes (exact integer arithmetic, so the order is free).
@inline(__always)
func horizontalSum(_ v: SIMD8<Int32>) -> Int32 {
    let h = v.lowHalf &+ v.highHalf
    let q = h.lowHalf &+ h.highHalf
    return q[0] &+ q[1]
}

/// Bit `i` of `bits` for the eight lanes `i = 0..<8`, as `value` (a power of two) or 0.
/// Scalar bit tricks on one 64-bit word: replicate the byte, keep bit i in byte i, carry it
/// to the byte's top bit with +0x7F, move it to `value`'s position.
@inline(__always)
func spreadBits(_ bits: UInt8, as value: UInt8) -> SIMD8<UInt8> {
    let kept = (UInt64(bits) &* 0x0101_0101_0101_0101) & 0x8040_2010_0804_0201
    let top = (kept &+ 0x7F7F_7F7F_7F7F_7F7F) & 0x8080_8080_8080_8080
    return unsafeBitCast(top >> UInt64(7 - value.trailingZeroBitCount), to: SIMD8<UInt8>.self)
}

// MARK: - 32-value blocks

/// Σ q·q8 over one 32-value block, given the weight quants of each eight-lane group.
@inline(__always)
private func blockSum(_ y: UnsafeRawPointer, _ q: (SIMD8<Int16>, SIMD8<Int16>, SIMD8<Int16>, SIMD8<Int16>)) -> Int32 {
    let acc = widen(q.0 &* loadI8x8(y, 0)) &+ widen(q.1 &* loadI8x8(y, 8))
        &+ widen(q.2 &* loadI8x8(y, 16)) &+ widen(q.3 &* loadI8x8(y, 24))
    return horizontalSum(acc)
}

/// The four eight-lane groups of a 4-bit block (weights j and j + 16 share byte j), plus
/// `high` (5th bits, already shifted to 0x10) and minus `offset`.
@inline(__always)
private func nibbleGroups(_ qs: UnsafeRawPointer, high: (SIMD8<UInt8>, SIMD8<UInt8>, SIMD8<UInt8>, SIMD8<UInt8>), offset: Int16)
    -> (SIMD8<Int16>, SIMD8<Int16>, SIMD8<Int16>, SIMD8<Int16>) {
    let a = loadU8x8(qs, 0), b = loadU8x8(qs, 8)
    return (i16((a & 0x0F) | high.0) &- offset, i16((b & 0x0F) | high.1) &- offset,
            i16((a &>> 4) | high.2) &- offset, i16((b &>> 4) | high.3) &- offset)
}

/// The 5th bits of a Q5 block (u32 `qh`, bit j for weight j) as 0x10 per lane, per group.
@inline(__always)
private func q5High(_ qh: UInt32) -> (SIMD8<UInt8>, SIMD8<UInt8>, SIMD8<UInt8>, SIMD8<UInt8>) {
    (spreadBits(UInt8(truncatingIfNeeded: qh), as: 0x10), spreadBits(UInt8(truncatingIfNeeded: qh >> 8), as: 0x10),
     spreadBits(UInt8(truncatingIfNeeded: qh >> 16), as: 0x10), spreadBits(UInt8(truncatingIfNeeded: qh >> 24), as: 0x10))
}

private let noHigh = (SIMD8<UInt8>.zero, SIMD8<UInt8>.zero, SIMD8<UInt8>.zero, SIMD8<UInt8>.zero)

// Mirrors ggml_vec_dot_q4_0_q8_0_generic: sumf += sumi * dx * dy, evaluated (sumi * dx) * dy.
private func dotQ4_0(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
    typealias X = QuantBlock.Q4_0
    typealias Y = QuantBlock.Q8_0
    var sumf: Float = 0
    for i in 0..<blocks {
        let xb = x + i * X.byteCount, yb = y + i * Y.byteCount
        let sumi = blockSum(yb + Y.qs, nibbleGroups(xb + X.qs, high: noHigh, offset: 8))
        sumf += Float(sumi) * loadHalf(xb, X.d) * loadHalf(yb, Y.d)
    }
    return sumf
}

// Mirrors ggml_vec_dot_q4_1_q8_1_generic: sumf += (dx * dy) * sumi + mx * sy.
private func dotQ4_1(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
    typealias X = QuantBlock.Q4_1
    typealias Y = QuantBlock.Q8_1
    var sumf: Float = 0
    for i in 0..<blocks {
        let xb = x + i * X.byteCount, yb = y + i * Y.byteCount
        let sumi = blockSum(yb + Y.qs, nibbleGroups(xb + X.qs, high: noHigh, offset: 0))
        sumf += (loadHalf(xb, X.d) * loadHalf(yb, Y.d)) * Float(sumi) + loadHalf(xb, X.m) * loadHalf(yb, Y.s)
    }
    return sumf
}

// Mirrors ggml_vec_dot_q5_0_q8_0_generic: sumf += (dx * dy) * sumi.
private func dotQ5_0(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
    typealias X = QuantBlock.Q5_0
    typealias Y = QuantBlock.Q8_0
    var sumf: Float = 0
    for i in 0..<blocks {
        let xb = x + i * X.byteCount, yb = y + i * Y.byteCount
        let high = q5High(UInt32(littleEndian: xb.loadUnaligned(fromByteOffset: X.qh, as: UInt32.self)))
        let sumi = blockSum(yb + Y.qs, nibbleGroups(xb + X.qs, high: high, offset: 16))
        sumf += (loadHalf(xb, X.d) * loadHalf(yb, Y.d)) * Float(sumi)
    }
    return sumf
}

// Mirrors ggml_vec_dot_q5_1_q8_1_generic: sumf += (dx * dy) * sumi + mx * sy.
private func dotQ5_1(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
    typealias X = QuantBlock.Q5_1
    typealias Y = QuantBlock.Q8_1
    var sumf: Float = 0
    for i in 0..<blocks {
        let xb = x + i * X.byteCount, yb = y + i * Y.byteCount
        let high = q5High(UInt32(littleEndian: xb.loadUnaligned(fromByteOffset: X.qh, as: UInt32.self)))
        let sumi = blockSum(yb + Y.qs, nibbleGroups(xb + X.qs, high: high, offset: 0))
        sumf += (loadHalf(xb, X.d) * loadHalf(yb, Y.d)) * Float(sumi) + loadHalf(xb, X.m) * loadHalf(yb, Y.s)
    }
    return sumf
}

// Mirrors ggml_vec_dot_q8_0_q8_0_generic: sumf += sumi * (dx * dy).
private func dotQ8_0(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
    typealias X = QuantBlock.Q8_0
    typealias Y = QuantBlock.Q8_0
    var sumf: Float = 0
    for i in 0..<blocks {
        let xb = x + i * X.byteCount, yb = y + i * Y.byteCount
        let q = xb + X.qs
        let sumi = blockSum(yb + Y.qs, (loadI8x8(q, 0), loadI8x8(q, 8), loadI8x8(q, 16), loadI8x8(q, 24)))
        sumf += Float(sumi) * (loadHalf(xb, X.d) * loadHalf(yb, Y.d))
    }
    return sumf
}

// MARK: - Float rows

// Mirrors the scalar branch of ggml_vec_dot_f32 (vec.cpp): float products summed in double.
private func dotF32(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, count: Int) -> Float {
    var sum: Double = 0
    for i in 0..<count {
        sum += Double(x.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) * y.loadUnaligned(fromByteOffset: 4 * i, as: Float.self))
    }
    return Float(sum)
}

// Mirrors the scalar branch of ggml_vec_dot_f16: widened products summed in double.
private func dotF16(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, count: Int) -> Float {
    var sum: Double = 0
    for i in 0..<count {
        sum += Double(loadHalf(x, 2 * i) * loadHalf(y, 2 * i))
    }
    return Float(sum)
}

// Mirrors the scalar tail of ggml_vec_dot_bf16: widened products summed in double.
private func dotBF16(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, count: Int) -> Float {
    var sum: Double = 0
    for i in 0..<count {
        let a = bf16ToFloat(UInt16(littleEndian: x.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
        let b = bf16ToFloat(UInt16(littleEndian: y.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
        sum += Double(a * b)
    }
    return Float(sum)
}
