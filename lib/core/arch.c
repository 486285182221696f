/* Which instruction set's kernels run: chosen once from cpuid, overridable with KAT_ARCH. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "core/kat_config.h"
#include "core/internal.h"

static const char *const arch_names[KAT_ARCH_COUNT] = {"ref", "avx2", "avx512"};
static atomic_int chosen = -1;

int kat_arch_supported(kat_arch arch)
{
    switch (arch) {
    case KAT_ARCH_REF:
        return 1;
    case KAT_ARCH_AVX2:
        return KAT_HAVE_AVX2_KERNELS && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma");
    case KAT_ARCH_AVX512:
        return KAT_HAVE_AVX512_KERNELS && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
    default:
        return 0;
    }
}

static kat_arch detect(void)
{
    const char *env = getenv("KAT_ARCH");
    if (env && *env) {
        for (int a = 0; a < KAT_ARCH_COUNT; a++)
            if (strcmp(env, arch_names[a]) == 0 && kat_arch_supported((kat_arch)a))
                return (kat_arch)a;
        /* An unknown or unsupported request falls back to detection rather than failing
         * every later call; `kat --version` shows what was chosen. */
    }
    for (int a = KAT_ARCH_COUNT - 1; a > 0; a--)
        if (kat_arch_supported((kat_arch)a))
            return (kat_arch)a;
    return KAT_ARCH_REF;
}

kat_arch kat_arch_get(void)
{
    int a = atomic_load(&chosen);
    if (a < 0) {
        a = (int)detect();
        atomic_store(&chosen, a);
    }
    return (kat_arch)a;
}

const char *kat_arch_name(void) { return arch_names[kat_arch_get()]; }

kat_status kat_arch_set(kat_arch arch)
{
    if ((int)arch < 0 || arch >= KAT_ARCH_COUNT)
        return kat__fail(KAT_EINVAL, "arch: unknown value %d", (int)arch);
    if (!kat_arch_supported(arch))
        return kat__fail(KAT_ENOTSUP, "arch: %s is not supported by this CPU or build",
                        arch_names[arch]);
    atomic_store(&chosen, (int)arch);
    return KAT_OK;
}
