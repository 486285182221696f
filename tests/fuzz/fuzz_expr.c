/* libFuzzer harness for the expression compiler: parse the input as a NUL-terminated string;
 * on success evaluate it on a block of awkward values (block vs scalar, in place) and read
 * its polynomial form; on failure check the error contract (status, column, err_pos). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_bytes.h"
#include "kat/kat.h"

static int same(double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return memcmp(&a, &b, sizeof a) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *src = fuzz_cstring(data, size);
    if (!src)
        return 0;
    size_t len = strlen(src);

    kat_fn *f = NULL;
    size_t pos = (size_t)-1;
    kat_status st = kat_fn_parse(src, &f, &pos);
    if (st != KAT_OK) {
        if (st != KAT_EPARSE && st != KAT_ENOMEM && st != KAT_ERANGE)
            abort();
        if (f != NULL)
            abort();
        if (st == KAT_EPARSE && (pos > len || strncmp(kat_last_error(), "column ", 7) != 0))
            abort();
        free(src);
        return 0;
    }
    if (strcmp(kat_fn_name(f), src) != 0)
        abort();

    enum { N = 300 };   /* more than one block of 256 */
    static const double special[] = {0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 1e-310, -1e300, 1e300,
                                     INFINITY, -INFINITY, NAN, 3.14159, -7.25, 64.0, 709.0};
    double x[N], y[N], z[N];
    for (size_t i = 0; i < N; i++)
        x[i] = i < sizeof special / sizeof special[0] ? special[i] : (double)i / 7.0 - 20.0;
    kat_fn_eval_unchecked(f, x, y, N);
    memcpy(z, x, sizeof z);
    kat_fn_eval_unchecked(f, z, z, N);
    for (size_t i = 0; i < N; i++) {
        if (!same(y[i], z[i]) || !same(y[i], kat_fn_eval1(f, x[i])))
            abort();
    }
    (void)kat_fn_eval(f, x, y, N);

    double coef[65];
    int deg = kat_fn_poly_coeffs(f, coef, 65);
    if (deg > 64 || deg != kat_fn_poly_degree(f))
        abort();
    for (int t = 0; t <= deg; t++)
        if (!isfinite(coef[t]))
            abort();
    if (deg > 0 && coef[deg] == 0.0)
        abort();   /* trailing zeros are trimmed */
    kat_fn_destroy(f);
    free(src);
    return 0;
}
