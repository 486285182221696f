/* libFuzzer harness for the CLI option parser: the input is split at newlines into argv, and
 * parsed against an option table with every option type, then lists are parsed as `kat`
 * does for --sides. Any input must give a status (0, -1 for help, 2 for usage), never a crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *buf = malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[66];
    int argc = 0;
    argv[argc++] = "fuzz";
    for (char *p = buf; argc < 65;) {
        argv[argc++] = p;
        char *nl = memchr(p, '\n', (size_t)(buf + size - p));
        if (!nl)
            break;
        *nl = '\0';
        p = nl + 1;
    }
    argv[argc] = NULL;

    int flag = 0, ival = 0, seen = 0;
    size_t n = 0;
    double x = 0;
    uint64_t seed = 0;
    const char *s = NULL;
    const cli_opt opts[] = {
        {"flag", CLI_FLAG, &flag, "", &seen}, {"n", CLI_SIZE, &n, "", NULL},
        {"i", CLI_INT, &ival, "", NULL},      {"x", CLI_DOUBLE, &x, "", NULL},
        {"seed", CLI_U64, &seed, "", NULL},   {"s", CLI_STR, &s, "", NULL},
    };
    char *pos[4];
    size_t npos = 0;
    FILE *saved = stderr;
    stderr = fopen("/dev/null", "w");   /* usage text on every bad input would flood the log */
    int rc = cli_parse("usage: fuzz", opts, 6, argc, argv, pos, 4, &npos);
    fclose(stderr);
    stderr = saved;
    if (rc != 0 && rc != -1 && rc != CLI_USAGE)
        __builtin_trap();
    if (rc == 0 && npos > 4)
        __builtin_trap();
    if (rc == 0 && s) {
        double *v = NULL;
        size_t nv = 0;
        saved = stderr;
        stderr = fopen("/dev/null", "w");
        if (cli_parse_list(s, &v, &nv) == 0) {
            if (nv == 0)
                __builtin_trap();
            kat_free(v);
        }
        fclose(stderr);
        stderr = saved;
    }
    free(buf);
    return 0;
}
