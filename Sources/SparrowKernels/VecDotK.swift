import SparrowFormats

// K-quant × Q8_K dot products, mirroring ggml_vec_dot_q{2..6}_K_q8_K_generic (ggml-cpu/quants.c).
//
// The Q3_K..Q6_K generic routines accumulate in eight lanes: `aux32[l]` collects, over a
// block, scale × q × q8 for every weight whose index is ≡ l (mod 8); then
// `sums[l] += d * aux32[l]` per block, and at the end `sumf += sums[0] + ... + sums[7]` in
// lane order. The integer sums are exact in any order, but the float steps are not, so the
// lanes are kept: here they are SIMD8 vectors (lane l = weight index mod 8) and each group of
// eight weights is one vector operation. The per-lane products fit Int16 (|q| <= 32,
// |q8| <= 128) before being widened for the scale multiply, as in ggml's aux16/aux32.

@inline(__always)
private func q8kScale(_ y: UnsafeRawPointer) -> Float {
    Float(bitPattern: UInt32(littleEndian: y.loadUnaligned(fromByteOffset: QuantBlock.Q8_K.d, as: UInt32.self)))
}

@inline(__always)
private func bsum(_ y: UnsafeRawPointer, _ j: Int) -> Int32 {
    Int32(Int16(littleEndian: y.loadUnaligned(fromByteOffset: QuantBlock.Q8_K.bsums + 2 * j, as: Int16.self)))
}

@inline(__always)
private func scale(_ sc: UnsafeRawPointer, _ j: Int) -> Int32 { Int32(sc.load(fromByteOffset: j, as: Int8.self)) }

/// `sumf + sums[0] + ... + sums[7]`, left to right, as the generic routines finish.
@inline(__always)
private func finishLanes(_ sumf: Float, _ sums: SIMD8<Float>) -> Float {
    var s = sumf
    for l in 0..<8 { s += sums[l] }
    return s
}

// Mirrors ggml_vec_dot_q2_K_q8_K_generic: integer sums only, then
// sumf += dall * isum - dmin * summs with dall = y.d * x.d, dmin = y.d * x.dmin.
// (Per group of 16: scale (<= 15) * Σ q2 (<= 3) * q8 fits Int16 before widening.)
func dotQ2_K(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
    typealias X = QuantBlock.Q2_K
    typealias Y = QuantBlock.Q8_K
    var sumf: Float = 0
    for i in 0..<blocks {
        let xb = x + i * X.byteCount, yb = y + i * Y.byteCount
        let sc = xb + X.scales
        var summs: Int32 = 0
        for j in 0..<16 { summs &+= bsum(yb, j) &* Int32(sc.load(fromByteOffset: j, as: UInt8.self) >> 4) }
        let yd = q8kScale(yb)
        let dall = yd * loadHalf(xb, X.d)
        let dmin = yd * loadHalf(xb, X.dmin)
        var acc = SIMD8<Int32>.zero
        for n in 0..<2 {
            let q2 = xb + X.qs + 32 * n
            let g0 = loadU8x8(q2, 0), g1 = loadU8x8(q2, 8), g2 = loadU8x8(q2, 16), g3 = loadU8x8(q2, 24)
            for j in 0..<4 {
                let shift = UInt8(2 * j)
                let q8 = Y.qs + 128 * n + 32 * j
                let s0 = Int16(sc.load(fromByteOffset: 8 * n + 2 * j, as: UInt8.self) & 0xF)
                let s1 = Int16(sc.load(fromByteOffset: 8 * n + 2 * j + 1, as: UInt8.self) & 0xF)
                let pa = i16((g0 &>> shift) & 3) &* loadI8x8(yb, q8) &+ i16((g1 &>> shift) & 3) &* loadI8x8(yb, q8 + 8)
                let pb = i16((g2 &>> shift) & 3) &* loadI8x8(yb, q8 + 16) &+ i16((g3 &>> shift) & 3) &* loadI8x8(yb, q8 + 24)
                acc &+= widen(pa &* s0) &+ widen(pb &* s1)
            }
        }
        sumf += dall * Float(horizontalSum(acc)) - dmin * Float(summs)
    }
    return sumf
}

