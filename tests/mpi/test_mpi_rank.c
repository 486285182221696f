/* The distributed rank probe (kat_mpi_rank_probe) against kat's dense and randomized probes,
 * run under mpirun with P = 1, 2 and 4 processes; and its refusals, which must reach every
 * process. Each process checks; the exit status is 1 when any check failed on any process. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "kat/kat.h"
#include "kat/mpi.h"

static int me, np, failures;

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            failures++;                                                                        \
            fprintf(stderr, "process %d: %s:%d: ", me, __FILE__, __LINE__);                     \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fputc('\n', stderr);                                                               \
        }                                                                                      \
    } while (0)

/* Q (n x d) and K (m x d) drawn from a seed: the same on every process. */
static void points(size_t n, size_t m, size_t d, uint64_t seed, kat_dmat *Q, kat_dmat *K)
{
    kat_rank_points_opts po;
    kat_rank_points_opts_init(&po);
    kat_rng *rng;
    kat_rng_create(seed, &rng);
    kat_dmat_alloc(n, d, Q);
    kat_dmat_alloc(m, d, K);
    kat_rank_points(&po, rng, Q);
    kat_rank_points(&po, rng, K);
    kat_rng_destroy(rng);
}

/* This process's block of rows: counts given by `split` (NULL: an even split). */
static kat_dmat block(const kat_dmat *X, const size_t *split)
{
    size_t r0 = 0, rows;
    if (split) {
        for (int r = 0; r < me; r++)
            r0 += split[r];
        rows = split[me];
    } else {
        size_t P = (size_t)np, r = (size_t)me;
        r0 = X->rows / P * r + (r < X->rows % P ? r : X->rows % P);
        rows = X->rows / P + (r < X->rows % P);
    }
    kat_dmat b = {rows, X->cols, X->ld, X->data + r0 * X->ld};
    return b;
}

static double rel(double a, double b) { return fabs(a - b) / (fabs(b) > 0 ? fabs(b) : 1.0); }

/* The leading values (those above 1e-6 sigma_1, at most 20) agree to 1e-8 relative. */
static void compare(const char *what, const kat_rank_result *a, const char *an,
                    const kat_rank_result *b, const char *bn)
{
    CHECK(a->rank == b->rank, "%s: rank %zu (%s) vs %zu (%s)", what, a->rank, an, b->rank, bn);
    CHECK(a->eps_rank_spectral == b->eps_rank_spectral, "%s: spectral eps-rank %zu vs %zu",
          what, a->eps_rank_spectral, b->eps_rank_spectral);
    CHECK(a->eps_rank_frobenius == b->eps_rank_frobenius, "%s: Frobenius eps-rank %zu vs %zu",
          what, a->eps_rank_frobenius, b->eps_rank_frobenius);
    CHECK(rel(a->fro_norm, b->fro_norm) <= 1e-12, "%s: |M|_F %.17g vs %.17g", what,
          a->fro_norm, b->fro_norm);
    size_t lead = 0;
    while (lead < 20 && lead < a->nsv && lead < b->nsv && b->sv[lead] > 1e-6 * b->sv[0])
        lead++;
    CHECK(lead >= 1, "%s: no leading values", what);
    for (size_t i = 0; i < lead; i++)
        CHECK(rel(a->sv[i], b->sv[i]) <= 1e-8, "%s: sigma_%zu = %.17g (%s) vs %.17g (%s)", what,
              i + 1, a->sv[i], an, b->sv[i], bn);
}

typedef struct {
    const char *f;
    kat_rank_form form;
    double scale, eps;
    size_t n, m, d;
} agree_case;

static void check_agreement(const agree_case *c)
{
    char what[160];
    snprintf(what, sizeof what, "f = %s, %s, s = %g, %zu x %zu, d = %zu, P = %d", c->f,
             kat_rank_form_name(c->form), c->scale, c->n, c->m, c->d, np);
    kat_fn *f;
    CHECK(kat_fn_parse(c->f, &f, NULL) == KAT_OK, "%s: parse", what);
    kat_dmat Q, K;
    points(c->n, c->m, c->d, 7, &Q, &K);
    kat_rank_opts o;
    kat_rank_opts_init(&o);
    o.form = c->form, o.scale = c->scale, o.eps = c->eps, o.block = 16;
    kat_rank_result dense, rnd, dist;
    CHECK(kat_rank_probe(f, &Q, &K, &o, &dense) == KAT_OK, "%s: dense: %s", what,
          kat_last_error());
    o.method = KAT_RANK_RANDOMIZED;
    CHECK(kat_rank_probe(f, &Q, &K, &o, &rnd) == KAT_OK, "%s: randomized: %s", what,
          kat_last_error());
    kat_dmat q = block(&Q, NULL), k = block(&K, NULL);
    kat_mpi_stats stats;
    kat_status st = kat_mpi_rank_probe(MPI_COMM_WORLD, f, &q, &k, &o, &dist, &stats);
    CHECK(st == KAT_OK, "%s: distributed: %s", what, kat_last_error());
    if (st == KAT_OK) {
        compare(what, &dist, "distributed", &dense, "dense");
        compare(what, &dist, "distributed", &rnd, "randomized");
        CHECK(dist.converged == 1, "%s: not converged", what);
        CHECK(dist.n == c->n && dist.m == c->m && dist.d == c->d, "%s: sizes", what);
        CHECK(stats.vector_products == 0 && stats.products >= 2,
                  "%s: %zu block and %zu vector products", what, stats.products,
                  stats.vector_products);
        kat_rank_result_free(&dist);
    }
    kat_rank_result_free(&dense);
    kat_rank_result_free(&rnd);
    kat_dmat_free(&Q);
    kat_dmat_free(&K);
    kat_fn_destroy(f);
}

