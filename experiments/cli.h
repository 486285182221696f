/* Small helpers shared by the `kat` subcommands: option parsing, JSON output, errors. */
#ifndef KAT_CLI_H
#define KAT_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "kat/kat.h"
#include "timing.h"

typedef enum { CLI_FLAG, CLI_STR, CLI_INT, CLI_SIZE, CLI_DOUBLE, CLI_U64 } cli_type;

/* One option "--name": CLI_FLAG sets an int to 1; the others parse the next argument (or the
 * part after '=') into *dest. `seen` (may be NULL) is set to 1 when the option appears. */
typedef struct {
    const char *name;
    cli_type type;
    void *dest;
    const char *help;   /* "N   sequence length (default 64)" */
    int *seen;
} cli_opt;

/* Exit statuses of every subcommand (docs/kat.1, EXIT STATUS): CLI_FAIL when the computation
 * or the data failed (a file that cannot be read, a shape that does not fit, a theorem that
 * does not hold), CLI_USAGE when the command line is wrong (an unknown option, a missing or
 * malformed value, a value outside the choices: an --f that does not parse, an unknown
 * distribution, mode or theorem ID). A usage error prints one line naming the option and the
 * value, then "see kat CMD --help". */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Parse argv[1..argc-1] (argv[0] is the subcommand name). Options always accepted: --help,
 * and whatever opts lists. Positional arguments are collected into pos[0..*npos-1] (at most
 * maxpos; more is a usage error). usage starts "usage: kat CMD": CMD names the command in the
 * messages. Returns CLI_OK, or -1 after printing help (the caller exits 0), or CLI_USAGE after
 * printing the error and "see kat CMD --help" to stderr, or CLI_FAIL when opts names an option
 * twice (a bug of the caller, refused before anything is parsed). */
int cli_parse(const char *usage, const cli_opt *opts, size_t nopts, int argc, char **argv,
              char **pos, size_t maxpos, size_t *npos);
/* On stdout (--help): the usage text and every option. On any other stream (after a usage
 * error) only "see kat CMD --help", so the error line stays on the screen. */
void cli_print_usage(FILE *out, const char *usage, const cli_opt *opts, size_t nopts);

/* Print "kat <cmd>: <message>" and "see kat <cmd> --help" to stderr; returns CLI_USAGE. cmd is
 * what follows "kat " ("rank", "bench attn"). */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Only the last line, "see kat <cmd> --help", after a message printed elsewhere. */
void cli_see_help(const char *cmd);

/* A file named by option --opt (without the dashes): read, or written (output = 1). */
typedef struct {
    const char *opt, *path;   /* path NULL: the option was not given */
    int output;
} cli_path;
enum { CLI_MAX_PATHS = 16 };
/* Before any work: an output that is the same file as an input or as another output (same
 * device and inode; a new file: same directory and name) prints "kat <cmd>: --A and --B name
 * the same file: PATH" and returns CLI_USAGE; else CLI_OK. */
int cli_check_paths(const char *cmd, const cli_path *paths, size_t n);

/* A thread count above kat_max_threads() is refused: --threads T prints "kat <cmd>: --threads
 * T is above the limit of L threads (4 per CPU, C CPUs)", KAT_NUM_THREADS (checked by main for
 * every command) "kat: KAT_NUM_THREADS=T is above ..."; both return CLI_USAGE, else CLI_OK. */
int cli_check_threads(const char *cmd, long threads);
int cli_check_env_threads(void);
/* --threads T given (T > 0, checked by cli_check_threads): kat's thread count set to T, and
 * under an address-space limit the new threads' stacks checked (kat_blas_reserve); CLI_OK, or
 * CLI_FAIL after "kat <cmd>: threads: ..." naming the memory. */
int cli_set_threads(const char *cmd, int threads);

/* Print "kat <cmd>: <what>: <kat_strerror>: <kat_last_error>" to stderr; returns CLI_FAIL. */
int cli_fail(const char *cmd, const char *what, kat_status st);
/* The exit of a failed kat_matrix_read of option opt's file: KAT_EINVAL refuses the name itself
 * (no extension, an unknown one), whatever the file holds, so a usage error naming opt;
 * anything else is the file's failure (cli_fail naming the path). */
int cli_read_fail(const char *cmd, const char *opt, const char *path, kat_status st);
/* A matrix read from option opt's file that holds no numbers (0 rows or 0 columns: an empty
 * file, only comments, only a header) is no input for any command: "kat <cmd>: <opt> 'PATH'
 * holds no numbers" and CLI_FAIL; otherwise CLI_OK. */
int cli_check_nonempty(const char *cmd, const char *opt, const char *path, const kat_dmat *m);

/* The function of option --opt: a bare built-in name ("exp", "relu") is that function of x,
 * anything else a kat_fn_parse expression. Returns CLI_OK, or CLI_USAGE after naming the
 * option, the expression and the column of a parse error, or CLI_FAIL when memory ran out. */
int cli_parse_fn(const char *cmd, const char *opt, const char *expr, kat_fn **f);

/* Minimal JSON writer to stdout: objects, arrays, keys, numbers (shortest round-trip form,
 * non-finite as null), strings with escapes. Commas are inserted automatically. */
typedef struct {
    FILE *out;
    int depth;
    int need_comma[32];
} cli_json;
void cli_json_begin(cli_json *j, FILE *out);          /* opens the top-level object */
void cli_json_end(cli_json *j);                       /* closes it and prints a newline */
void cli_json_key(cli_json *j, const char *key);
void cli_json_num(cli_json *j, const char *key, double v);    /* key may be NULL in arrays */
void cli_json_int(cli_json *j, const char *key, long long v);
void cli_json_str(cli_json *j, const char *key, const char *s);
void cli_json_bool(cli_json *j, const char *key, int v);
void cli_json_open(cli_json *j, const char *key, char bracket);   /* '{' or '[' */
void cli_json_close(cli_json *j, char bracket);
void cli_json_array(cli_json *j, const char *key, const double *v, size_t n);

/* Parse "a,b,c" into doubles (allocated with kat_malloc). Returns 0, or -1 after a message
 * naming the command cmd ("rank") and its option opt ("--sides") when they are not NULL. */
int cli_parse_option_list(const char *cmd, const char *opt, const char *s, double **out,
                          size_t *n);
/* The same without the names. */
int cli_parse_list(const char *s, double **out, size_t *n);

/* Monotonic seconds. */
double cli_now(void);

#endif