// Mirrors ggml_vec_dot_q3_K_q8_K_generic: q = low2 - (hmask bit ? 0 : 4), lanes per 16-group
// scale (raw - 32), d = x.d * y.d. (|q * q8 * scale| <= 4 * 128 * 32 fits Int16.)
func dotQ3_K(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
    typealias X = QuantBlock.Q3_K
    typealias Y = QuantBlock.Q8_K
    var sums = SIMD8<Float>.zero
    for i in 0..<blocks {
        let xb = x + i * X.byteCount, yb = y + i * Y.byteCount
        let scales = QuantBlock.unpackScalesQ3K(xb + X.scales)
        var aux32 = SIMD8<Int32>.zero
        for g in 0..<4 {  // eight-byte column of qs/hmask: weights 8g..<8g+8 of each 32-run
            let hm = loadU8x8(xb, X.hmask + 8 * g)
            for n in 0..<2 {
                let q3 = loadU8x8(xb, X.qs + 32 * n + 8 * g)
                for s in 0..<4 {  // 2-bit plane s of chunk n: weights 128n + 32s + 8g + l
                    let high = ((hm &>> UInt8(4 * n + s)) & 1) &<< 2
                    let a = i16(((q3 &>> UInt8(2 * s)) & 3) | high) &- 4
                    let e = 128 * n + 32 * s + 8 * g
                    aux32 &+= widen(a &* loadI8x8(yb, Y.qs + e) &* Int16(scales[e / 16]))
                }
            }
        }
        let d = loadHalf(xb, X.d) * q8kScale(yb)
        sums += d * toFloat(aux32)
    }
    return finishLanes(0, sums)
}

// Mirrors ggml_vec_dot_q4_K_q8_K_generic: 6-bit scales/mins, lanes of scale * q4 * q8,
// d = x.d * y.d per block, and sumf -= (x.dmin * y.d) * sum(bsums * mins).
func dotQ4_K(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
    typealias X = QuantBlock.Q4_K
    typealias Y = QuantBlock.Q8_K
    var sumf: Float = 0
    var sums = SIMD8<Float>.zero
    for i in 0..<blocks {
        let xb = x + i * X.byteCount, yb = y + i * Y.byteCount
        let sm = QuantBlock.unpackScaleMinK4(xb + X.scales)
        var sumi: Int32 = 0
        for j in 0..<16 { sumi &+= bsum(yb, j) &* Int32(sm[8 + j / 2]) }
        var aux32 = SIMD8<Int32>.zero
        for k in 0..<4 {
            var accLo = SIMD8<Int16>.zero, accHi = SIMD8<Int16>.zero
            for g in 0..<4 {
                let q = loadU8x8(xb, X.qs + 32 * k + 8 * g)
                let lo = i16(q & 0x0F)
                let hi = i16(q &>> 4)
                accLo &+= lo &* loadI8x8(yb, Y.qs + 64 * k + 8 * g)
                accHi &+= hi &* loadI8x8(yb, Y.qs + 64 * k + 32 + 8 * g)
            }
            aux32 &+= Int32(sm[2 * k]) &* widen(accLo) &+ Int32(sm[2 * k + 1]) &* widen(accHi)
        }
        let yd = q8kScale(yb)
        let d = loadHalf(xb, X.d) * yd
        sums += d * toFloat(aux32)
        let dmin = loadHalf(xb, X.dmin) * yd
        sumf -= dmin * Float(sumi)
    }
    return finishLanes(sumf, sums)
}

