// The Q4_K/Q6_K group kernels (`AVX2Dot.q4_KGroup8` / `q6_KGroup8`, AVX2KGroups) specialised
// here, in a module compiled for AVX512-VNNI, with `VNNIKDot`: eight `vpdpbusd` sum 32 values'
// products per row exactly in 32 bits, and one `vpmulld` applies the sub-block scale, where
// AVX2 needs `vpmaddubsw`, a `vpaddw` tree bounded by 16-bit overflow, and `vpmaddwd`.

#if arch(x86_64)
import _Builtin_intrinsics.intel
import SparrowCSupport
import SparrowKernelsAVX2

/// `KGroupDot` with `vpdpbusd`: exact int32 sums, then the scale as an int32 per lane.
public enum VNNIKDot: KGroupDot {
    @inline(__always)
    static func dot4(_ acc: __m256i, _ u: __m256i, _ a: UnsafeRawPointer, _ k: Int) -> __m256i {
        sparrow_dpbusd256(acc, u, _mm256_set1_epi32(a.loadUnaligned(fromByteOffset: 4 * k, as: Int32.self)))
    }

    /// Σ of the products of vectors 0…3 (`from` 0) or 4…7 (`from` 4): 16 values per row.
    @inline(__always)
    static func dot16(_ q: AVX2Dot.V8, _ a: UnsafeRawPointer, high: Bool) -> __m256i {
        let z = _mm256_setzero_si256()
        return high ? dot4(dot4(dot4(dot4(z, q.4, a, 4), q.5, a, 5), q.6, a, 6), q.7, a, 7)
                    : dot4(dot4(dot4(dot4(z, q.0, a, 0), q.1, a, 1), q.2, a, 2), q.3, a, 3)
    }

    /// Byte `k` of each lane, zero-extended to 32 bits.
    @inline(__always)
    public static func q4Scale(_ sc: __m256i, _ k: Int) -> __m256i {
        @inline(__always) func lane(_ m: Int) -> Int32 { Int32(4 * m + k) | Int32(bitPattern: 0x8080_8000) }
        return _mm256_shuffle_epi8(sc, _mm256_setr_epi32(lane(0), lane(1), lane(2), lane(3), lane(0), lane(1), lane(2), lane(3)))
    }

    @inline(__always)
    public static func q4Sub(_ q: AVX2Dot.V8, _ a: UnsafeRawPointer, _ scale: __m256i) -> __m256i {
        _mm256_mullo_epi32(_mm256_add_epi32(dot16(q, a, high: false), dot16(q, a, high: true)), scale)
    }

    /// The two i16 of each lane, sign-extended to 32 bits.
    @inline(__always)
    public static func q6Scales(_ pair: __m256i) -> (__m256i, __m256i) {
        (_mm256_srai_epi32(_mm256_slli_epi32(pair, 16), 16), _mm256_srai_epi32(pair, 16))
    }

    @inline(__always)
    public static func q6Chunk(_ q: AVX2Dot.V8, _ a: UnsafeRawPointer, _ s0: __m256i, _ s1: __m256i) -> __m256i {
        _mm256_add_epi32(_mm256_mullo_epi32(dot16(q, a, high: false), s0), _mm256_mullo_epi32(dot16(q, a, high: true), s1))
    }
}

public enum VNNIKGroups {
    /// `AVX2Dot.q4_KGroup8` with `VNNIKDot` (same arguments, same results).
    public static func q4_KGroup8(_ x: UnsafeRawPointer, rowBytes: Int, blocks: Int, act: UnsafeRawPointer, actRowBytes: Int,
                                  nTokens: Int, scratch: UnsafeMutableRawPointer, y: UnsafeMutablePointer<Float>, yStride: Int,
                                  packed: Bool) {
        AVX2Dot.q4_KGroup8(VNNIKDot.self, x, rowBytes: rowBytes, blocks: blocks, act: act, actRowBytes: actRowBytes,
                           nTokens: nTokens, scratch: scratch, y: y, yStride: yStride, packed: packed)
    }

    /// `AVX2Dot.q6_KGroup8` with `VNNIKDot` (same arguments, same results).
    public static func q6_KGroup8(_ x: UnsafeRawPointer, rowBytes: Int, blocks: Int, act: UnsafeRawPointer, actRowBytes: Int,
                                  nTokens: Int, scratch: UnsafeMutableRawPointer, y: UnsafeMutablePointer<Float>, yStride: Int,
                                  packed: Bool) {
        AVX2Dot.q6_KGroup8(VNNIKDot.self, x, rowBytes: rowBytes, blocks: blocks, act: act, actRowBytes: actRowBytes,
                           nTokens: nTokens, scratch: scratch, y: y, yStride: yStride, packed: packed)
    }
}
#endif
