/* The `kat` command: dispatch to one subcommand per file. */
#include <stdio.h>
#include <string.h>
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

int main(int argc, char **argv)
{
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
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "kat: unknown command '%s'\nsee kat --help\n", argv[1]);
    return CLI_USAGE;
}
