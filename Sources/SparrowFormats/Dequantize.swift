/// Row dequantization, bit-exact with ggml's `dequantize_row_*` (ggml/src/ggml-quants.c).
///
/// "Bit-exact" means the same float operations in the same order: each output is computed
/// with exactly the multiplications and additions ggml's C writes, unfused (Swift never
/// contracts `a * b + c` into an FMA), so results match gguf-py's numpy dequantizers bit for
/// bit. (A C build of ggml compiled with FMA contraction may differ in the last bit for the
/// `x * d + m` types; the fixtures pin the unfused reference.)

/// Dequantizes one row of `count` values of `type` from `src` into `dst` (f32).
///
/// Supports F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, and
/// the activation formats Q8_1 and Q8_K. `src` needs no alignment. `count` must be a
/// multiple of `type.blockSize`.
///
/// - Throws: `FormatError.badTensor` naming the type when it is not supported, or when
///   `count` is negative or not a whole number of blocks.
public func dequantizeRow(_ type: GGMLType, _ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, count: Int) throws(FormatError) {
    guard count >= 0, count % type.blockSize == 0 else {
        throw .badTensor(tensor: "<row>", reason: "cannot dequantize \(count) values of \(type): not a whole number of \(type.blockSize)-value blocks")
    }
    let nb = count / type.blockSize
    switch type {
    case .f32: UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: count * 4)
    case .f16: for i in 0..<count { dst[i] = fp16ToFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
    case .bf16: for i in 0..<count { dst[i] = bf16ToFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
    case .q4_0: dequantizeQ4_0(src, dst, blocks: nb)
    case .q4_1: dequantizeQ4_1(src, dst, blocks: nb)
    case .q5_0: dequantizeQ5_0(src, dst, blocks: nb)
    case .q5_1: dequantizeQ5_1(src, dst, blocks: nb)
    case .q8_0: dequantizeQ8_0(src, dst, blocks: nb, stride: QuantBlock.Q8_0.byteCount, qsOffset: QuantBlock.Q8_0.qs)
    case .q8_1: dequantizeQ8_0(src, dst, blocks: nb, stride: QuantBlock.Q8_1.byteCount, qsOffset: QuantBlock.Q8_1.qs)
    case .q2_K: dequantizeQ2_K(src, dst, blocks: nb)
    case .q3_K: dequantizeQ3_K(src, dst, blocks: nb)
    case .q4_K: dequantizeQ4_K(src, dst, blocks: nb)
    case .q5_K: dequantizeQ5_K(src, dst, blocks: nb)
    case .q6_K: dequantizeQ6_K(src, dst, blocks: nb)
    case .q8_K: dequantizeQ8_K(src, dst, blocks: nb)
    default:
        throw .badTensor(tensor: "<row>", reason: "Sparrow cannot dequantize tensor type \(type) (ggml type \(type.rawValue))")
    }
}

@inline(__always)
private func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
    fp16ToFloat(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
}

@inline(__always)
private func byte(_ p: UnsafeRawPointer, _ offset: Int) -> UInt8 {
    p.load(fromByteOffset: offset, as: UInt8.self)
}

// Mirrors ggml's dequantize_row_q4_0: y = (nibble - 8) * d.
private func dequantizeQ4_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
    typealias B = QuantBlock.Q4_0
    for i in 0..<blocks {
        let x = src + i * B.byteCount, y = dst + i * 32
        let d = half(x, B.d)
        for j in 0..<16 {
            let q = byte(x, B.qs + j)
            y[j] = Float(Int32(q & 0x0F) - 8) * d
            y[j + 16] = Float(Int32(q >> 4) - 8) * d
        }
    }
}

// Mirrors ggml's dequantize_row_q4_1: y = nibble * d + m.
private func dequantizeQ4_1(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
    typealias B = QuantBlock.Q4_1
    for i in 0..<blocks {
        let x = src + i * B.byteCount, y = dst + i * 32
        let d = half(x, B.d), m = half(x, B.m)
        for j in 0..<16 {
            let q = byte(x, B.qs + j)
            y[j] = Float(q & 0x0F) * d + m
            y[j + 16] = Float(q >> 4) * d + m
        }
    }
}

