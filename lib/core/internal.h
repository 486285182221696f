/* Private helpers shared by every part of the library (never installed). */
#ifndef KAT_INTERNAL_H
#define KAT_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include "kat/core.h"

/* Record the calling thread's error sentence (printf-style) and return st, so a failure is
 * one line: `return kat__fail(KAT_EINVAL, "n must be >= 1 (got %zu)", n);` */
kat_status kat__fail(kat_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Overflow-checked size arithmetic: return 0 and set *out, or return 1 on overflow. */
static inline int kat_mul_overflow(size_t a, size_t b, size_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}
static inline int kat_add_overflow(size_t a, size_t b, size_t *out)
{
    return __builtin_add_overflow(a, b, out);
}
/* a*b*c with overflow check. */
static inline int kat_mul3_overflow(size_t a, size_t b, size_t c, size_t *out)
{
    size_t t;
    return __builtin_mul_overflow(a, b, &t) || __builtin_mul_overflow(t, c, out);
}

/* Allocate count*size bytes (aligned, uninitialised) with the overflow check folded in;
 * `what` names the buffer in the error. */
void *kat__alloc_array(size_t count, size_t size, const char *what);

/* 1 if every x[i*stride] (i < n) is finite. */
int kat__all_finite(const double *x, size_t n);
int kat__all_finite_f32(const float *x, size_t n);
/* Index of the first non-finite value, or n. */
size_t kat__first_nonfinite(const double *x, size_t n);

#define KAT_ALIGN 64

#endif
