/* Pieces that `kat rank` and `kat sweep` share: the point-set options, building Q and K, and
 * the probe options. Defined in cmd_rank.c. */
#ifndef KAT_CMD_RANK_H
#define KAT_CMD_RANK_H

#include "cli.h"

/* Options that say where Q and K come from. */
typedef struct {
    const char *dist;       /* gauss|uniform|sphere|hypercube|rect|grid */
    const char *sides;      /* rect: "a1,a2,..." */
    double bound, sigma;
    size_t levels;
    int pm1, enumerate, symmetric;
    uint64_t seed;
    int given;              /* set when an option that shapes the draw (not --seed) is given */
} rank_cli_points;

/* Options of the probe itself. */
typedef struct {
    const char *form, *method;
    double scale, rtol, atol, eps;
    size_t max_rank, block;
    int power_iters;
} rank_cli_probe;

void rank_cli_points_init(rank_cli_points *p);
void rank_cli_probe_init(rank_cli_probe *p);

/* The cli_opt entries for each struct (9 each), appended at opts[*k]. with_scale = 0 leaves
 * out --scale (8 entries then), for a caller with its own: kat sweep's list of scales, which a
 * second --scale would shadow (cli_parse refuses a table that names an option twice). */
void rank_cli_points_opts(rank_cli_points *p, cli_opt *opts, size_t *k);
void rank_cli_probe_opts(rank_cli_probe *p, cli_opt *opts, size_t *k, int with_scale);

/* Q (n x d) from the seed and K (m x d) from a derived seed (or K = Q with --symmetric), so
 * a larger n extends the same points. Returns CLI_OK, or prints why and returns CLI_USAGE for
 * an option value kat_rank_points refuses, CLI_FAIL otherwise. */
int rank_cli_make_points(const char *cmd, const rank_cli_points *p, size_t n, size_t m,
                         size_t d, kat_dmat *Q, kat_dmat *K);

/* kat_rank_opts from the probe options; CLI_USAGE (after a message) for a bad name. */
int rank_cli_make_opts(const char *cmd, const rank_cli_probe *p, uint64_t seed,
                       kat_rank_opts *o);

/* Check the point options for points of dimension d (--dist, --sides, --d) before any work:
 * CLI_OK, or CLI_USAGE after the message. */
int rank_cli_check_points(const char *cmd, const rank_cli_points *p, size_t d);

#endif
