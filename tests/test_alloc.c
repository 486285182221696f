/* Allocation failures: for each public entry point, make the n-th allocation fail for every n
 * until the call no longer allocates past n. Each failing call must return KAT_ENOMEM (or
 * KAT_ERANGE), leave the caller's data unchanged and leak nothing (LeakSanitizer and valgrind
 * runs of this suite check the last part). */
#include <stdlib.h>
#include <string.h>
#include "testutil.h"

/* One entry point under test: `call` runs it; `release` frees what
 * a successful call produced. */
typedef struct {
    const char *name;
    kat_status (*call)(void *ctx);
    void (*release)(void *ctx);   /* after a successful call; may be NULL */
} entry;

/* Run e with the n-th allocation failing, n = 1, 2, ... until one run succeeds. */
static void sweep(const entry *e, void *ctx, const void *data, size_t data_len)
{
    void *before = data_len ? malloc(data_len) : NULL;
    if (data_len)
        memcpy(before, data, data_len);
    for (size_t n = 1; n < 100000; n++) {
        kat_debug_fail_alloc_at(n);
        kat_status st = e->call(ctx);
        size_t made = kat_debug_fail_alloc_at(0);
        if (data_len)
            ck_assert_msg(memcmp(before, data, data_len) == 0,
                          "%s: caller's data changed when allocation %zu failed", e->name, n);
        if (st == KAT_OK) {
            if (e->release)
                e->release(ctx);
            ck_assert_msg(made < n, "%s succeeded although allocation %zu of %zu failed",
                          e->name, n, made);
            free(before);
            return;
        }
        ck_assert_msg(st == KAT_ENOMEM || st == KAT_ERANGE,
                      "%s: allocation %zu failed, status %s: %s", e->name, n, kat_strerror(st),
                      kat_last_error());
    }
    ck_abort_msg("%s never succeeded", e->name);
}

/* ---- entries ------------------------------------------------------------------------- */

static kat_fn *fn_out;
static kat_status call_fn_poly(void *ctx)
{
    return kat_fn_poly((const double *)ctx, 4, &fn_out);
}
static kat_status call_fn_pow(void *ctx) { return kat_fn_pow(3.0, &fn_out); }
static kat_status call_fn_builtin(void *ctx) { return kat_fn_builtin("gelu", &fn_out); }
static void release_fn(void *ctx) { kat_fn_destroy(fn_out); fn_out = NULL; }

static kat_rng *rng_out;
static kat_status call_rng(void *ctx) { return kat_rng_create(7, &rng_out); }
static void release_rng(void *ctx) { kat_rng_destroy(rng_out); }

static kat_dmat dmat_out;
static kat_status call_dmat(void *ctx) { return kat_dmat_alloc(5, 7, &dmat_out); }
static void release_dmat(void *ctx) { kat_dmat_free(&dmat_out); }

START_TEST(test_core_and_fn)
{
    double coef[4] = {1, 3, 3, 1};
    const entry entries[] = {
        {"kat_fn_poly", call_fn_poly, release_fn},
        {"kat_fn_pow", call_fn_pow, release_fn},
        {"kat_fn_builtin", call_fn_builtin, release_fn},
        {"kat_rng_create", call_rng, release_rng},
        {"kat_dmat_alloc", call_dmat, release_dmat},
    };
    for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++)
        sweep(&entries[i], coef, coef, sizeof coef);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("alloc");
    TCase *tc = tcase_create("alloc");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_core_and_fn);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