/* A refusal: the status and the sentence are the same on every process. */
static void expect_error(const char *what, kat_status got, kat_status want, const char *text)
{
    CHECK(got == want, "%s: status %d, expected %d (%s)", what, (int)got, (int)want,
          kat_last_error());
    CHECK(strstr(kat_last_error(), text) != NULL, "%s: message '%s' lacks '%s'", what,
          kat_last_error(), text);
}

static void check_errors(void)
{
    kat_dmat Q, K;
    points(40, 30, 3, 3, &Q, &K);
    kat_rank_opts o;
    kat_rank_opts_init(&o);
    kat_rank_result r;
    kat_fn *f;
    kat_fn_parse("exp(x)", &f, NULL);
    kat_dmat q = block(&Q, NULL), k = block(&K, NULL);
    char want[256];
    if (np > 1) {
        /* The last process holds no rows of Q. */
        size_t split[64] = {0};
        for (int i = 0; i < np - 1; i++)
            split[i] = 40 / (size_t)(np - 1) + ((size_t)i < 40 % (size_t)(np - 1));
        kat_dmat qe = block(&Q, split);
        snprintf(want, sizeof want, "process %d of %d: kat_mpi_rank_probe: this process holds no "
                 "rows of Q (n = 40 and m = 30 rows over %d processes); every process needs at "
                 "least one row of Q and of K: run on at most 30 processes", np - 1, np, np);
        expect_error("no rows", kat_mpi_rank_probe(MPI_COMM_WORLD, f, &qe, &k, &o, &r, NULL),
                     KAT_EINVAL, want);
        /* Options that differ. */
        kat_rank_opts o2 = o;
        if (me == np - 1)
            o2.scale = 2.0;
        expect_error("options", kat_mpi_rank_probe(MPI_COMM_WORLD, f, &q, &k, &o2, &r, NULL),
                     KAT_EINVAL, "kat_mpi_rank_probe: opts.scale differs between processes; "
                     "every process must be given the same options");
        /* A function that differs. */
        kat_fn *g;
        kat_fn_parse(me == 0 ? "exp(x)" : "exp(2*x)", &g, NULL);
        expect_error("f", kat_mpi_rank_probe(MPI_COMM_WORLD, g, &q, &k, &o, &r, NULL),
                     KAT_EINVAL, "kat_mpi_rank_probe: f differs between processes");
        kat_fn_destroy(g);
        /* Data that differs (a file with other content on one node). */
        kat_dmat Q2;
        kat_dmat_alloc(Q.rows, Q.cols, &Q2);
        memcpy(Q2.data, Q.data, Q.rows * Q.cols * sizeof(double));
        if (me == np - 1)
            Q2.data[5] += 1.0;
        snprintf(want, sizeof want, "the points Q differs between processes: process %d of %d "
                 "holds other values", np - 1, np);
        expect_error("same data", kat_mpi_check_same(MPI_COMM_WORLD, &Q2, "the points Q"),
                     KAT_EINVAL, want);
        kat_dmat_free(&Q2);
    }
    /* f not finite at one entry of the last process's rows: M's global indices named. */
    kat_dmat Qb;
    kat_dmat_alloc(Q.rows, Q.cols, &Qb);
    memcpy(Qb.data, Q.data, Q.rows * Q.cols * sizeof(double));
    Qb.data[39 * 3] = 1e3;   /* row 39 (the last process's), exp(1e3 * k_0) overflows */
    kat_dmat qb = block(&Qb, NULL);
    kat_status st = kat_mpi_rank_probe(MPI_COMM_WORLD, f, &qb, &k, &o, &r, NULL);
    char who[64] = "";
    if (np > 1)   /* row 39 is the last process's */
        snprintf(who, sizeof who, "process %d of %d: ", np - 1, np);
    snprintf(want, sizeof want, "%sf = exp(x) is inf at M(39, ", who);
    expect_error("f overflow", st, KAT_EDOM, want);
    if (st == KAT_OK)
        kat_rank_result_free(&r);
    /* NaN in one process's rows. */
    Qb.data[39 * 3] = NAN;
    expect_error("NaN", kat_mpi_rank_probe(MPI_COMM_WORLD, f, &qb, &k, &o, &r, NULL),
                 KAT_EDOM, "Q: entry (");
    kat_dmat_free(&Qb);
    kat_dmat_free(&Q);
    kat_dmat_free(&K);
    kat_fn_destroy(f);
}

int main(int argc, char **argv)
{
    if (kat_mpi_init(&argc, &argv)) {
        fprintf(stderr, "kat_mpi_init: %s\n", kat_last_error());
        return 1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    MPI_Comm_size(MPI_COMM_WORLD, &np);
    const agree_case cases[] = {
        {"(1+x)^3", KAT_RANK_INNER, 1.0, 0.0, 300, 257, 4},   /* exact rank 35 */
        {"exp(x/4)", KAT_RANK_INNER, 1.0, 1e-6, 301, 299, 8},
        {"exp(x)", KAT_RANK_L2SQ, -1.0, 1e-4, 250, 263, 3},   /* Gaussian kernel */
        {"exp(x)", KAT_RANK_L1, -0.5, 0.0, 97, 83, 2},       /* Laplace: full rank */
        {"x", KAT_RANK_INNER, 1.0, 0.0, 64, 64, 5},           /* rank 5 */
        {"(1+x)^2", KAT_RANK_L2SQ, 1.0, 0.0, 130, 9, 3},      /* m < n */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_agreement(&cases[i]);
    check_errors();
    int total = 0;
    MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (me == 0)
        printf("%s: %d failed checks over %d processes\n", total ? "FAIL" : "PASS", total, np);
    kat_mpi_finalize();
    return total ? 1 : 0;
}
