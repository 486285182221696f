/* Helpers shared by the Check suites. */
#ifndef KAT_TESTUTIL_H
#define KAT_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include "kat/kat.h"

/* Run one suite, TAP to CK_TAP_LOG_FILE_NAME; returns the process exit status. */
int tu_run_suite(Suite *s);

/* Assert that a call failed with the expected status and that the error sentence mentions
 * `needle` (e.g. the argument's name). */
#define TU_EXPECT_ERR(call, status, needle)                                                     \
    do {                                                                                        \
        kat_clear_error();                                                                      \
        kat_status st_ = (call);                                                                \
        ck_assert_msg(st_ == (status), "%s returned %s, expected %s (%s)", #call,              \
                      kat_strerror(st_), kat_strerror(status), kat_last_error());               \
        ck_assert_msg(strstr(kat_last_error(), (needle)) != NULL,                               \
                      "%s: error '%s' does not mention '%s'", #call, kat_last_error(), needle); \
    } while (0)

#define TU_OK(call)                                                                             \
    do {                                                                                        \
        kat_status st_ = (call);                                                                \
        ck_assert_msg(st_ == KAT_OK, "%s failed: %s: %s", #call, kat_strerror(st_),             \
                      kat_last_error());                                                        \
    } while (0)

/* A suite with one Check case per test, each case named as given (with the given timeout), so
 * that meson runs each case as its own test (CK_RUN_CASE, tests/meson.build). */
typedef struct {
    const char *name;
    const TTest *test;
} tu_case;
Suite *tu_suite_per_case(const char *suite, int timeout, const tu_case *cases, size_t n);

/* A temporary file path unique to this process (in $TMPDIR or /tmp); caller frees with free(). */
char *tu_tmpfile(const char *suffix);
/* Write bytes to a file; returns 0 on success. */
int tu_write_file(const char *path, const void *data, size_t len);
/* Whether slow, exhaustive checks should be trimmed (valgrind or sanitizer runs). */
int tu_quick(void);

#endif