// Mirrors ggml's dequantize_row_q5_0: y = (q5 - 16) * d, 5th bits from the u32 qh.
private func dequantizeQ5_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
    typealias B = QuantBlock.Q5_0
    for i in 0..<blocks {
        let x = src + i * B.byteCount, y = dst + i * 32
        let d = half(x, B.d)
        let qh = UInt32(littleEndian: x.loadUnaligned(fromByteOffset: B.qh, as: UInt32.self))
        for j in 0..<16 {
            let q = byte(x, B.qs + j)
            let h0 = ((qh >> UInt32(j)) << 4) & 0x10
            let h1 = (qh >> UInt32(j + 12)) & 0x10
            y[j] = Float(Int32(UInt32(q & 0x0F) | h0) - 16) * d
            y[j + 16] = Float(Int32(UInt32(q >> 4) | h1) - 16) * d
        }
    }
}

// Mirrors ggml's dequantize_row_q5_1: y = q5 * d + m.
private func dequantizeQ5_1(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
    typealias B = QuantBlock.Q5_1
    for i in 0..<blocks {
        let x = src + i * B.byteCount, y = dst + i * 32
        let d = half(x, B.d), m = half(x, B.m)
        let qh = UInt32(littleEndian: x.loadUnaligned(fromByteOffset: B.qh, as: UInt32.self))
        for j in 0..<16 {
            let q = byte(x, B.qs + j)
            let h0 = ((qh >> UInt32(j)) << 4) & 0x10
            let h1 = (qh >> UInt32(j + 12)) & 0x10
            y[j] = Float(UInt32(q & 0x0F) | h0) * d + m
            y[j + 16] = Float(UInt32(q >> 4) | h1) * d + m
        }
    }
}

// Mirrors ggml's dequantize_row_q8_0: y = q * d. Also reads Q8_1 (same d, quants further on;
// ggml has no Q8_1 dequantizer, `s` is only used by dot products).
private func dequantizeQ8_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int, stride: Int, qsOffset: Int) {
    for i in 0..<blocks {
        let x = src + i * stride, y = dst + i * 32
        let d = half(x, 0)
        for j in 0..<32 {
            y[j] = Float(x.load(fromByteOffset: qsOffset + j, as: Int8.self)) * d
        }
    }
}

// Mirrors ggml's dequantize_row_q2_K: per group of 16, dl = d * (sc & 0xF), ml = dmin * (sc >> 4),
// y = dl * q2 - ml. Groups walk qs in 32-byte halves, 2 bits at a time.
private func dequantizeQ2_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
    typealias B = QuantBlock.Q2_K
    var y = dst
    for i in 0..<blocks {
        let x = src + i * B.byteCount
        let d = half(x, B.d), dmin = half(x, B.dmin)
        var isc = 0
        for n in 0..<2 {
            let q = x + B.qs + 32 * n
            for j in 0..<4 {
                let shift = UInt8(2 * j)
                for half16 in 0..<2 {
                    let sc = byte(x, B.scales + isc)
                    isc += 1
                    let dl = d * Float(sc & 0xF), ml = dmin * Float(sc >> 4)
                    for l in 0..<16 {
                        let qv = (q.load(fromByteOffset: 16 * half16 + l, as: UInt8.self) >> shift) & 3
                        y[l] = dl * Float(qv) - ml
                    }
                    y += 16
                }
            }
        }
    }
}

// Mirrors ggml's dequantize_row_q3_K: dl = d * (scale - 32), y = dl * (q2 - (hbit ? 0 : 4)).
private func dequantizeQ3_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
    typealias B = QuantBlock.Q3_K
    var y = dst
    for i in 0..<blocks {
        let x = src + i * B.byteCount
        let dAll = half(x, B.d)
        let scales = QuantBlock.unpackScalesQ3K(x + B.scales)
        let hm = x + B.hmask
        var m: UInt8 = 1
        var isc = 0
        for n in 0..<2 {
            let q = x + B.qs + 32 * n
            for j in 0..<4 {
                let shift = UInt8(2 * j)
                for half16 in 0..<2 {
                    let dl = dAll * Float(scales[isc])
                    isc += 1
                    for l in 16 * half16..<16 * half16 + 16 {
                        let low = Int32((q.load(fromByteOffset: l, as: UInt8.self) >> shift) & 3)
                        let high: Int32 = (hm.load(fromByteOffset: l, as: UInt8.self) & m) != 0 ? 0 : 4
                        y[l - 16 * half16] = dl * Float(low - high)
                    }
                    y += 16
                }
                m <<= 1
            }
        }
    }
}

