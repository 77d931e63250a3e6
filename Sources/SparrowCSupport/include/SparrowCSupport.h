// What Swift cannot emit itself: a software prefetch (`__builtin_prefetch` and `_mm_prefetch`
// are compiler builtins/macros, which Swift's Clang importer does not expose) and the F16C
// float → half conversion (`_mm256_cvtps_ph` takes an immediate, so it is a macro too).
// Static inline, so calls from Swift inline to the instructions themselves.
#ifndef SPARROW_C_SUPPORT_H
#define SPARROW_C_SUPPORT_H

static inline __attribute__((always_inline)) void sparrow_prefetch(const void *p) {
    __builtin_prefetch(p, 0, 3);
}

#if defined(__x86_64__)
#include <immintrin.h>

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
