/* The kernel table in use: the ISA kat_arch_get() selects (cpuid, or KAT_ARCH=ref|avx2|avx512). */
#include "kernels/kernels.h"
#include "kernels/api/vmath.h"

const kat_kernels *kat__kernels_for(kat_arch arch)
{
    if (!kat_arch_supported(arch))
        return NULL;
    switch (arch) {
    case KAT_ARCH_REF:
        return &kat__kernels_ref;
#if KAT_HAVE_AVX2_KERNELS
    case KAT_ARCH_AVX2:
        return &kat__kernels_avx2;
#endif
#if KAT_HAVE_AVX512_KERNELS
    case KAT_ARCH_AVX512:
        return &kat__kernels_avx512;
#endif
    default:
        return NULL;
    }
}

const kat_kernels *kat__kernels_get(void)
{
    const kat_kernels *k = kat__kernels_for(kat_arch_get());
    return k ? k : &kat__kernels_ref;
}

void kat__kernels_exp2(size_t n, const float *x, float *y)
{
    kat__kernels_get()->exp2(n, x, y);
}