// Mirrors ggml's dequantize_row_q4_K: d1 = d * sc, m1 = dmin * m per group of 32,
// y = d1 * nibble - m1.
private func dequantizeQ4_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
    typealias B = QuantBlock.Q4_K
    var y = dst
    for i in 0..<blocks {
        let x = src + i * B.byteCount
        let d = half(x, B.d), dmin = half(x, B.dmin)
        let sm = QuantBlock.unpackScaleMinK4(x + B.scales)
        for k in 0..<4 {
            let q = x + B.qs + 32 * k
            let d1 = d * Float(sm[2 * k]), m1 = dmin * Float(sm[8 + 2 * k])
            let d2 = d * Float(sm[2 * k + 1]), m2 = dmin * Float(sm[8 + 2 * k + 1])
            for l in 0..<32 { y[l] = d1 * Float(q.load(fromByteOffset: l, as: UInt8.self) & 0xF) - m1 }
            for l in 0..<32 { y[32 + l] = d2 * Float(q.load(fromByteOffset: l, as: UInt8.self) >> 4) - m2 }
            y += 64
        }
    }
}

// Mirrors ggml's dequantize_row_q5_K: as Q4_K with a 5th bit (+16) from qh.
private func dequantizeQ5_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
    typealias B = QuantBlock.Q5_K
    var y = dst
    for i in 0..<blocks {
        let x = src + i * B.byteCount
        let d = half(x, B.d), dmin = half(x, B.dmin)
        let sm = QuantBlock.unpackScaleMinK4(x + B.scales)
        let qh = x + B.qh
        for k in 0..<4 {
            let ql = x + B.qs + 32 * k
            let u1 = UInt8(1) << UInt8(2 * k), u2 = UInt8(2) << UInt8(2 * k)
            let d1 = d * Float(sm[2 * k]), m1 = dmin * Float(sm[8 + 2 * k])
            let d2 = d * Float(sm[2 * k + 1]), m2 = dmin * Float(sm[8 + 2 * k + 1])
            for l in 0..<32 {
                let h: Int32 = qh.load(fromByteOffset: l, as: UInt8.self) & u1 != 0 ? 16 : 0
                y[l] = d1 * Float(Int32(ql.load(fromByteOffset: l, as: UInt8.self) & 0xF) + h) - m1
            }
            for l in 0..<32 {
                let h: Int32 = qh.load(fromByteOffset: l, as: UInt8.self) & u2 != 0 ? 16 : 0
                y[32 + l] = d2 * Float(Int32(ql.load(fromByteOffset: l, as: UInt8.self) >> 4) + h) - m2
            }
            y += 64
        }
    }
}

// Mirrors ggml's dequantize_row_q6_K: y = d * scale * (q6 - 32), evaluated (d * scale) * q.
private func dequantizeQ6_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
    typealias B = QuantBlock.Q6_K
    var y = dst
    for i in 0..<blocks {
        let x = src + i * B.byteCount
        let d = half(x, B.d)
        for n in 0..<2 {
            let ql = x + B.ql + 64 * n, qh = x + B.qh + 32 * n
            let sc = x + B.scales + 8 * n
            for l in 0..<32 {
                let isc = l / 16
                let a = ql.load(fromByteOffset: l, as: UInt8.self)
                let b = ql.load(fromByteOffset: l + 32, as: UInt8.self)
                let h = qh.load(fromByteOffset: l, as: UInt8.self)
                let q1 = Int32((a & 0xF) | ((h & 3) << 4)) - 32
                let q2 = Int32((b & 0xF) | (((h >> 2) & 3) << 4)) - 32
                let q3 = Int32((a >> 4) | (((h >> 4) & 3) << 4)) - 32
                let q4 = Int32((b >> 4) | (((h >> 6) & 3) << 4)) - 32
                y[l] = d * Float(sc.load(fromByteOffset: isc, as: Int8.self)) * Float(q1)
                y[l + 32] = d * Float(sc.load(fromByteOffset: isc + 2, as: Int8.self)) * Float(q2)
                y[l + 64] = d * Float(sc.load(fromByteOffset: isc + 4, as: Int8.self)) * Float(q3)
                y[l + 96] = d * Float(sc.load(fromByteOffset: isc + 6, as: Int8.self)) * Float(q4)
            }
            y += 128
        }
    }
}

// Mirrors ggml's dequantize_row_q8_K: y = d * q with an f32 d.
private func dequantizeQ8_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
    typealias B = QuantBlock.Q8_K
    for i in 0..<blocks {
        let x = src + i * B.byteCount, y = dst + i * 256
        let d = Float(bitPattern: UInt32(littleEndian: x.loadUnaligned(fromByteOffset: B.d, as: UInt32.self)))
        for j in 0..<256 {
            y[j] = d * Float(x.load(fromByteOffset: B.qs + j, as: Int8.self))
        }
    }
}
