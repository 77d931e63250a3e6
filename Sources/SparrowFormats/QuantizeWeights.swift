#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Weight quantizers for `sparrow quantize`: ports of ggml's reference row quantizers
/// (`quantize_row_q5_0_ref`, `quantize_row_q4_K_ref`, `quantize_row_q6_K_ref` in
/// ggml-quants.c), which llama.cpp's `llama-quantize` uses when no importance matrix is given.
/// The float operations are written in ggml's order (no fused multiply-adds, as ggml-base is
/// built), so the bytes are the same as llama.cpp's.
public enum WeightQuantizer {
    /// ggml's `GROUP_MAX_EPS`: a group whose largest magnitude is below this is all zero.
    static let groupMaxEps: Float = 1e-15

    /// ggml's `nearest_int`: round to nearest even through the float mantissa.
    @inline(__always)
    static func nearestInt(_ v: Float) -> Int32 {
        let val = v + 12_582_912
        return Int32(bitPattern: val.bitPattern & 0x007f_ffff) &- 0x0040_0000
    }

    /// `count` floats (a multiple of 32) to Q5_0 blocks (22 bytes: f16 d, u32 qh, 16 bytes qs).
    public static func quantizeRowQ5_0(_ x: UnsafePointer<Float>, count: Int, into dst: UnsafeMutableRawPointer) {
        for i in 0..<count / 32 {
            let xb = x + 32 * i, y = dst + 22 * i
            var amax: Float = 0, max: Float = 0
            for j in 0..<32 where amax < xb[j].magnitude {
                amax = xb[j].magnitude
                max = xb[j]
            }
            let d = max / -16
            let id: Float = d != 0 ? 1 / d : 0
            y.storeBytes(of: floatToFP16(d).littleEndian, toByteOffset: 0, as: UInt16.self)
            var qh: UInt32 = 0
            for j in 0..<16 {
                let x0 = xb[j] * id, x1 = xb[16 + j] * id
                // C's (int8_t)(x + 16.5f): truncation toward zero; the value is in [0, 33).
                let xi0 = UInt8(Swift.min(31, Int32(x0 + 16.5)))
                let xi1 = UInt8(Swift.min(31, Int32(x1 + 16.5)))
                y.storeBytes(of: (xi0 & 0x0F) | ((xi1 & 0x0F) << 4), toByteOffset: 6 + j, as: UInt8.self)
                qh |= UInt32((xi0 & 0x10) >> 4) << UInt32(j)
                qh |= UInt32((xi1 & 0x10) >> 4) << UInt32(j + 16)
            }
            y.storeBytes(of: qh.littleEndian, toByteOffset: 2, as: UInt32.self)
        }
    }

    /// ggml's `make_qkx2_quants`: an asymmetric `nmax`-level quantization of `n` values with a
    /// weighted least-squares search over `nstep + 1` candidate scales. Returns the scale and
    /// sets `theMin` to minus the offset.
    static func makeQKX2Quants(_ n: Int, _ nmax: Int, _ x: UnsafePointer<Float>, _ weights: UnsafePointer<Float>,
                               _ L: UnsafeMutablePointer<UInt8>, _ theMin: inout Float, _ Laux: UnsafeMutablePointer<UInt8>,
                               rmin: Float, rdelta: Float, nstep: Int, useMAD: Bool) -> Float {
        var min = x[0], max = x[0]
        var sumW = weights[0]
        var sumX = sumW * x[0]
        for i in 1..<n {
            if x[i] < min { min = x[i] }
            if x[i] > max { max = x[i] }
            let w = weights[i]
            sumW += w
            sumX += w * x[i]
        }
        if min > 0 { min = 0 }
        if max == min {
            for i in 0..<n { L[i] = 0 }
            theMin = -min
            return 0
        }
        let fmax = Float(nmax)
        var iscale = fmax / (max - min)
        var scale = 1 / iscale
        var bestError: Float = 0
        for i in 0..<n {
            let l = nearestInt(iscale * (x[i] - min))
            L[i] = UInt8(Swift.max(0, Swift.min(Int32(nmax), l)))
            var diff = scale * Float(L[i]) + min - x[i]
            diff = useMAD ? diff.magnitude : diff * diff
            bestError += weights[i] * diff
        }
        if nstep < 1 {
            theMin = -min
            return scale
        }
        for step in 0...nstep {
            iscale = (rmin + rdelta * Float(step) + fmax) / (max - min)
            var sumL: Float = 0, sumL2: Float = 0, sumXL: Float = 0
            for i in 0..<n {
                let l = Swift.max(0, Swift.min(Int32(nmax), nearestInt(iscale * (x[i] - min))))
                Laux[i] = UInt8(l)
                let w = weights[i], fl = Float(l)
                sumL += w * fl
                sumL2 += w * fl * fl
                sumXL += w * fl * x[i]
            }
            let D = sumW * sumL2 - sumL * sumL
            if D > 0 {
                var thisScale = (sumW * sumXL - sumX * sumL) / D
                var thisMin = (sumL2 * sumX - sumL * sumXL) / D
                if thisMin > 0 {
                    thisMin = 0
                    thisScale = sumXL / sumL2
                }
                var curError: Float = 0
                for i in 0..<n {
                    var diff = thisScale * Float(Laux[i]) + thisMin - x[i]
                    diff = useMAD ? diff.magnitude : diff * diff
                    curError += weights[i] * diff
                }
                if curError < bestError {
                    for i in 0..<n { L[i] = Laux[i] }
                    bestError = curError
                    scale = thisScale
                    min = thisMin
                }
            }
        }
        theMin = -min
        return scale
    }

