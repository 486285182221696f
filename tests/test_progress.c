/* experiments/progress.c: a redrawn line on a terminal, nothing anywhere else. The terminal is a
 * pseudo-terminal opened here, so the test needs no real one. */
#define _XOPEN_SOURCE 600
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "progress.h"
#include "testutil.h"

/* Everything written so far to a file. */
static void contents(FILE *f, char *buf, size_t n)
{
    fflush(f);
    rewind(f);
    size_t len = fread(buf, 1, n - 1, f);
    buf[len] = '\0';
}

START_TEST(test_silent_off_a_terminal)
{
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    progress p;
    progress_start(&p, f, "kat test", 0);
    ck_assert(!p.active);
    progress_update(&p, 0.5, "step %d", 2);
    progress_tick_start(&p, 10.0, "svd");
    usleep(300000);
    progress_tick_stop(&p);
    progress_note(&p, "step 2: done");   /* a result line stays, terminal or not */
    progress_finish(&p);
    char buf[256];
    contents(f, buf, sizeof buf);
    ck_assert_str_eq(buf, "step 2: done\n");
    fclose(f);
}
END_TEST

START_TEST(test_quiet)
{
    FILE *f = tmpfile();
    progress p;
    progress_start(&p, f, "kat test", 1);
    progress_update(&p, 0.5, "step");
    progress_note(&p, "step: done");
    progress_finish(&p);
    char buf[64];
    contents(f, buf, sizeof buf);
    ck_assert_str_eq(buf, "");
    fclose(f);
}
END_TEST

/* A pseudo-terminal: progress writes to the follower side, the test reads the leader. */
static int open_pty(FILE **follower)
{
    int leader = posix_openpt(O_RDWR | O_NOCTTY);
    ck_assert_int_ge(leader, 0);
    ck_assert_int_eq(grantpt(leader), 0);
    ck_assert_int_eq(unlockpt(leader), 0);
    int fd = open(ptsname(leader), O_RDWR | O_NOCTTY);
    ck_assert_int_ge(fd, 0);
    *follower = fdopen(fd, "w");
    ck_assert_ptr_nonnull(*follower);
    return leader;
}

static void read_pty(int leader, char *buf, size_t n)
{
    size_t len = 0;
    struct pollfd pfd = {leader, POLLIN, 0};
    while (len + 1 < n && poll(&pfd, 1, 200) > 0) {
        ssize_t k = read(leader, buf + len, n - 1 - len);
        if (k <= 0)
            break;
        len += (size_t)k;
    }
    buf[len] = '\0';
}

START_TEST(test_terminal)
{
    FILE *tty;
    int leader = open_pty(&tty);
    progress p;
    progress_start(&p, tty, "kat test", 0);
    ck_assert(p.active);
    progress_update(&p, 0.25, "step %d of %d", 1, 4);
    progress_update(&p, 0.30, "too soon");   /* within 0.2 s of the last: not drawn */
    char buf[1024];
    read_pty(leader, buf, sizeof buf);
    ck_assert_msg(strstr(buf, "kat test: step 1 of 4  25% (0:00 elapsed, about 0:00 left)"),
                  "%s", buf);
    ck_assert_msg(!strstr(buf, "too soon"), "%s", buf);
    /* A note clears the line (carriage return, erase) and stays. */
    progress_note(&p, "step 1: done");
    read_pty(leader, buf, sizeof buf);
    ck_assert_msg(strstr(buf, "\r\033[Kstep 1: done"), "%s", buf);
    /* Drawn, cleared for other output, then drawn again at once (no 0.2 s wait). */
    progress_update(&p, 0.4, "step %d of %d", 2, 4);
    progress_clear(&p);
    progress_update(&p, 0.5, "step %d of %d", 2, 4);
    read_pty(leader, buf, sizeof buf);
    ck_assert_msg(strstr(buf, "kat test: step 2 of 4  40%"), "%s", buf);
    ck_assert_msg(strstr(buf, "\r\033[Kkat test: step 2 of 4  50%"), "%s", buf);
    /* The ticker redraws while a call runs, then stops. */
    progress_tick_start(&p, 100.0, "dense SVD");
    usleep(600000);
    progress_tick_stop(&p);
    read_pty(leader, buf, sizeof buf);
    ck_assert_msg(strstr(buf, "kat test: dense SVD   0% (0:0"), "%s", buf);
    /* Past its estimate the line says so, and never "0:00 left". */
    progress_tick_start(&p, 0.2, "dense SVD");
    usleep(600000);
    progress_tick_stop(&p);
    read_pty(leader, buf, sizeof buf);
    ck_assert_msg(strstr(buf, "kat test: dense SVD  99% (0:0"), "%s", buf);
    ck_assert_msg(strstr(buf, " elapsed, longer than the estimate)"), "%s", buf);
    ck_assert_msg(!strstr(buf, "0:00 left"), "%s", buf);
    /* An unknown duration: the time so far alone. */
    progress_tick_start(&p, 0.0, "randomized SVD");
    usleep(1300000);   /* drawn from the first second on */
    progress_tick_stop(&p);
    read_pty(leader, buf, sizeof buf);
    ck_assert_msg(strstr(buf, "kat test: randomized SVD (0:0"), "%s", buf);
    ck_assert_msg(!strstr(buf, "randomized SVD  "), "%s", buf);   /* no percentage */
    progress_tick_start(&p, 0.0, "quick call");   /* under a second: not drawn */
    usleep(400000);
    progress_tick_stop(&p);
    read_pty(leader, buf, sizeof buf);
    ck_assert_msg(!strstr(buf, "quick call"), "%s", buf);
    progress_finish(&p);
    read_pty(leader, buf, sizeof buf);
    ck_assert_str_eq(buf, "\r\033[K");   /* the line is cleared at the end */
    /* Quiet on a terminal: nothing. */
    progress_start(&p, tty, "kat test", 1);
    progress_update(&p, 0.5, "step");
    progress_finish(&p);
    read_pty(leader, buf, sizeof buf);
    ck_assert_str_eq(buf, "");
    fclose(tty);
    close(leader);
}
END_TEST

START_TEST(test_clock)
{
    static const struct {
        double seconds;
        const char *clock, *words;
    } cases[] = {{0.0, "0:00", "0 s"},     {-3.0, "0:00", "0 s"},        {40.2, "0:40", "40 s"},
                 {65.4, "1:05", "65 s"},   {375.0, "6:15", "6 min"},     {3725.0, "1:02:05", "62 min"},
                 {5400.0, "1:30:00", "1.5 h"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        progress_clock(buf, sizeof buf, cases[i].seconds);
        ck_assert_str_eq(buf, cases[i].clock);
        progress_duration(buf, sizeof buf, cases[i].seconds);
        ck_assert_str_eq(buf, cases[i].words);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("progress");
    TCase *tc = tcase_create("progress");
    tcase_set_timeout(tc, 30);   /* the ticker is watched for seconds */
    tcase_add_test(tc, test_silent_off_a_terminal);
    tcase_add_test(tc, test_quiet);
    tcase_add_test(tc, test_terminal);
    tcase_add_test(tc, test_clock);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
