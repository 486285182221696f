/* Status texts and the thread-local last-error sentence. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "core/internal.h"

static _Thread_local char last_error[512];

const char *kat_strerror(kat_status st)
{
    static const char *const text[KAT_STATUS_COUNT] = {
        [KAT_OK] = "success",
        [KAT_EINVAL] = "invalid argument",
        [KAT_EDOM] = "non-finite value",
        [KAT_ERANGE] = "size out of range",
        [KAT_ENOMEM] = "out of memory",
        [KAT_ENOTSUP] = "not supported",
        [KAT_ELAPACK] = "LAPACK failure",
        [KAT_EPARSE] = "parse error",
        [KAT_EIO] = "input/output error",
        [KAT_EFORMAT] = "malformed file",
    };
    if ((int)st < 0 || st >= KAT_STATUS_COUNT)
        return "unknown status";
    return text[st];
}

const char *kat_last_error(void) { return last_error; }

void kat_clear_error(void) { last_error[0] = '\0'; }

kat_status kat__fail(kat_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return st;
}

size_t kat__first_nonfinite(const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!__builtin_isfinite(x[i]))
            return i;
    return n;
}

/* The exponent field all ones is inf or NaN. An integer test over the bits vectorises; a
 * floating-point reduction would not (its order is fixed without reassociation). */
int kat__all_finite(const double *x, size_t n)
{
    uint64_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t u;
        memcpy(&u, x + i, sizeof u);
        bad |= (uint64_t)((u & 0x7ff0000000000000u) == 0x7ff0000000000000u);
    }
    return bad == 0;
}

int kat__all_finite_f32(const float *x, size_t n)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        bad |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
    }
    return bad == 0;
}
