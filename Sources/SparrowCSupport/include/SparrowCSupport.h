// The one thing Swift cannot emit itself: a software prefetch (`__builtin_prefetch` and
// `_mm_prefetch` are compiler builtins/macros, which Swift's Clang importer does not expose).
// Static inline, so calls from Swift inline to a single prefetcht0 instruction.
#ifndef SPARROW_C_SUPPORT_H
#define SPARROW_C_SUPPORT_H

static inline __attribute__((always_inline)) void sparrow_prefetch(const void *p) {
    __builtin_prefetch(p, 0, 3);
}

#endif