    /// ggml's `make_qx_quants` with `rmse_type` 1 (weights x²) and no importance weights: a
    /// symmetric quantization to `[-nmax, nmax)` with a search over 18 nearby scales.
    /// `L` receives levels offset by `nmax`. Returns the scale.
    static func makeQXQuants(_ n: Int, _ nmax: Int, _ x: UnsafePointer<Float>, _ L: UnsafeMutablePointer<Int8>) -> Float {
        var max: Float = 0, amax: Float = 0
        for i in 0..<n {
            let ax = x[i].magnitude
            if ax > amax { amax = ax; max = x[i] }
        }
        if amax < groupMaxEps {
            for i in 0..<n { L[i] = 0 }
            return 0
        }
        let fnmax = Float(nmax), lo = Int32(-nmax), hi = Int32(nmax - 1)
        var iscale = -fnmax / max
        var sumlx: Float = 0, suml2: Float = 0
        for i in 0..<n {
            let l = Swift.max(lo, Swift.min(hi, nearestInt(iscale * x[i])))
            L[i] = Int8(truncatingIfNeeded: l + Int32(nmax))
            let w = x[i] * x[i], fl = Float(l)
            sumlx += w * x[i] * fl
            suml2 += w * fl * fl
        }
        var scale: Float = suml2 != 0 ? sumlx / suml2 : 0
        var best = scale * sumlx
        for step in -9...9 where step != 0 {
            iscale = -(fnmax + 0.1 * Float(step)) / max
            sumlx = 0; suml2 = 0
            for i in 0..<n {
                let l = Swift.max(lo, Swift.min(hi, nearestInt(iscale * x[i])))
                let w = x[i] * x[i], fl = Float(l)
                sumlx += w * x[i] * fl
                suml2 += w * fl * fl
            }
            if suml2 > 0 && sumlx * sumlx > best * suml2 {
                for i in 0..<n {
                    let l = Swift.max(lo, Swift.min(hi, nearestInt(iscale * x[i])))
                    L[i] = Int8(truncatingIfNeeded: l + Int32(nmax))
                }
                scale = sumlx / suml2
                best = scale * sumlx
            }
        }
        return scale
    }

