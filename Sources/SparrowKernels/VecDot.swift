import SparrowFormats

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

    /// Quantizes `count` f32 activations into `dst` in the format `dot` expects for `weight`
    /// (`activationRowBytes(for: weight, count: count)` bytes, no alignment needed), with
    /// ggml's reference quantizers. `count` must be a multiple of the weight's block size;
    /// for an unsupported weight type nothing is written.
    public static func quantizeActivations(_ x: UnsafePointer<Float>, count: Int, for weight: GGMLType, into dst: UnsafeMutableRawPointer) {
        guard weight.isSupported else { return }
        switch activationType(for: weight) {
        case .q8_0: quantizeRowQ8_0(x, count: count, into: dst)
        case .q8_1: quantizeRowQ8_1(x, count: count, into: dst)
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

// MARK: - Helpers shared with VecDotK.swift

@inline(__always)
func loadHalf(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
    fp16ToFloat(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
}

/// 16 signed bytes widened to Int16 lanes.
@inline(__always)
func loadI8x16(_ p: UnsafeRawPointer, _ offset: Int) -> SIMD16<Int16> {
    SIMD16<Int16>(truncatingIfNeeded: p.loadUnaligned(fromByteOffset: offset, as: SIMD16<Int8>.self))
}

/// 16 unsigned bytes.
@inline(__always)
func loadU8x16(_ p: UnsafeRawPointer, _ offset: Int) -> SIMD16<UInt8> {
    p.loadUnaligned(fromByteOffset: offset, as: SIMD16<UInt8>.self)
}

/// Sum of lane products, widened to Int32 before adding (each product fits Int16).
@inline(__always)
func dotI16(_ a: SIMD16<Int16>, _ b: SIMD16<Int16>) -> Int32 {
    (SIMD16<Int32>(truncatingIfNeeded: a) &* SIMD16<Int32>(truncatingIfNeeded: b)).wrappedSum()
}

// MARK: - 32-value blocks

// Mirrors ggml_vec_dot_q4_0_q8_0_generic: sumf += sumi * dx * dy, evaluated (sumi * dx) * dy.
private func dotQ4_0(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
    typealias X = QuantBlock.Q4_0
    typealias Y = QuantBlock.Q8_0
    var sumf: Float = 0
    for i in 0..<blocks {
        let xb = x + i * X.byteCount, yb = y + i * Y.byteCount
        let q = loadU8x16(xb, X.qs)
        let lo = SIMD16<Int16>(truncatingIfNeeded: q & 0x0F) &- 8
        let hi = SIMD16<Int16>(truncatingIfNeeded: q &>> 4) &- 8
        let sumi = dotI16(lo, loadI8x16(yb, Y.qs)) &+ dotI16(hi, loadI8x16(yb, Y.qs + 16))
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
        let q = loadU8x16(xb, X.qs)
        let lo = SIMD16<Int16>(truncatingIfNeeded: q & 0x0F)
        let hi = SIMD16<Int16>(truncatingIfNeeded: q &>> 4)
        let sumi = dotI16(lo, loadI8x16(yb, Y.qs)) &+ dotI16(hi, loadI8x16(yb, Y.qs + 16))
        sumf += (loadHalf(xb, X.d) * loadHalf(yb, Y.d)) * Float(sumi) + loadHalf(xb, X.m) * loadHalf(yb, Y.s)
    }
    return sumf
}

/// The 5th bits of a Q5 block as 0x10 per lane: lanes 0..<16 from qh bits 0..<16, lanes
/// 16..<32 (returned second) from bits 16..<32.
@inline(__always)
private func q5HighBits(_ qh: UInt32) -> (SIMD16<UInt8>, SIMD16<UInt8>) {
    let bit = SIMD16<UInt16>(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
    let lo = SIMD16<UInt16>(repeating: UInt16(truncatingIfNeeded: qh)) & bit
    let hi = SIMD16<UInt16>(repeating: UInt16(truncatingIfNeeded: qh >> 16)) & bit
    let zero = SIMD16<UInt16>.zero
    return (SIMD16<UInt8>(truncatingIfNeeded: zero.replacing(with: 0x10, where: lo .!= 0)),
            SIMD16<UInt8>(truncatingIfNeeded: zero.replacing(with: 0x10, where: hi .!= 0)))
}

// Mirrors ggml_vec_dot_q5_0_q8_0_generic: sumf += (dx * dy) * sumi.
private func dotQ5_0(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
    typealias X = QuantBlock.Q5_0
    typealias Y = QuantBlock.Q8_0
    var sumf: Float = 0
    for i in 0..<blocks {
        let xb = x + i * X.byteCount, yb = y + i * Y.byteCount
        let (h0, h1) = q5HighBits(UInt32(littleEndian: xb.loadUnaligned(fromByteOffset: X.qh, as: UInt32.self)))
        let q = loadU8x16(xb, X.qs)
        let lo = SIMD16<Int16>(truncatingIfNeeded: (q & 0x0F) | h0) &- 16
        let hi = SIMD16<Int16>(truncatingIfNeeded: (q &>> 4) | h1) &- 16
        let sumi = dotI16(lo, loadI8x16(yb, Y.qs)) &+ dotI16(hi, loadI8x16(yb, Y.qs + 16))
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
        let (h0, h1) = q5HighBits(UInt32(littleEndian: xb.loadUnaligned(fromByteOffset: X.qh, as: UInt32.self)))
        let q = loadU8x16(xb, X.qs)
        let lo = SIMD16<Int16>(truncatingIfNeeded: (q & 0x0F) | h0)
        let hi = SIMD16<Int16>(truncatingIfNeeded: (q &>> 4) | h1)
        let sumi = dotI16(lo, loadI8x16(yb, Y.qs)) &+ dotI16(hi, loadI8x16(yb, Y.qs + 16))
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
        let sumi = dotI16(loadI8x16(xb, X.qs), loadI8x16(yb, Y.qs)) &+ dotI16(loadI8x16(xb, X.qs + 16), loadI8x16(yb, Y.qs + 16))
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
