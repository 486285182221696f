/* Thread count for kat's OpenMP regions. */
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#include "core/kat_config.h"
#include "core/internal.h"
#if KAT_HAVE_OPENMP
#include <omp.h>
#endif

static atomic_int requested;   /* 0: default */

int kat_max_threads(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1)
        cpus = 1;
    return cpus > 1024 ? 4096 : 4 * (int)cpus;
}

static int capped(long n)
{
    int max = kat_max_threads();
    return n > max ? max : (int)n;
}

int kat_num_threads(void)
{
    int n = atomic_load(&requested);
    if (n > 0)
        return capped(n);
    const char *env = getenv("KAT_NUM_THREADS");
    if (env && *env) {
        long v = strtol(env, NULL, 10);
        if (v > 0)
            return capped(v);
    }
#if KAT_HAVE_OPENMP
    return capped(omp_get_max_threads());
#else
    return 1;
#endif
}

void kat_set_num_threads(int n) { atomic_store(&requested, n > 0 ? n : 0); }