    /// `count` floats (a multiple of 256) to Q4_K blocks (144 bytes: f16 d, f16 dmin,
    /// 12 bytes of 6-bit scales/mins, 128 bytes of 4-bit quants), as `quantize_row_q4_K_ref`.
    public static func quantizeRowQ4_K(_ x: UnsafePointer<Float>, count: Int, into dst: UnsafeMutableRawPointer) {
        var L = [UInt8](repeating: 0, count: 256), Laux = [UInt8](repeating: 0, count: 32)
        var weights = [Float](repeating: 0, count: 32)
        var mins = [Float](repeating: 0, count: 8), scales = [Float](repeating: 0, count: 8)
        for i in 0..<count / 256 {
            let xb = x + 256 * i, y = dst + 144 * i
            var maxScale: Float = 0, maxMin: Float = 0
            for j in 0..<8 {
                var sumX2: Float = 0
                for l in 0..<32 { sumX2 += xb[32 * j + l] * xb[32 * j + l] }
                let avX = sqrtf(sumX2 / 32)
                for l in 0..<32 { weights[l] = avX + xb[32 * j + l].magnitude }
                var m: Float = 0
                scales[j] = L.withUnsafeMutableBufferPointer { lp in
                    Laux.withUnsafeMutableBufferPointer { ap in
                        weights.withUnsafeBufferPointer { wp in
                            makeQKX2Quants(32, 15, xb + 32 * j, wp.baseAddress!, lp.baseAddress! + 32 * j, &m, ap.baseAddress!,
                                           rmin: -1, rdelta: 0.1, nstep: 20, useMAD: false)
                        }
                    }
                }
                mins[j] = m
                if scales[j] > maxScale { maxScale = scales[j] }
                if mins[j] > maxMin { maxMin = mins[j] }
            }
            let invScale: Float = maxScale > 0 ? 63 / maxScale : 0
            let invMin: Float = maxMin > 0 ? 63 / maxMin : 0
            var sc = [UInt8](repeating: 0, count: 12)
            for j in 0..<8 {
                let ls = Swift.min(63, UInt8(truncatingIfNeeded: nearestInt(invScale * scales[j])))
                let lm = Swift.min(63, UInt8(truncatingIfNeeded: nearestInt(invMin * mins[j])))
                if j < 4 {
                    sc[j] = ls
                    sc[j + 4] = lm
                } else {
                    sc[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4)
                    sc[j - 4] |= (ls >> 4) << 6
                    sc[j] |= (lm >> 4) << 6
                }
            }
            let dBits = floatToFP16(maxScale / 63), dminBits = floatToFP16(maxMin / 63)
            y.storeBytes(of: dBits.littleEndian, toByteOffset: 0, as: UInt16.self)
            y.storeBytes(of: dminBits.littleEndian, toByteOffset: 2, as: UInt16.self)
            for k in 0..<12 { y.storeBytes(of: sc[k], toByteOffset: 4 + k, as: UInt8.self) }
            for j in 0..<8 {
                // get_scale_min_k4
                let s: UInt8, m: UInt8
                if j < 4 {
                    s = sc[j] & 63; m = sc[j + 4] & 63
                } else {
                    s = (sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4)
                    m = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4)
                }
                let d = fp16ToFloat(dBits) * Float(s)
                if d == 0 { continue }
                let dm = fp16ToFloat(dminBits) * Float(m)
                for ii in 0..<32 {
                    let l = nearestInt((xb[32 * j + ii] + dm) / d)
                    L[32 * j + ii] = UInt8(Swift.max(0, Swift.min(15, l)))
                }
            }
            for (half, j) in stride(from: 0, to: 256, by: 64).enumerated() {
                for l in 0..<32 {
                    y.storeBytes(of: L[j + l] | (L[j + l + 32] << 4), toByteOffset: 16 + 32 * half + l, as: UInt8.self)
                }
            }
        }
    }

    /// `count` floats (a multiple of 256) to Q6_K blocks (210 bytes: 128 bytes low 4 bits,
    /// 64 bytes high 2 bits, 16 int8 scales, f16 d), as `quantize_row_q6_K_ref`.
    public static func quantizeRowQ6_K(_ x: UnsafePointer<Float>, count: Int, into dst: UnsafeMutableRawPointer) {
        var L = [Int8](repeating: 0, count: 256)
        var scales = [Float](repeating: 0, count: 16)
        for i in 0..<count / 256 {
            let xb = x + 256 * i, y = dst + 210 * i
            var maxScale: Float = 0, maxAbsScale: Float = 0
            for ib in 0..<16 {
                let scale = L.withUnsafeMutableBufferPointer { makeQXQuants(16, 32, xb + 16 * ib, $0.baseAddress! + 16 * ib) }
                scales[ib] = scale
                if scale.magnitude > maxAbsScale {
                    maxAbsScale = scale.magnitude
                    maxScale = scale
                }
            }
            if maxAbsScale < groupMaxEps {
                y.initializeMemory(as: UInt8.self, repeating: 0, count: 210)
                continue
            }
            let iscale = -128 / maxScale
            let dBits = floatToFP16(1 / iscale)
            y.storeBytes(of: dBits.littleEndian, toByteOffset: 208, as: UInt16.self)
            var sc = [Int8](repeating: 0, count: 16)
            for ib in 0..<16 {
                sc[ib] = Int8(truncatingIfNeeded: Swift.min(127, nearestInt(iscale * scales[ib])))
                y.storeBytes(of: sc[ib], toByteOffset: 192 + ib, as: Int8.self)
            }
            for j in 0..<16 {
                let d = fp16ToFloat(dBits) * Float(sc[j])
                if d == 0 { continue }
                for ii in 0..<16 {
                    let l = Swift.max(-32, Swift.min(31, nearestInt(xb[16 * j + ii] / d)))
                    L[16 * j + ii] = Int8(l + 32)
                }
            }
            for (chunk, j) in stride(from: 0, to: 256, by: 128).enumerated() {
                let ql = 64 * chunk, qh = 128 + 32 * chunk
                for l in 0..<32 {
                    let q = (0..<4).map { UInt8(bitPattern: L[j + l + 32 * $0]) }
                    y.storeBytes(of: (q[0] & 0xF) | ((q[2] & 0xF) << 4), toByteOffset: ql + l, as: UInt8.self)
                    y.storeBytes(of: (q[1] & 0xF) | ((q[3] & 0xF) << 4), toByteOffset: ql + 32 + l, as: UInt8.self)
                    y.storeBytes(of: (q[0] >> 4) | ((q[1] >> 4) << 2) | ((q[2] >> 4) << 4) | ((q[3] >> 4) << 6),
                                 toByteOffset: qh + l, as: UInt8.self)
                }
            }
        }
    }
}
