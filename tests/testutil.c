#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testutil.h"

int tu_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

Suite *tu_suite_per_case(const char *suite, int timeout, const tu_case *cases, size_t n)
{
    Suite *s = suite_create(suite);
    for (size_t i = 0; i < n; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, timeout);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return s;
}

char *tu_tmpfile(const char *suffix)
{
    static int counter;
    const char *dir = getenv("TMPDIR");
    char *path = malloc(512);
    snprintf(path, 512, "%s/kat_test_%ld_%d%s", dir && *dir ? dir : "/tmp", (long)getpid(),
             counter++, suffix ? suffix : "");
    return path;
}

int tu_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

int tu_quick(void)
{
    const char *v = getenv("KAT_VALGRIND"), *s = getenv("KAT_SANITIZE");
    return (v && *v == '1') || (s && *s == '1');
}
