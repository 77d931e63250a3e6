import SparrowFormats

/// How Q8_0 / Q8_1 activation quantization computes the inverse scale and rounds.
///
/// ggml has two Q8_0/Q8_1 quantizers that can disagree in rare cases (a product landing on
/// a .5 tie, or one ULP apart because of the different inverse scale):
public enum Q8Rounding: Sendable, Equatable {
    /// ggml's reference quantizers `quantize_row_q8_0_ref` / `quantize_row_q8_1_ref`
    /// (ggml-quants.c), also ggml-cpu's `*_generic` path: `d = amax / 127`,
    /// `id = d != 0 ? 1 / d : 0`, `q = roundf(x * id)` (ties away from zero).
    case reference
    /// ggml-cpu's x86 AVX/AVX2 `quantize_row_q8_0` / `quantize_row_q8_1`
    /// (ggml-cpu/arch/x86/quants.c): `id = amax != 0 ? 127 / amax : 0` and
    /// `_mm256_round_ps(_, _MM_ROUND_NEAREST)` (ties to even). Use it to compare against a
    /// stock llama.cpp x86 build.
    case x86SIMD
}

extension QuantKernels {
    /// Quantizes `count` floats (a multiple of 32) to Q8_0 blocks at `dst`
    /// (`count / 32 * 34` bytes), exactly like ggml's `quantize_row_q8_0_ref` (or, with
    /// `.x86SIMD`, its AVX2 `quantize_row_q8_0`). `dst` needs no alignment.
    public static func quantizeRowQ8_0(_ x: UnsafePointer<Float>, count: Int, into dst: UnsafeMutableRawPointer, rounding: Q8Rounding = .reference) {
        typealias B = QuantBlock.Q8_0
        for i in 0..<count / 32 {
            let xb = x + 32 * i, yb = dst + B.byteCount * i
            let (d, id) = q8Scale(xb, rounding)
            yb.storeBytes(of: floatToFP16(d).littleEndian, toByteOffset: B.d, as: UInt16.self)
            let qs = yb + B.qs
            if rounding == .reference {
                for j in 0..<32 { qs.storeBytes(of: roundHalfAway(xb[j] * id), toByteOffset: j, as: Int8.self) }
            } else {
                for j in 0..<32 { qs.storeBytes(of: roundHalfEven(xb[j] * id), toByteOffset: j, as: Int8.self) }
            }
        }
    }

    /// Quantizes `count` floats (a multiple of 32) to Q8_1 blocks at `dst`
    /// (`count / 32 * 36` bytes), exactly like ggml's `quantize_row_q8_1_ref` (or, with
    /// `.x86SIMD`, its AVX2 `quantize_row_q8_1`): Q8_0's quants plus `s = fp16(sum(q) * d)`.
    public static func quantizeRowQ8_1(_ x: UnsafePointer<Float>, count: Int, into dst: UnsafeMutableRawPointer, rounding: Q8Rounding = .reference) {
        typealias B = QuantBlock.Q8_1
        for i in 0..<count / 32 {
            let xb = x + 32 * i, yb = dst + B.byteCount * i
            let (d, id) = q8Scale(xb, rounding)
            yb.storeBytes(of: floatToFP16(d).littleEndian, toByteOffset: B.d, as: UInt16.self)
            let qs = yb + B.qs
            var sum: Int32 = 0
            for j in 0..<32 {
                let q = rounding == .reference ? roundHalfAway(xb[j] * id) : roundHalfEven(xb[j] * id)
                qs.storeBytes(of: q, toByteOffset: j, as: Int8.self)
                sum &+= Int32(q)
            }
            yb.storeBytes(of: floatToFP16(Float(sum) * d).littleEndian, toByteOffset: B.s, as: UInt16.self)
        }
    }

