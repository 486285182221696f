/* Rank module, the expensive cases: generic ranks at n = 1024, and the randomized path
 * against the dense one at n = 4096. */
#include "test_rank_util.h"

START_TEST(test_generic_ranks_n1024)
{
    size_t n = 1024, d = 11;
    kat_dmat Q = tr_points(KAT_RANK_DIST_GAUSS, n, d, 1);
    kat_dmat K = tr_points(KAT_RANK_DIST_GAUSS, n, d, 2);
    const tr_case cases[] = {
        {"x^4", {0, 0, 0, 0, 1}, 5, 1001},
        {"(1+x)^3", {1, 3, 3, 1}, 4, 364},
        {"(1+x)^4", {1, 4, 6, 4, 1}, 5, 1024},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        tr_check_generic(&cases[c], &Q, &K, KAT_RANK_DENSE);
    kat_dmat_free(&Q);
    kat_dmat_free(&K);
}
END_TEST

START_TEST(test_randomized_n4096)
{
    size_t n = 4096;
    const tr_case cases[] = {
        {"(1+x)^3", {1, 3, 3, 1}, 4, 165},   /* d = 8: 1 + 8 + 36 + 120 */
        {"x^4+x", {0, 1, 0, 0, 1}, 5, 132},  /* d = 6 */
    };
    const size_t dims[] = {8, 6};
    for (size_t c = 0; c < 2; c++) {
        kat_dmat Q = tr_points(KAT_RANK_DIST_GAUSS, n, dims[c], 3 + c);
        kat_dmat K = tr_points(KAT_RANK_DIST_GAUSS, n, dims[c], 5 + c);
        tr_check_generic(&cases[c], &Q, &K, KAT_RANK_DENSE);
        tr_check_generic(&cases[c], &Q, &K, KAT_RANK_RANDOMIZED);
        kat_dmat_free(&Q);
        kat_dmat_free(&K);
    }
}
END_TEST

START_TEST(test_randomized_eps_exp_n4096)
{
    size_t n = 4096, d = 6;
    kat_dmat Q = tr_points(KAT_RANK_DIST_GAUSS, n, d, 7);
    kat_dmat K = tr_points(KAT_RANK_DIST_GAUSS, n, d, 8);
    kat_fn *f;
    TU_OK(kat_fn_builtin("exp", &f));
    tr_check_eps_agreement(f, &Q, &K, 1e-6, 0.02);
    kat_fn_destroy(f);
    kat_dmat_free(&Q);
    kat_dmat_free(&K);
}
END_TEST

int main(void)
{
    /* One case per test: meson runs each as its own test. */
    const tu_case cases[] = {
        {"generic_ranks_n1024", test_generic_ranks_n1024},
        {"randomized_n4096", test_randomized_n4096},
        {"randomized_eps_exp_n4096", test_randomized_eps_exp_n4096},
    };
    Suite *s = tu_suite_per_case("rank_slow", 1200, cases, sizeof cases / sizeof cases[0]);
    return tu_run_suite(s);
}
