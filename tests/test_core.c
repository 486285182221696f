/* Core: status texts, last-error sentences, allocation (and its failure hook), ISA choice,
 * seeded RNG, matrix views. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"

START_TEST(test_strerror)
{
    for (int s = 0; s < KAT_STATUS_COUNT; s++) {
        ck_assert_ptr_nonnull(kat_strerror((kat_status)s));
        ck_assert_int_gt((int)strlen(kat_strerror((kat_status)s)), 0);
    }
    ck_assert_str_eq(kat_strerror(KAT_OK), "success");
    ck_assert_str_eq(kat_strerror((kat_status)999), "unknown status");
    ck_assert_str_eq(kat_strerror((kat_status)-1), "unknown status");
}
END_TEST

START_TEST(test_alloc_aligned)
{
    for (size_t n = 0; n < 300; n += 37) {
        void *p = kat_malloc(n);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % 64, 0);
        kat_free(p);
    }
    double *z = kat_calloc(100, sizeof(double));
    for (int i = 0; i < 100; i++)
        ck_assert(z[i] == 0.0);
    kat_free(z);
    kat_free(NULL);
}
END_TEST

START_TEST(test_alloc_overflow)
{
    kat_clear_error();
    ck_assert_ptr_null(kat_calloc(SIZE_MAX / 2, 16));
    ck_assert_ptr_nonnull(strstr(kat_last_error(), "overflows"));
    ck_assert_ptr_null(kat_malloc(SIZE_MAX - 8));
}
END_TEST

START_TEST(test_alloc_injection)
{
    kat_debug_fail_alloc_at(2);
    void *a = kat_malloc(8);
    void *b = kat_malloc(8);
    void *c = kat_malloc(8);
    size_t made = kat_debug_fail_alloc_at(0);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_null(b);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(made, 3);
    ck_assert_ptr_nonnull(strstr(kat_last_error(), "injected"));
    kat_free(a);
    kat_free(c);
}
END_TEST

START_TEST(test_last_error_thread_local_and_clear)
{
    TU_EXPECT_ERR(kat_dmat_alloc(2, 2, NULL), KAT_EINVAL, "out");
    kat_clear_error();
    ck_assert_str_eq(kat_last_error(), "");
}
END_TEST

START_TEST(test_version)
{
    ck_assert_int_eq(kat_version_major(), atoi(kat_version()));
    ck_assert_ptr_nonnull(strstr(kat_blas_info(), "OpenBLAS"));
}
END_TEST

START_TEST(test_arch)
{
    kat_arch orig = kat_arch_get();
    ck_assert(kat_arch_supported(KAT_ARCH_REF));
    ck_assert(kat_arch_supported(orig));
    TU_OK(kat_arch_set(KAT_ARCH_REF));
    ck_assert_str_eq(kat_arch_name(), "ref");
    TU_EXPECT_ERR(kat_arch_set((kat_arch)7), KAT_EINVAL, "7");
    for (int a = 0; a < KAT_ARCH_COUNT; a++)
        if (!kat_arch_supported((kat_arch)a))
            TU_EXPECT_ERR(kat_arch_set((kat_arch)a), KAT_ENOTSUP, "not supported");
    TU_OK(kat_arch_set(orig));
}
END_TEST

START_TEST(test_threads)
{
    ck_assert_int_ge(kat_num_threads(), 1);
    kat_set_num_threads(3);
    ck_assert_int_eq(kat_num_threads(), 3);
    kat_set_num_threads(0);
    ck_assert_int_ge(kat_num_threads(), 1);
}
END_TEST

START_TEST(test_rng_deterministic)
{
    kat_rng *a, *b, *c;
    TU_OK(kat_rng_create(42, &a));
    TU_OK(kat_rng_create(42, &b));
    TU_OK(kat_rng_create(43, &c));
    int differ = 0;
    double sum = 0, sumsq = 0;
    const int n = 20000;
    for (int i = 0; i < n; i++) {
        double x = kat_rng_gaussian(a, 1.0), y = kat_rng_gaussian(b, 1.0);
        ck_assert(x == y);
        differ |= x != kat_rng_gaussian(c, 1.0);
        sum += x;
        sumsq += x * x;
    }
    ck_assert(differ);
    /* mean within 5 standard errors, variance within 5% */
    ck_assert_double_lt(fabs(sum / n), 5.0 / sqrt(n));
    ck_assert_double_lt(fabs(sumsq / n - 1.0), 0.05);
    for (int i = 0; i < 1000; i++) {
        double u = kat_rng_uniform(a);
        ck_assert(u >= 0.0 && u < 1.0);
        ck_assert_uint_lt(kat_rng_uint(a, 7), 7);
    }
    ck_assert_uint_eq(kat_rng_uint(a, 1), 0);
    kat_rng_destroy(a);
    kat_rng_destroy(b);
    kat_rng_destroy(c);
    kat_rng_destroy(NULL);
    TU_EXPECT_ERR(kat_rng_create(1, NULL), KAT_EINVAL, "out");
}
END_TEST

START_TEST(test_dmat)
{
    kat_dmat m;
    TU_OK(kat_dmat_alloc(3, 4, &m));
    ck_assert_uint_eq(m.ld, 4);
    TU_OK(kat_dmat_check(&m, "M", 1));
    m.data[5] = NAN;
    TU_EXPECT_ERR(kat_dmat_check(&m, "M", 1), KAT_EDOM, "(1, 1)");
    kat_dmat bad = m;
    bad.ld = 3;
    TU_EXPECT_ERR(kat_dmat_check(&bad, "M", 0), KAT_EINVAL, "ld = 3");
    bad.ld = SIZE_MAX / 4;
    TU_EXPECT_ERR(kat_dmat_check(&bad, "M", 0), KAT_ERANGE, "overflow");
    bad = m;
    bad.data = NULL;
    TU_EXPECT_ERR(kat_dmat_check(&bad, "Q", 0), KAT_EINVAL, "Q: data is NULL");
    TU_EXPECT_ERR(kat_dmat_check(NULL, "K", 0), KAT_EINVAL, "K is NULL");
    kat_dmat_free(&m);
    ck_assert_ptr_null(m.data);
    kat_dmat_free(NULL);
    TU_OK(kat_dmat_alloc(0, 5, &m));
    TU_OK(kat_dmat_check(&m, "empty", 1));
    kat_dmat_free(&m);
    TU_EXPECT_ERR(kat_dmat_alloc(SIZE_MAX, 2, &m), KAT_ERANGE, "overflows");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_strerror);
    tcase_add_test(tc, test_alloc_aligned);
    tcase_add_test(tc, test_alloc_overflow);
    tcase_add_test(tc, test_alloc_injection);
    tcase_add_test(tc, test_last_error_thread_local_and_clear);
    tcase_add_test(tc, test_version);
    tcase_add_test(tc, test_arch);
    tcase_add_test(tc, test_threads);
    tcase_add_test(tc, test_rng_deterministic);
    tcase_add_test(tc, test_dmat);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
