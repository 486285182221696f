/* The `kat` command: dispatch to one subcommand per file. */
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include "cli.h"

#define X(name, fn, summary) int fn(int argc, char **argv);
#include "commands.def"
#undef X

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
#define X(name, fn, summary) {name, fn, summary},
#include "commands.def"
#undef X
};

static void usage(FILE *out)
{
    fprintf(out, "usage: kat [--help | --version] <command> [options]\n\n"
                 "kat, the Kernel Attention Toolkit: when is attention subquadratic?\n\n"
                 "Commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nEvery command takes --help, and most take --seed and --json.\n");
}

/* OpenBLAS starts its worker threads when it is loaded, and each maps a 128 MiB buffer as
 * it starts, beside the main thread, retrying forever when it cannot: under an address-space
 * limit (ulimit -v) start it with one thread and restart once, whatever OPENBLAS_NUM_THREADS
 * says (with 2, `kat rank` hung under ulimit -v 250000). kat's calls set the BLAS thread count
 * they need, after checking that the buffers fit (lib/core/blas_hold.c). */
static void blas_threads_on_demand(char **argv)
{
    struct rlimit rl;
    const char *set = getenv("OPENBLAS_NUM_THREADS");
    if ((set && strcmp(set, "1") == 0) || getrlimit(RLIMIT_AS, &rl) != 0 ||
        rl.rlim_cur == RLIM_INFINITY)
        return;
    if (setenv("OPENBLAS_NUM_THREADS", "1", 1) == 0)
        execv("/proc/self/exe", argv);
}

/* Ended by a signal (Ctrl-C, kill, a closed terminal or pipe): the outputs being written are
 * temporary files, removed here, so the old files stay and nothing half-written is left. */
static void end_on_signal(int sig)
{
    kat_outfile_remove_temporaries();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void remove_outputs_on_signals(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction sa, old;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = end_on_signal;
        sigemptyset(&sa.sa_mask);
        /* a signal ignored by the caller (nohup, a shell's background job) stays ignored */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
            sigaction(sigs[i], &sa, NULL);
    }
}

int main(int argc, char **argv)
{
    blas_threads_on_demand(argv);
    /* Past a file-size limit (ulimit -f) a write then fails with EFBIG and the command reports
     * it, leaving the old file (outputs are renamed into place only when complete), instead
     * of the process being killed with a temporary file left behind. */
    signal(SIGXFSZ, SIG_IGN);
    remove_outputs_on_signals();
    if (cli_check_env_threads())
        return CLI_USAGE;
    if (argc < 2) {
        fprintf(stderr, "usage: kat [--help | --version] <command> [options]\nsee kat --help\n");
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "--version") == 0)   /* takes version's options: kat --version --json */
        return kat_cmd_version(argc - 1, argv + 1);
    /* every command but version may reach the BLAS outside a call that checks its buffers */
    if (strcmp(argv[1], "version") != 0 && kat_blas_reserve() != KAT_OK) {
        fprintf(stderr, "kat %s: %s\n", argv[1], kat_last_error());
        return CLI_FAIL;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "kat: unknown command '%s'\nsee kat --help\n", argv[1]);
    return CLI_USAGE;
}
