/* The must-hold accuracy grid of the flash engine: forward and backward against the fp64
 * reference, at most twice the naive fp32 error (attn_testutil.h), for every head dimension
 * D in {16, 32, 64, 80, 128, 256}, every N and M in {1, 7, 63, 64, 65, 1000, 4097}, causal
 * and not, with every ISA's kernels; then grouped-query attention and strided / transposed
 * views at the large sizes. Minutes of work: suite 'slow'. */
#include "attn_testutil.h"

static const size_t dims[] = {16, 32, 64, 80, 128, 256};
static const size_t lens[] = {1, 7, 63, 64, 65, 1000, 4097};

START_TEST(test_grid_full)
{
    size_t D = dims[_i], nl = sizeof lens / sizeof lens[0];
    if (tu_quick())
        nl = 5;   /* sanitizers: the small lengths only */
    for (size_t a = 0; a < nl; a++)
        for (size_t b = 0; b < nl; b++)
            for (int causal = 0; causal < 2; causal++) {
                kat_attn_desc d = {1, 1, 0, lens[a], lens[b], D, causal, 0, 0};
                at_check(&d, LAYOUT_CONTIGUOUS, 5000 + 100 * a + 10 * b + (uint64_t)causal, 1);
            }
}
END_TEST

/* GQA and every layout at sizes that cross many tiles, for every ISA (at_check). */
START_TEST(test_variants_large)
{
    const kat_attn_desc cases[] = {
        {1, 4, 2, 1000, 4097, 64, 1, 0, 0},
        {1, 4, 1, 4097, 1000, 128, 0, 0, 0},
        {2, 2, 1, 1000, 1000, 80, 1, 0, 0},
        {1, 8, 2, 7, 4097, 256, 1, 0, 0},   /* decoding a group against a long cache */
    };
    size_t nc = tu_quick() ? 0 : sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < nc; i++)
        at_check(&cases[i], (int)(i % LAYOUT_COUNT), 9000 + i, 1);
    for (int layout = 1; layout < LAYOUT_COUNT && !tu_quick(); layout++) {
        kat_attn_desc d = {1, 2, 0, 1000, 4097, 32, 1, 0, 0};
        at_check(&d, layout, 9100 + (uint64_t)layout, 1);
    }
}
END_TEST

int main(void)
{
    /* One case per head dimension and one for the variants: meson runs each as its own test
     * (CK_RUN_CASE, tests/meson.build), so the minutes of this suite report as they pass. */
    static const char *const cases[] = {"d16", "d32", "d64", "d80", "d128", "d256"};
    Suite *s = suite_create("attn_slow");
    for (int i = 0; i < (int)(sizeof dims / sizeof dims[0]); i++) {
        TCase *tc = tcase_create(cases[i]);
        tcase_set_timeout(tc, 1800);
        tcase_add_loop_test(tc, test_grid_full, i, i + 1);
        suite_add_tcase(s, tc);
    }
    TCase *tc = tcase_create("variants");
    tcase_set_timeout(tc, 1800);
    tcase_add_test(tc, test_variants_large);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
