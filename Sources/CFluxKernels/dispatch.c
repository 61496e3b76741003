#include "flux_kernels.h"
#include "dispatch.h"

#include <stdlib.h>

// Per thread, so that a test forcing the fallback cannot change the kernels other tests run
// concurrently. FLUX_PORTABLE_KERNELS=1 in the environment forces it for the whole process.
static _Thread_local int forced_portable = 0;

static int environment_forces_portable(void) {
    static int cached = -1;
    if (cached < 0) {
        const char *value = getenv("FLUX_PORTABLE_KERNELS");
        cached = value != NULL && value[0] == '1';
    }
    return cached;
}

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

int flux_dispatch_avx2(void) {
    return !forced_portable && !environment_forces_portable() && cpu_has_avx2_fma();
}

int flux_kernels_uses_avx2(void) { return flux_dispatch_avx2(); }

void flux_kernels_set_portable(int portable) { forced_portable = portable ? 1 : 0; }
