#include "flux_kernels.h"
#include "dispatch.h"

// Read by every kernel call; written only by tests and benchmarks before they run kernels.
static volatile int forced_portable = 0;

static int cpu_has_avx2_fma(void) {
#if FLUX_HAVE_X86
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return cached;
#else
    return 0;
#endif
}

int flux_dispatch_avx2(void) { return !forced_portable && cpu_has_avx2_fma(); }

int flux_kernels_uses_avx2(void) { return flux_dispatch_avx2(); }

void flux_kernels_set_portable(int portable) { forced_portable = portable ? 1 : 0; }
