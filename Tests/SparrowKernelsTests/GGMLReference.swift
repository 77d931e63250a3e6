import Foundation
import SparrowFormats

/// Line-by-line transliterations of ggml's C reference routines, kept deliberately naive
/// (byte arrays, `Int` arithmetic, per-element loops, scalar `aux8`/`aux16`/`aux32`/`sums`
/// arrays, Swift's own `Float16` for f16 and libm `roundf`), so that the optimized kernels
/// can be checked bit for bit against ggml's operation order rather than against
/// themselves.
///
/// Sources: ggml/src/ggml-quants.c (`quantize_row_q8_0_ref`, `quantize_row_q8_1_ref`,
/// `quantize_row_q8_K_ref`) and ggml/src/ggml-cpu/quants.c (`ggml_vec_dot_*_generic`),
/// llama.cpp as vendored by llama-cpp-python 0.3.36.
enum GGMLRef {
    static func f16(_ b: [UInt8], _ o: Int) -> Float { Float(Float16(bitPattern: UInt16(b[o]) | UInt16(b[o + 1]) << 8)) }
    static func f32(_ b: [UInt8], _ o: Int) -> Float {
        Float(bitPattern: UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24)
    }
    static func i8(_ b: [UInt8], _ o: Int) -> Int { Int(Int8(bitPattern: b[o])) }
    static func i16(_ b: [UInt8], _ o: Int) -> Int { Int(Int16(bitPattern: UInt16(b[o]) | UInt16(b[o + 1]) << 8)) }
    static func putF16(_ b: inout [UInt8], _ o: Int, _ v: Float) {
        let h = Float16(v).bitPattern
        b[o] = UInt8(truncatingIfNeeded: h); b[o + 1] = UInt8(truncatingIfNeeded: h >> 8)
    }

    // MARK: quantizers

    static func quantizeQ8_0(_ x: [Float]) -> [UInt8] {
        let nb = x.count / 32
        var y = [UInt8](repeating: 0, count: nb * 34)
        for i in 0..<nb {
            var amax: Float = 0
            for j in 0..<32 { let v = x[i * 32 + j]; amax = Swift.max(amax, Foundation.fabsf(v)) }
            let d = amax / 127
            let id: Float = d != 0 ? 1 / d : 0
            putF16(&y, i * 34, d)
            for j in 0..<32 { y[i * 34 + 2 + j] = UInt8(bitPattern: Int8(Foundation.roundf(x[i * 32 + j] * id))) }
        }
        return y
    }

    static func quantizeQ8_1(_ x: [Float]) -> [UInt8] {
        let nb = x.count / 32
        var y = [UInt8](repeating: 0, count: nb * 36)
        for i in 0..<nb {
            var amax: Float = 0
            for j in 0..<32 { amax = Swift.max(amax, Foundation.fabsf(x[i * 32 + j])) }
            let d = amax / 127
            let id: Float = d != 0 ? 1 / d : 0
            putF16(&y, i * 36, d)
            var sum = 0
            for j in 0..<16 {
                let v0 = x[i * 32 + j] * id, v1 = x[i * 32 + 16 + j] * id
                let q0 = Int8(Foundation.roundf(v0)), q1 = Int8(Foundation.roundf(v1))
                y[i * 36 + 4 + j] = UInt8(bitPattern: q0)
                y[i * 36 + 4 + 16 + j] = UInt8(bitPattern: q1)
                sum += Int(q0) + Int(q1)
            }
            putF16(&y, i * 36 + 2, Float(sum) * d)
        }
        return y
    }

