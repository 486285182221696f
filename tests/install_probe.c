/* The 20-line program a new user writes against the installed library (test_install.sh builds
 * it with `pkg-config --cflags --libs kat`): a rank probe and one attention call. */
#include <math.h>
#include <stdio.h>
#include <kat/kat.h>

int main(void)
{
    kat_fn *f; kat_rng *rng; kat_dmat Q, K; kat_rank_points_opts po; kat_rank_opts ro;
    kat_rank_result res;
    kat_rank_points_opts_init(&po);
    kat_rank_opts_init(&ro);
    if (kat_fn_parse("(1+x)^2", &f, NULL) || kat_rng_create(1, &rng) ||
        kat_dmat_alloc(100, 5, &Q) || kat_dmat_alloc(100, 5, &K) ||
        kat_rank_points(&po, rng, &Q) || kat_rank_points(&po, rng, &K) ||
        kat_rank_probe(f, &Q, &K, &ro, &res)) {
        fprintf(stderr, "rank probe: %s\n", kat_last_error());
        return 1;
    }
    printf("rank of (1+QK^T)^2, n = 100, d = 5: %zu (predicted %zu)\n", res.rank, res.predicted_rank);
    float q[4 * 8], k[4 * 8], v[4 * 8], o[4 * 8];
    for (int i = 0; i < 32; i++) { q[i] = sinf(i); k[i] = cosf(i); v[i] = (float)i; }
    kat_tensor tq = kat_tensor_view(q, 1, 1, 4, 8), tk = kat_tensor_view(k, 1, 1, 4, 8),
               tv = kat_tensor_view(v, 1, 1, 4, 8), to = kat_tensor_view(o, 1, 1, 4, 8);
    if (kat_attn_dense_forward(&tq, &tk, &tv, &to, NULL, 1, 0.0)) {
        fprintf(stderr, "attention: %s\n", kat_last_error());
        return 1;
    }
    printf("causal attention: o[0][0] = %g (first query sees only v[0][0] = 0)\n", o[0]);
    int ok = res.rank == 21 && res.predicted_rank == 21 && o[0] == 0.0f;
    kat_rank_result_free(&res); kat_dmat_free(&Q); kat_dmat_free(&K);
    kat_rng_destroy(rng); kat_fn_destroy(f);
    return ok ? 0 : 1;
}