// Mirrors ggml_vec_dot_q5_K_q8_K_generic: as Q4_K with a 5th bit (+16) from qh.
func dotQ5_K(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
    typealias X = QuantBlock.Q5_K
    typealias Y = QuantBlock.Q8_K
    var sumf: Float = 0
    var sums = SIMD8<Float>.zero
    for i in 0..<blocks {
        let xb = x + i * X.byteCount, yb = y + i * Y.byteCount
        let sm = QuantBlock.unpackScaleMinK4(xb + X.scales)
        var sumi: Int32 = 0
        for j in 0..<16 { sumi &+= bsum(yb, j) &* Int32(sm[8 + j / 2]) }
        var aux32 = SIMD8<Int32>.zero
        for k in 0..<4 {
            let shiftLo = UInt8(2 * k), shiftHi = UInt8(2 * k + 1)
            var accLo = SIMD8<Int16>.zero, accHi = SIMD8<Int16>.zero
            for g in 0..<4 {
                let q = loadU8x8(xb, X.qs + 32 * k + 8 * g)
                let h = loadU8x8(xb, X.qh + 8 * g)
                let lo = i16((q & 0x0F) | (((h &>> shiftLo) & 1) &<< 4))
                let hi = i16((q &>> 4) | (((h &>> shiftHi) & 1) &<< 4))
                accLo &+= lo &* loadI8x8(yb, Y.qs + 64 * k + 8 * g)
                accHi &+= hi &* loadI8x8(yb, Y.qs + 64 * k + 32 + 8 * g)
            }
            aux32 &+= Int32(sm[2 * k]) &* widen(accLo) &+ Int32(sm[2 * k + 1]) &* widen(accHi)
        }
        let yd = q8kScale(yb)
        let d = loadHalf(xb, X.d) * yd
        sums += d * toFloat(aux32)
        let dmin = loadHalf(xb, X.dmin) * yd
        sumf -= dmin * Float(sumi)
    }
    return finishLanes(sumf, sums)
}

// Mirrors ggml_vec_dot_q6_K_q8_K_generic: q = (ql nibble | qh pair << 4) - 32, lanes per
// int8 scale of each 16-group, d = x.d * y.d.
func dotQ6_K(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
    typealias X = QuantBlock.Q6_K
    typealias Y = QuantBlock.Q8_K
    var sums = SIMD8<Float>.zero
    for i in 0..<blocks {
        let xb = x + i * X.byteCount, yb = y + i * Y.byteCount
        let sc = xb + X.scales
        var aux32 = SIMD8<Int32>.zero
        for n in 0..<2 {
            for g in 0..<4 {  // weights 128n + 32t + 8g + l for the four quarters t
                let a = loadU8x8(xb, X.ql + 64 * n + 8 * g)
                let b = loadU8x8(xb, X.ql + 64 * n + 32 + 8 * g)
                let h = loadU8x8(xb, X.qh + 32 * n + 8 * g)
                let q0 = i16((a & 0xF) | ((h & 3) &<< 4)) &- 32
                let q1 = i16((b & 0xF) | (((h &>> 2) & 3) &<< 4)) &- 32
                let q2 = i16((a &>> 4) | (((h &>> 4) & 3) &<< 4)) &- 32
                let q3 = i16((b &>> 4) | (((h &>> 6) & 3) &<< 4)) &- 32
                let base = 128 * n + 8 * g
                let s = 8 * n + g / 2  // scale of weight base + 32t is sc[s + 2t]
                aux32 &+= scale(sc, s) &* widen(q0 &* loadI8x8(yb, Y.qs + base))
                aux32 &+= scale(sc, s + 2) &* widen(q1 &* loadI8x8(yb, Y.qs + base + 32))
                aux32 &+= scale(sc, s + 4) &* widen(q2 &* loadI8x8(yb, Y.qs + base + 64))
                aux32 &+= scale(sc, s + 6) &* widen(q3 &* loadI8x8(yb, Y.qs + base + 96))
            }
        }
        let d = loadHalf(xb, X.d) * q8kScale(yb)
        sums += d * toFloat(aux32)
    }
    return finishLanes(0, sums)
}
