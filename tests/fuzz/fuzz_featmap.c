/* libFuzzer harness for the feature-map spec grammar (kat_featmap_spec_parse): the input is a
 * NUL-terminated spec. A refusal must be KAT_EPARSE or KAT_EINVAL with a sentence that names
 * the map and leaves the output untouched; an accepted spec of a modest size is built on R^d
 * and applied to a few rows (the constructors' own errors are allowed, a crash is not). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_bytes.h"
#include "kat/kat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *src = fuzz_cstring(data, size);
    if (!src)
        return 0;

    kat_featmap_spec spec, before;
    memset(&spec, 0xa5, sizeof spec);
    before = spec;
    kat_status st = kat_featmap_spec_parse(src, &spec);
    if (st != KAT_OK) {
        const char *msg = kat_last_error();
        if ((st != KAT_EPARSE && st != KAT_EINVAL) || memcmp(&spec, &before, sizeof spec) != 0 ||
            (strncmp(msg, "map '", 5) != 0 && strncmp(msg, "unknown map '", 13) != 0))
            abort();
        free(src);
        return 0;
    }
    if (strcmp(kat_featmap_kind_name(spec.kind), "unknown") == 0)
        abort();
    /* Build only what stays small: the grammar accepts sizes up to the library's limits. */
    const size_t d = 1 + (size ? data[0] % 3 : 0);
    const int small = spec.order <= 6 && spec.count <= 512 && spec.rank <= 8 &&
                      (spec.kind != KAT_FEATMAP_KIND_POLY || strlen(spec.expr) <= 32);
    kat_featmap *fm = NULL;
    if (small && kat_featmap_spec_create(&spec, d, 1, &fm) == KAT_OK) {
        const size_t D = kat_featmap_out_dim(fm);
        if (kat_featmap_in_dim(fm) != d || D == 0)
            abort();
        enum { N = 3 };
        double x[N * 3] = {0.5, -0.25, 1.0, 0.0, 1.0, 1.0, -1.5, 0.75, 0.0};
        double *f = malloc(N * D * sizeof *f);
        if (f && D <= 100000) {
            kat_dmat X = {N, d, d, x}, F = {N, D, D, f};
            st = kat_featmap_apply(fm, KAT_SIDE_QUERY, &X, &F);
            if (st != KAT_OK && st != KAT_EDOM)
                abort();
            double k;
            if (kat_featmap_spec_kernel(&spec, fm, x, x + d, &k) != KAT_OK && st == KAT_OK &&
                spec.kind != KAT_FEATMAP_KIND_GROUP)
                abort();
        }
        free(f);
        kat_featmap_destroy(fm);
    }
    free(src);
    return 0;
}
