/* The rank probe from C, through the public API only: how the numerical rank of f(Q K^T)
 * grows with n for a polynomial (it levels off at the rank theory predicts) and for exp (it
 * keeps growing). Exit status 0 when every polynomial rank equals the prediction.
 * Build and run, with kat installed (docs/user-guide.md, "Install"):
 *     cc rank_probe.c -o rank_probe $(pkg-config --cflags --libs kat)
 *     ./rank_probe
 */
#include <stdio.h>
#include "kat/kat.h"
#include "kat/rank.h"

static int probe(const char *expr, size_t n, size_t d, unsigned long long seed)
{
    kat_fn *f = NULL;
    kat_rng *rng = NULL;
    kat_dmat Q = {0}, K = {0};
    kat_rank_points_opts points;
    kat_rank_opts opts;
    kat_rank_result res;
    kat_rank_points_opts_init(&points);   /* Gaussian, N(0, 1/d) entries */
    kat_rank_opts_init(&opts);            /* dense SVD, tolerance sigma_1 * max(m, n) * eps */
    kat_status st = kat_fn_parse(expr, &f, NULL);
    if (!st) st = kat_rng_create(seed, &rng);
    if (!st) st = kat_dmat_alloc(n, d, &Q);
    if (!st) st = kat_dmat_alloc(n, d, &K);
    if (!st) st = kat_rank_points(&points, rng, &Q);
    if (!st) st = kat_rank_points(&points, rng, &K);
    if (!st) st = kat_rank_probe(f, &Q, &K, &opts, &res);
    int ok = st == KAT_OK;
    if (!ok) {
        fprintf(stderr, "%s: %s: %s\n", expr, kat_strerror(st), kat_last_error());
    } else {
        printf("%-10s n = %4zu  rank = %4zu  predicted = ", expr, n, res.rank);
        if (res.predicted_rank == KAT_RANK_NONE)
            printf("(not a polynomial)");
        else
            printf("%zu", res.predicted_rank);
        printf("  stable rank = %.2f\n", res.stable_rank);
        ok = res.predicted_rank == KAT_RANK_NONE || res.predicted_rank == res.rank;
        kat_rank_result_free(&res);
    }
    kat_dmat_free(&Q);
    kat_dmat_free(&K);
    kat_rng_destroy(rng);
    kat_fn_destroy(f);
    return ok;
}

int main(void)
{
    const size_t d = 6, ns[] = {50, 100, 200, 400};
    int ok = 1;
    for (size_t i = 0; i < 4; i++)
        ok &= probe("(1+x)^3", ns[i], d, 1);   /* levels off at C(3 + 6, 3) = 84 */
    for (size_t i = 0; i < 4; i++)
        ok &= probe("exp(x)", ns[i], d, 1);    /* full rank: grows with n */
    return ok ? 0 : 1;
}