    static func quantizeQ8_K(_ x: [Float]) -> [UInt8] {
        let nb = x.count / 256
        var y = [UInt8](repeating: 0, count: nb * 292)
        for i in 0..<nb {
            var maxv: Float = 0, amax: Float = 0
            for j in 0..<256 {
                let ax = Foundation.fabsf(x[i * 256 + j])
                if ax > amax { amax = ax; maxv = x[i * 256 + j] }
            }
            if amax == 0 { continue }  // d = 0, qs = 0 (ggml leaves bsums unwritten; zero here)
            let iscale = -127 / maxv
            var qs = [Int](repeating: 0, count: 256)
            for j in 0..<256 {
                let v = Int((iscale * x[i * 256 + j]).rounded(.toNearestOrEven))  // nearest_int
                qs[j] = Swift.min(127, v)
                y[i * 292 + 4 + j] = UInt8(bitPattern: Int8(qs[j]))
            }
            for j in 0..<16 {
                var sum = 0
                for ii in 0..<16 { sum += qs[j * 16 + ii] }
                let s = UInt16(bitPattern: Int16(sum))
                y[i * 292 + 260 + 2 * j] = UInt8(truncatingIfNeeded: s)
                y[i * 292 + 261 + 2 * j] = UInt8(truncatingIfNeeded: s >> 8)
            }
            let d = (1 / iscale).bitPattern
            for k in 0..<4 { y[i * 292 + k] = UInt8(truncatingIfNeeded: d >> (8 * UInt32(k))) }
        }
        return y
    }

    // MARK: dot products (x: weight row, y: quantized activations)

    static func dot(_ type: GGMLType, _ x: [UInt8], _ y: [UInt8], n: Int) -> Float {
        switch type {
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0: return dotLegacy(type, x, y, n: n)
        case .q2_K: return dotQ2_K(x, y, n: n)
        case .q3_K: return dotQ3_K(x, y, n: n)
        case .q4_K, .q5_K: return dotQ45_K(type, x, y, n: n)
        case .q6_K: return dotQ6_K(x, y, n: n)
        case .f32:
            var s: Double = 0
            for i in 0..<n { s += Double(f32(x, 4 * i) * f32(y, 4 * i)) }
            return Float(s)
        case .f16:
            var s: Double = 0
            for i in 0..<n { s += Double(f16(x, 2 * i) * f16(y, 2 * i)) }
            return Float(s)
        case .bf16:
            var s: Double = 0
            for i in 0..<n {
                let a = Float(bitPattern: UInt32(x[2 * i]) << 16 | UInt32(x[2 * i + 1]) << 24)
                let b = Float(bitPattern: UInt32(y[2 * i]) << 16 | UInt32(y[2 * i + 1]) << 24)
                s += Double(a * b)
            }
            return Float(s)
        default: return .nan
        }
    }

    /// ggml_vec_dot_{q4_0,q5_0,q8_0}_q8_0_generic and ggml_vec_dot_{q4_1,q5_1}_q8_1_generic.
    static func dotLegacy(_ type: GGMLType, _ x: [UInt8], _ y: [UInt8], n: Int) -> Float {
        let nb = n / 32
        let xs = type.typeSize, ys = type == .q4_1 || type == .q5_1 ? 36 : 34
        var sumf: Float = 0
        for ib in 0..<nb {
            let xo = ib * xs, yo = ib * ys
            let yq = yo + (ys == 36 ? 4 : 2)
            var sumi0 = 0, sumi1 = 0
            switch type {
            case .q8_0:
                for j in 0..<32 { sumi0 += i8(x, xo + 2 + j) * i8(y, yq + j) }
                sumf += Float(sumi0) * (f16(x, xo) * f16(y, yo))
                continue
            case .q4_0, .q4_1:
                let q = xo + (type == .q4_0 ? 2 : 4)
                for j in 0..<16 {
                    let off = type == .q4_0 ? 8 : 0
                    let v0 = Int(x[q + j] & 0x0F) - off, v1 = Int(x[q + j] >> 4) - off
                    sumi0 += v0 * i8(y, yq + j)
                    sumi1 += v1 * i8(y, yq + j + 16)
                }
            default:  // q5_0, q5_1
                let qhOff = xo + (type == .q5_0 ? 2 : 4), q = qhOff + 4
                let qh = UInt32(x[qhOff]) | UInt32(x[qhOff + 1]) << 8 | UInt32(x[qhOff + 2]) << 16 | UInt32(x[qhOff + 3]) << 24
                for j in 0..<16 {
                    let xh0 = ((qh & (1 << UInt32(j))) >> UInt32(j)) << 4
                    let xh1 = (qh & (1 << UInt32(j + 16))) >> UInt32(j + 12)
                    var x0 = Int((UInt32(x[q + j] & 0x0F) | xh0))
                    var x1 = Int((UInt32(x[q + j] >> 4) | xh1))
                    if type == .q5_0 { x0 = Int(Int8(x0 - 16)); x1 = Int(Int8(x1 - 16)) }
                    sumi0 += x0 * i8(y, yq + j)
                    sumi1 += x1 * i8(y, yq + j + 16)
                }
            }
            let sumi = sumi0 + sumi1
            switch type {
            case .q4_0: sumf += Float(sumi) * f16(x, xo) * f16(y, yo)
            case .q5_0: sumf += (f16(x, xo) * f16(y, yo)) * Float(sumi)
            default: sumf += (f16(x, xo) * f16(y, yo)) * Float(sumi) + f16(x, xo + 2) * f16(y, yo + 2)
            }
        }
        return sumf
    }

