// Run-time choice between the AVX2+FMA kernels and the portable fallback.
#ifndef FLUX_DISPATCH_H
#define FLUX_DISPATCH_H

/// Nonzero when the AVX2+FMA variants should run (CPU support, not forced portable).
int flux_dispatch_avx2(void);

#if defined(__x86_64__) || defined(__i386__)
#define FLUX_HAVE_X86 1
#define FLUX_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define FLUX_HAVE_X86 0
#endif

#endif