    /// Quantizes `count` floats (a multiple of 256) to Q8_K blocks at `dst`
    /// (`count / 256 * 292` bytes), exactly like ggml's `quantize_row_q8_K_ref` (which is also
    /// what ggml-cpu uses on x86): scale `-127 / max` where `max` is the signed value of largest
    /// magnitude, ties to even, clamp at 127, `d = 1 / iscale`, per-16 sums in `bsums`.
    /// An all-zero block gets `d = 0` and zero quants and sums (ggml leaves `bsums` unwritten;
    /// with `d = 0` they never reach a result).
    public static func quantizeRowQ8_K(_ x: UnsafePointer<Float>, count: Int, into dst: UnsafeMutableRawPointer) {
        typealias B = QuantBlock.Q8_K
        for i in 0..<count / 256 {
            let xb = x + 256 * i, yb = dst + B.byteCount * i
            var amax: Float = 0, maxValue: Float = 0
            for j in 0..<256 {
                let ax = xb[j].magnitude
                if ax > amax { amax = ax; maxValue = xb[j] }
            }
            let qs = yb + B.qs
            if amax == 0 {
                yb.storeBytes(of: Float(0).bitPattern, toByteOffset: B.d, as: UInt32.self)
                (yb + B.qs).initializeMemory(as: UInt8.self, repeating: 0, count: 256 + 32)
                continue
            }
            let iscale = -127 / maxValue
            for j in 0..<256 {
                let v = nearestInt(iscale * xb[j])
                qs.storeBytes(of: Int8(truncatingIfNeeded: v < 127 ? v : 127), toByteOffset: j, as: Int8.self)
            }
            for g in 0..<16 {
                var sum: Int32 = 0
                for l in 0..<16 { sum &+= Int32(qs.load(fromByteOffset: 16 * g + l, as: Int8.self)) }
                yb.storeBytes(of: Int16(truncatingIfNeeded: sum).littleEndian, toByteOffset: B.bsums + 2 * g, as: Int16.self)
            }
            yb.storeBytes(of: (1 / iscale).bitPattern.littleEndian, toByteOffset: B.d, as: UInt32.self)
        }
    }
}

/// `d` and the inverse scale `id` of one Q8_0/Q8_1 block, as the chosen ggml quantizer computes them.
@inline(__always)
private func q8Scale(_ xb: UnsafePointer<Float>, _ rounding: Q8Rounding) -> (d: Float, id: Float) {
    var amax: Float = 0
    for j in 0..<32 {
        let a = xb[j].magnitude
        amax = amax > a ? amax : a  // ggml's MAX(amax, fabsf(v))
    }
    let d = amax / 127
    switch rounding {
    case .reference: return (d, d != 0 ? 1 / d : 0)
    case .x86SIMD: return (d, amax != 0 ? 127 / amax : 0)
    }
}

/// C's `roundf` (ties away from zero) to Int8, without a libm call. Inputs are within ±127.x
/// for any finite block; anything else (NaN, overflow — undefined behaviour in ggml) is
/// clamped instead of trapping.
@inline(__always)
private func roundHalfAway(_ v: Float) -> Int8 {
    guard v > -128.5, v < 127.5 else { return v > 0 ? 127 : (v < 0 ? -128 : 0) }
    let t = Int32(v)          // truncation toward zero
    let f = v - Float(t)      // exact: the fractional part
    return Int8(truncatingIfNeeded: t &+ (f >= 0.5 ? 1 : 0) &- (f <= -0.5 ? 1 : 0))
}

/// Round half to even (the x86 `_MM_ROUND_NEAREST` mode) to Int8, with the same clamping.
@inline(__always)
private func roundHalfEven(_ v: Float) -> Int8 {
    guard v > -128.5, v < 127.5 else { return v > 0 ? 127 : (v < 0 ? -128 : 0) }
    return Int8(truncatingIfNeeded: nearestInt(v))
}

/// ggml's `nearest_int` (ggml-quants.c): adds 1.5 * 2^23 so the FPU rounds to nearest even,
/// then reads the integer out of the mantissa. Valid for |v| <= 4194303; never traps.
@inline(__always)
private func nearestInt(_ v: Float) -> Int32 {
    let val = v + 12_582_912
    return Int32(bitPattern: val.bitPattern & 0x007f_ffff) &- 0x0040_0000
}