    static func dotQ2_K(_ x: [UInt8], _ y: [UInt8], n: Int) -> Float {
        var sumf: Float = 0
        for i in 0..<n / 256 {
            let xo = i * 84, yo = i * 292
            var q2 = xo + 16, q8 = yo + 4
            let sc = xo
            var summs = 0
            for j in 0..<16 { summs += i16(y, yo + 260 + 2 * j) * Int(x[sc + j] >> 4) }
            let dall = f32(y, yo) * f16(x, xo + 80)
            let dmin = f32(y, yo) * f16(x, xo + 82)
            var isum = 0, isc = 0
            for _ in 0..<2 {
                var shift = 0
                for _ in 0..<4 {
                    var d = Int(x[sc + isc] & 0xF); isc += 1
                    var isuml = 0
                    for l in 0..<16 { isuml += i8(y, q8 + l) * Int((x[q2 + l] >> UInt8(shift)) & 3) }
                    isum += d * isuml
                    d = Int(x[sc + isc] & 0xF); isc += 1
                    isuml = 0
                    for l in 16..<32 { isuml += i8(y, q8 + l) * Int((x[q2 + l] >> UInt8(shift)) & 3) }
                    isum += d * isuml
                    shift += 2
                    q8 += 32
                }
                q2 += 32
            }
            sumf += dall * Float(isum) - dmin * Float(summs)
        }
        return sumf
    }

    /// The eight-lane tail shared by the Q3_K..Q6_K generic routines: per block, the 256
    /// products `aux16 = q8 * a`, the scale of each 16-group, the factor d and the min term.
    static func laneSum(blocks: [(products: [Int], scale16: [Int], d: Float, minTerm: Float?)]) -> Float {
        var sums = [Float](repeating: 0, count: 8)
        var sumf: Float = 0
        for b in blocks {
            var aux32 = [Int32](repeating: 0, count: 8)
            var aux16 = [Int16](repeating: 0, count: 8)
            for j in 0..<32 {  // groups of 8 weights
                let scale = Int32(b.scale16[j / 2])
                for l in 0..<8 { aux16[l] = Int16(b.products[8 * j + l]) }
                for l in 0..<8 { aux32[l] += scale * Int32(aux16[l]) }
            }
            for l in 0..<8 { sums[l] += b.d * Float(aux32[l]) }
            if let m = b.minTerm { sumf -= m }
        }
        for l in 0..<8 { sumf += sums[l] }
        return sumf
    }

