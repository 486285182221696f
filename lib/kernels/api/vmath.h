/* The kernels layer's vector math for the layers above it that do not run attention tiles
 * (theory's random feature maps): the dispatched per-ISA routines behind a plain function,
 * so those layers never see the kernel table (kernels/kernels.h). Never installed. */
#ifndef KAT_KERNELS_VMATH_H
#define KAT_KERNELS_VMATH_H

#include <stddef.h>

/* y[i] = 2^x[i] for i < n (x == y allowed), with the ISA's kernel (kat_arch_get()): the
 * accuracy and special values of the kernel table's exp2 (lib/kernels/kernels.h). */
void kat__kernels_exp2(size_t n, const float *x, float *y);

#endif
