/* Thread count for kat's OpenMP regions. */
#include <stdatomic.h>
#include <stdlib.h>
#include "core/kat_config.h"
#include "core/internal.h"
#if KAT_HAVE_OPENMP
#include <omp.h>
#endif

static atomic_int requested;   /* 0: default */

int kat_num_threads(void)
{
    int n = atomic_load(&requested);
    if (n > 0)
        return n;
    const char *env = getenv("KAT_NUM_THREADS");
    if (env && *env) {
        long v = strtol(env, NULL, 10);
        if (v > 0 && v < 4096)
            return (int)v;
    }
#if KAT_HAVE_OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void kat_set_num_threads(int n) { atomic_store(&requested, n > 0 ? n : 0); }
