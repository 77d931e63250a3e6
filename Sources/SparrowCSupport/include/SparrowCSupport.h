// What Swift cannot emit itself: a software prefetch (`__builtin_prefetch` and `_mm_prefetch`
// are compiler builtins/macros, which Swift's Clang importer does not expose), the F16C
// float → half conversion (`_mm256_cvtps_ph` takes an immediate, so it is a macro too), and
// glibc's `mallopt` (Swift's Glibc module does not import <malloc.h>).
// Static inline, so calls from Swift inline to the instructions themselves.
#ifndef SPARROW_C_SUPPORT_H
#define SPARROW_C_SUPPORT_H

#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

/// glibc: allocations up to `mmapThreshold` bytes come from the heap, and up to `trimThreshold`
/// free bytes stay there when buffers are freed, so a forward step's activation buffers (MiBs
/// each, allocated and freed every step) reuse heap pages instead of being mapped, zero-filled
/// by page faults and unmapped again each time. Returns 0 where there is no glibc.
static inline int sparrow_keep_freed_memory(int mmapThreshold, int trimThreshold) {
#if defined(__GLIBC__)
    return mallopt(M_MMAP_THRESHOLD, mmapThreshold) && mallopt(M_TRIM_THRESHOLD, trimThreshold);
#else
    (void)mmapThreshold; (void)trimThreshold;
    return 0;
#endif
}

static inline __attribute__((always_inline)) void sparrow_prefetch(const void *p) {
    __builtin_prefetch(p, 0, 3);
}

#if defined(__x86_64__)
#include <immintrin.h>

/// s + Σ over each 32-bit lane's four byte products of a (unsigned) and b (signed), exact
/// (AVX512-VNNI `vpdpbusd` on 256 bits; `_mm256_dpbusd_epi32` is a macro, which Swift cannot
/// import). Only for code compiled with these features, on CPUs that have them.
static inline __attribute__((always_inline, target("avx512vl,avx512vnni"))) __m256i sparrow_dpbusd256(__m256i s, __m256i a, __m256i b) {
    return _mm256_dpbusd_epi32(s, a, b);
}

/// s + Σ over each 32-bit lane's four byte products of a (unsigned) and b (signed), 512 bits.
static inline __attribute__((always_inline, target("avx512f,avx512vnni"))) __m512i sparrow_dpbusd512(__m512i s, __m512i a, __m512i b) {
    return _mm512_dpbusd_epi32(s, a, b);
}

/// lo in lanes 0–7, hi in lanes 8–15 (`_mm512_inserti64x4` takes an immediate).
static inline __attribute__((always_inline, target("avx512f"))) __m512i sparrow_join512i(__m256i lo, __m256i hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/// lo in lanes 0–7, hi in lanes 8–15.
static inline __attribute__((always_inline, target("avx512f"))) __m512 sparrow_join512(__m256 lo, __m256 hi) {
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)), _mm256_castps_pd(hi), 1));
}

/// x rounded to IEEE half precision and back, 8 lanes (vcvtps2ph, round to nearest even).
static inline __attribute__((always_inline, target("avx,f16c"))) __m256 sparrow_round_f16x8(__m256 x) {
    return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}

/// x rounded to IEEE half precision and back (vcvtps2ph, round to nearest even).
static inline __attribute__((always_inline, target("f16c"))) float sparrow_round_f16(float x) {
    return _cvtsh_ss(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT));
}
#endif

#endif