    static func dotQ3_K(_ x: [UInt8], _ y: [UInt8], n: Int) -> Float {
        var blocks: [(products: [Int], scale16: [Int], d: Float, minTerm: Float?)] = []
        for i in 0..<n / 256 {
            let xo = i * 110, yo = i * 292
            var a = [Int](repeating: 0, count: 256)
            var m: UInt8 = 1
            var ai = 0
            for jj in 0..<2 {
                let q3 = xo + 32 + 32 * jj
                for s in 0..<4 {
                    for l in 0..<32 {
                        a[ai + l] = Int((x[q3 + l] >> UInt8(2 * s)) & 3) - (x[xo + l] & m != 0 ? 0 : 4)
                    }
                    ai += 32; m = m &<< 1
                }
            }
            var aux = (0..<3).map { k in UInt32(x[xo + 96 + 4 * k]) | UInt32(x[xo + 97 + 4 * k]) << 8 | UInt32(x[xo + 98 + 4 * k]) << 16 | UInt32(x[xo + 99 + 4 * k]) << 24 } + [0]
            let kmask1: UInt32 = 0x0303_0303, kmask2: UInt32 = 0x0f0f_0f0f
            let tmp = aux[2]
            aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4)
            aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4)
            aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4)
            aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4)
            let scales = (0..<16).map { j in Int(Int8(bitPattern: UInt8(truncatingIfNeeded: aux[j / 4] >> (8 * UInt32(j % 4))))) - 32 }
            let prod = (0..<256).map { a[$0] * i8(y, yo + 4 + $0) }
            blocks.append((prod, scales, f16(x, xo + 108) * f32(y, yo), nil))
        }
        return laneSum(blocks: blocks)
    }

    static func dotQ45_K(_ type: GGMLType, _ x: [UInt8], _ y: [UInt8], n: Int) -> Float {
        let xs = type.typeSize
        let qsOff = type == .q4_K ? 16 : 48
        var blocks: [(products: [Int], scale16: [Int], d: Float, minTerm: Float?)] = []
        for i in 0..<n / 256 {
            let xo = i * xs, yo = i * 292
            var a = [Int](repeating: 0, count: 256)
            var m: UInt8 = 1
            for j in 0..<4 {
                for l in 0..<32 {
                    a[64 * j + l] = Int(x[xo + qsOff + 32 * j + l] & 0xF)
                    a[64 * j + 32 + l] = Int(x[xo + qsOff + 32 * j + l] >> 4)
                    if type == .q5_K {
                        a[64 * j + l] += x[xo + 16 + l] & m != 0 ? 16 : 0
                        a[64 * j + 32 + l] += x[xo + 16 + l] & (m &<< 1) != 0 ? 16 : 0
                    }
                }
                m = m &<< 2
            }
            // get_scale_min_k4, as dequantize_row_q4_K uses it
            var sc = [Int](repeating: 0, count: 8), mn = [Int](repeating: 0, count: 8)
            let q = Array(x[(xo + 4)..<(xo + 16)])
            for j in 0..<8 {
                if j < 4 {
                    sc[j] = Int(q[j] & 63); mn[j] = Int(q[j + 4] & 63)
                } else {
                    sc[j] = Int((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4))
                    mn[j] = Int((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4))
                }
            }
            var sumi = 0
            for j in 0..<16 { sumi += i16(y, yo + 260 + 2 * j) * mn[j / 2] }
            let prod = (0..<256).map { a[$0] * i8(y, yo + 4 + $0) }
            let scale16 = (0..<16).map { sc[$0 / 2] }
            let dmin = f16(x, xo + 2) * f32(y, yo)
            blocks.append((prod, scale16, f16(x, xo) * f32(y, yo), dmin * Float(sumi)))
        }
        return laneSum(blocks: blocks)
    }

    static func dotQ6_K(_ x: [UInt8], _ y: [UInt8], n: Int) -> Float {
        var blocks: [(products: [Int], scale16: [Int], d: Float, minTerm: Float?)] = []
        for i in 0..<n / 256 {
            let xo = i * 210, yo = i * 292
            var a = [Int](repeating: 0, count: 256)
            for jj in 0..<2 {
                let q4 = xo + 64 * jj, qh = xo + 128 + 32 * jj, ao = 128 * jj
                for l in 0..<32 {
                    a[ao + l] = Int(Int8(bitPattern: (x[q4 + l] & 0xF) | (((x[qh + l] >> 0) & 3) << 4))) - 32
                    a[ao + l + 32] = Int(Int8(bitPattern: (x[q4 + l + 32] & 0xF) | (((x[qh + l] >> 2) & 3) << 4))) - 32
                    a[ao + l + 64] = Int(Int8(bitPattern: (x[q4 + l] >> 4) | (((x[qh + l] >> 4) & 3) << 4))) - 32
                    a[ao + l + 96] = Int(Int8(bitPattern: (x[q4 + l + 32] >> 4) | (((x[qh + l] >> 6) & 3) << 4))) - 32
                }
            }
            let scales = (0..<16).map { i8(x, xo + 192 + $0) }
            let prod = (0..<256).map { a[$0] * i8(y, yo + 4 + $0) }
            blocks.append((prod, scales, f16(x, xo + 208) * f32(y, yo), nil))
        }
        return laneSum(blocks: blocks)
    }
}
