/* Element masks on score tiles, in plain C so that each ISA library compiles (and the compiler
 * vectorises) them with its own flags. Included once per ISA; the functions are static. */
#ifndef KAT_KERNELS_MASKS_H
#define KAT_KERNELS_MASKS_H

#include <math.h>
#include <stdint.h>
#include "kernels/kernels.h"

static void kat_masks_causal(size_t nrows, size_t lanes, float *s, const int32_t *kpos,
                             const int32_t *qlim)
{
    for (size_t j = 0; j < nrows; j++) {
        int32_t kp = kpos[j];
        float *row = s + j * KAT_KERN_LANES;
        for (size_t i = 0; i < lanes; i++)
            row[i] = kp <= qlim[i] ? row[i] : -INFINITY;
    }
}

static void kat_masks_bits(size_t nrows, size_t lanes, float *s, const uint64_t *bits)
{
    for (size_t j = 0; j < nrows; j++) {
        uint64_t b = bits[j];
        float *row = s + j * KAT_KERN_LANES;
        for (size_t i = 0; i < lanes; i++)
            row[i] = (b >> i) & 1u ? row[i] : -INFINITY;
    }
}

#endif
