/* What the tests of libkat-cuda's C API without a GPU share: fake device pointers (never
 * dereferenced: they only have to look aligned), views over them, and the runner of the tests
 * as one Check case. */
#ifndef KAT_CUDA_API_TEST_H
#define KAT_CUDA_API_TEST_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "kat/cuda.h"

#define FAKE(addr) ((void *)(uintptr_t)(addr))

/* A [B, heads, N, D] tensor at addr, rows contiguous. */
static inline kat_cuda_view view(uintptr_t addr, int64_t N, int64_t D, int64_t heads) {
    kat_cuda_view v = {FAKE(addr), {heads * N * D, N * D, D}};
    return v;
}

/* Runs the tests as the case "api" of the named suite; returns the process exit status. */
static inline int run_api_tests(const char *suite, const TTest *const *tests, size_t n) {
    Suite *s = suite_create(suite);
    TCase *tc = tcase_create("api");
    for (size_t i = 0; i < n; i++) tcase_add_test(tc, tests[i]);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

#endif
