/* experiments/timing_conditions.c: the conditions of a timing, and what they let it claim. The
 * sgemm measurement is a scripted stand-in, so every branch runs on any machine. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "timing_conditions.h"

/* The rates the stand-in returns, in call order. */
static double script_rates[2];
static int script_calls;
static size_t script_n;
static int script_threads;

static double scripted_sgemm(size_t n, int threads, int reps)
{
    ck_assert_int_eq(reps, 3);
    script_n = n;
    script_threads = threads;
    return script_rates[script_calls++ % 2];
}

static void run(double before, double after, timing_conditions *c)
{
    script_rates[0] = before;
    script_rates[1] = after;
    script_calls = 0;
    timing_begin(c, scripted_sgemm, 2048, 2);
    ck_assert_int_eq(script_calls, 1);   /* the reference before the work */
    timing_end(c);
    ck_assert_int_eq(script_calls, 2);   /* and after it */
    ck_assert_uint_eq(script_n, 2048);
    ck_assert_int_eq(script_threads, 2);
}

START_TEST(test_steady)
{
    timing_conditions c;
    run(100.0, 95.0, &c);   /* 5% apart */
    ck_assert(timing_steady(&c));
    ck_assert_double_eq_tol(timing_drift(&c), 0.05, 1e-12);
    ck_assert_double_eq(timing_reference(&c), 100.0);   /* the higher rate */
    char line[512], warning[512];
    timing_describe(&c, line, sizeof line);
    ck_assert_msg(strstr(line, "; sgemm 2048^3 on 2 threads: 100.0 GFLOP/s before, 95.0 after "
                               "(5.0% apart, tolerance 10%)") != NULL, "%s", line);
    ck_assert_msg(strstr(line, "load average (1, 5, 15 min) ") == line, "%s", line);
    ck_assert_msg(strstr(line, " before, ") && strstr(line, " after, ") && strstr(line, " CPUs"),
                  "%s", line);
    timing_warning(&c, warning, sizeof warning);
    ck_assert_str_eq(warning, "");
}
END_TEST

START_TEST(test_moved)
{
    timing_conditions c;
    run(70.0, 100.0, &c);   /* 30% apart: a busy machine */
    ck_assert(!timing_steady(&c));
    ck_assert_double_eq(timing_reference(&c), 0.0);   /* no percentage against it */
    char warning[512];
    timing_warning(&c, warning, sizeof warning);
    ck_assert_str_eq(warning, "the sgemm reference moved from 70.0 to 100.0 GFLOP/s during the "
                              "run (30% apart, more than the 10% tolerance): the machine's load "
                              "changed");
    /* At the tolerance itself, still steady; just beyond, not. */
    run(90.0, 100.0, &c);
    ck_assert(timing_steady(&c));
    run(100.0, 89.9, &c);
    ck_assert(!timing_steady(&c));
}
END_TEST

START_TEST(test_no_reference)
{
    timing_conditions c;
    run(0.0, 0.0, &c);   /* no memory for the product */
    ck_assert(!timing_steady(&c));
    ck_assert_double_eq(timing_reference(&c), 0.0);
    char line[512], warning[512];
    timing_describe(&c, line, sizeof line);
    ck_assert_msg(strstr(line, "; sgemm 2048^3 on 2 threads could not run (no memory for its "
                               "three matrices)") != NULL, "%s", line);
    timing_warning(&c, warning, sizeof warning);
    ck_assert_str_eq(warning, "the sgemm reference could not run (no memory for its three "
                              "matrices)");
    /* sgemm_n = 0: the caller asked for none; the load is still given, and nothing warns. */
    script_calls = 0;
    timing_begin(&c, scripted_sgemm, 0, 2);
    timing_end(&c);
    ck_assert_int_eq(script_calls, 0);
    timing_describe(&c, line, sizeof line);
    ck_assert_msg(strstr(line, "; no sgemm reference") != NULL, "%s", line);
    timing_warning(&c, warning, sizeof warning);
    ck_assert_str_eq(warning, "");
}
END_TEST

/* A percentage is quoted only below the reference; above it, or without a steady reference,
 * none, and the warning says which. */
START_TEST(test_share)
{
    timing_conditions c;
    char warning[512];
    run(100.0, 95.0, &c);   /* steady; the reference is 100 */
    ck_assert_double_eq_tol(timing_share(&c, 60.0), 60.0, 1e-12);
    ck_assert_double_eq_tol(timing_share(&c, 100.0), 100.0, 1e-12);
    timing_share_warning(&c, 60.0, warning, sizeof warning);
    ck_assert_str_eq(warning, "");
    ck_assert(isnan(timing_share(&c, 143.0)));   /* the report's 143% under load */
    timing_share_warning(&c, 143.0, warning, sizeof warning);
    ck_assert_str_eq(warning, "143.0 GFLOP/s is 143% of the sgemm reference (100.0 GFLOP/s), "
                              "above what the machine's GEMM does: the load was lighter while "
                              "the kernel ran than when the reference was measured");
    run(70.0, 100.0, &c);   /* moved: no percentage even for a rate below both */
    ck_assert(isnan(timing_share(&c, 50.0)));
    timing_share_warning(&c, 50.0, warning, sizeof warning);
    ck_assert_msg(strstr(warning, "the sgemm reference moved from 70.0 to 100.0 GFLOP/s") ==
                  warning, "%s", warning);
    run(0.0, 0.0, &c);
    ck_assert(isnan(timing_share(&c, 50.0)));
}
END_TEST

START_TEST(test_json)
{
    timing_conditions c;
    run(100.0, 50.0, &c);
    char *path = tu_tmpfile(".json");
    FILE *f = fopen(path, "w+");
    ck_assert_ptr_nonnull(f);
    cli_json j;
    cli_json_begin(&j, f);
    timing_json(&c, &j, "conditions");
    cli_json_end(&j);
    rewind(f);
    char buf[1024] = "";
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    buf[len] = '\0';
    fclose(f);
    remove(path);
    free(path);
    ck_assert_msg(strstr(buf, "\"sgemm_gflops_before\": 100") || strstr(buf, "\"sgemm_gflops_before\":100"),
                  "%s", buf);
    ck_assert_msg(strstr(buf, "\"steady\": false") || strstr(buf, "\"steady\":false"), "%s", buf);
    ck_assert_msg(strstr(buf, "0.5"), "%s", buf);   /* the drift */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("timing");
    TCase *tc = tcase_create("conditions");
    tcase_add_test(tc, test_steady);
    tcase_add_test(tc, test_moved);
    tcase_add_test(tc, test_no_reference);
    tcase_add_test(tc, test_share);
    tcase_add_test(tc, test_json);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
