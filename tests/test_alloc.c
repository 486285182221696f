/* Allocation failures: for each public entry point that allocates, make the n-th allocation
 * fail for every n until the call no longer reaches n. Each failing call must return
 * KAT_ENOMEM (or KAT_ERANGE), leave the caller's inputs and outputs unchanged and leak nothing
 * (LeakSanitizer and valgrind runs of this suite check the last part); the first call that
 * succeeds must give the same outputs, bit for bit, as a clean run without injected failures
 * (so a failed attempt leaves no damaged state behind). */
#include <math.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "sparse_plan.h"
#include "testutil.h"

/* ---- the sweep driver -------------------------------------------------------------------- */

/* A memory region the sweep watches. IN: the caller's data, never changed. OUT: an output,
 * reset to a pattern before each call, unchanged by a failing call, equal to the clean run's
 * bytes after the successful one. OUT_NOCMP: the same, except that a successful call's bytes
 * are not compared (a struct holding pointers). */
enum { IN = 0, OUT = 1, OUT_NOCMP = 2, OUT_PARTIAL = 3 };
typedef struct {
    void *p;
    size_t n;
    int kind;
} region;

#define MAX_REGIONS 10
typedef struct {
    const char *name;
    kat_status (*call)(void);
    void (*release)(void);   /* frees what a successful call produced; may be NULL */
    void (*prepare)(void);   /* runs before every call, outside the failure window; may be NULL */
    region r[MAX_REGIONS];
} entry;

#define PATTERN 0xA5

static size_t sweeps_total, calls_total;

/* Problems found, one line per entry point: the sweep goes on with the next entry, and each
 * test case fails at its end listing them all (a bug in one entry hides none of the others). */
static char problems[8192];
static size_t nproblems;

static void problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void problem(const char *fmt, ...)
{
    size_t len = strlen(problems);
    va_list ap;
    va_start(ap, fmt);
    if (len + 2 < sizeof problems) {
        problems[len++] = '\n';
        vsnprintf(problems + len, sizeof problems - len, fmt, ap);
    }
    va_end(ap);
    nproblems++;
}

static void check_problems(void)
{
    size_t n = nproblems;
    nproblems = 0;
    char copy[sizeof problems];
    memcpy(copy, problems, sizeof copy);
    problems[0] = '\0';
    ck_assert_msg(n == 0, "%zu entry points mishandle allocation failures:%s", n, copy);
}

/* Sweep one entry; returns 1 when it behaved. */
static int sweep(const entry *e)
{
    unsigned char *before[MAX_REGIONS] = {0}, *clean[MAX_REGIONS] = {0};
    int ok = 0, nr = 0;
    while (nr < MAX_REGIONS && e->r[nr].p)
        nr++;
    /* The clean run: the reference outputs, and the allocation count. */
    for (int i = 0; i < nr; i++) {
        before[i] = malloc(e->r[i].n);
        clean[i] = malloc(e->r[i].n);
        if (e->r[i].kind != IN)
            memset(e->r[i].p, PATTERN, e->r[i].n);
        memcpy(before[i], e->r[i].p, e->r[i].n);
    }
    if (e->prepare)
        e->prepare();
    kat_debug_fail_alloc_at(0);
    kat_status st = e->call();
    size_t allocs = kat_debug_fail_alloc_at(0);
    if (st != KAT_OK) {
        problem("%s: the clean run failed: %s: %s", e->name, kat_strerror(st), kat_last_error());
        goto done;
    }
    for (int i = 0; i < nr; i++)
        memcpy(clean[i], e->r[i].p, e->r[i].n);
    if (e->release)
        e->release();
    if (allocs == 0) {
        problem("%s: the clean run made no allocation", e->name);
        goto done;
    }

    for (size_t n = 1;; n++) {
        for (int i = 0; i < nr; i++)
            if (e->r[i].kind != IN)
                memset(e->r[i].p, PATTERN, e->r[i].n);
        if (e->prepare)
            e->prepare();
        kat_clear_error();
        kat_debug_fail_alloc_at(n);
        st = e->call();
        size_t made = kat_debug_fail_alloc_at(0);
        calls_total++;
        for (int i = 0; i < nr; i++) {
            const region *r = &e->r[i];
            if ((r->kind == IN || st != KAT_OK) && r->kind != OUT_PARTIAL &&
                memcmp(before[i], r->p, r->n) != 0) {
                problem("%s: region %d (%s) changed by a call whose allocation %zu failed "
                        "(status %s)", e->name, i, r->kind == IN ? "an input" : "an output", n,
                        kat_strerror(st));
                if (st == KAT_OK && e->release)
                    e->release();
                goto done;
            }
            if (st == KAT_OK && (r->kind == OUT || r->kind == OUT_PARTIAL) &&
                memcmp(clean[i], r->p, r->n) != 0) {
                problem("%s: output region %d differs from the clean run after %zu failed "
                        "attempts", e->name, i, n - 1);
                if (e->release)
                    e->release();
                goto done;
            }
        }
        if (st == KAT_OK) {
            if (e->release)
                e->release();
            if (made >= n)
                problem("%s succeeded although allocation %zu of %zu failed", e->name, n, made);
            else
                ok = 1;
            break;
        }
        if (st != KAT_ENOMEM && st != KAT_ERANGE) {
            problem("%s: allocation %zu failed, status %s: %s", e->name, n, kat_strerror(st),
                    kat_last_error());
            break;
        }
        if (kat_last_error()[0] == '\0') {
            problem("%s: allocation %zu failed without a message", e->name, n);
            break;
        }
        if (n > allocs + 64) {
            problem("%s: still failing at allocation %zu (clean run: %zu)", e->name, n, allocs);
            break;
        }
    }
done:
    sweeps_total++;
    for (int i = 0; i < nr; i++)
        free(before[i]), free(clean[i]);
    return ok;
}

/* Sweep an entry when its clean call allocates at all (some entry points may not need to). */
static void sweep_if_allocating(const entry *e)
{
    if (e->prepare)
        e->prepare();
    kat_debug_fail_alloc_at(0);
    kat_status st = e->call();
    size_t made = kat_debug_fail_alloc_at(0);
    if (st != KAT_OK) {
        problem("%s: the clean run failed: %s: %s", e->name, kat_strerror(st), kat_last_error());
        return;
    }
    if (e->release)
        e->release();
    if (made > 0)
        sweep(e);
}

static void sweep_all(const entry *es, size_t count)
{
    for (size_t i = 0; i < count; i++)
        sweep(&es[i]);
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define R_IN(x, bytes) {(void *)(x), (bytes), IN}
#define R_OUT(x, bytes) {(void *)(x), (bytes), OUT}
#define R_PTR(x) {(void *)&(x), sizeof(x), OUT_NOCMP}

/* Deterministic test data. */
static void fill_d(double *x, size_t n, uint64_t seed, double sigma)
{
    kat_rng *rng;
    ck_assert(kat_rng_create(seed, &rng) == KAT_OK);
    for (size_t i = 0; i < n; i++)
        x[i] = kat_rng_gaussian(rng, sigma);
    kat_rng_destroy(rng);
}

static void fill_f(float *x, size_t n, uint64_t seed, double sigma)
{
    kat_rng *rng;
    ck_assert(kat_rng_create(seed, &rng) == KAT_OK);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)kat_rng_gaussian(rng, sigma);
    kat_rng_destroy(rng);
}

/* ---- core and fn ---------------------------------------------------------------------------- */

static double coef4[4] = {1, 3, 3, 1};
static kat_fn *fn_out;
static kat_status call_fn_poly(void) { return kat_fn_poly(coef4, 4, &fn_out); }
static kat_status call_fn_pow(void) { return kat_fn_pow(3.0, &fn_out); }
static kat_status call_fn_builtin(void) { return kat_fn_builtin("gelu", &fn_out); }
static double cb_square(double x, void *p) { return x * x; }
static kat_status call_fn_callback(void)
{
    return kat_fn_callback(cb_square, NULL, NULL, "square", &fn_out);
}
static char expr_src[] = "max(x - 1.5, 0) + (1 + x/8)^4 - sigmoid(x) * exp(-x^2) + (x != 0)";
static size_t expr_pos = 12345;
static kat_status call_fn_parse(void) { return kat_fn_parse(expr_src, &fn_out, &expr_pos); }
static char poly_src[] = "(1 + 2*x)^3 - x/4 + 7";
static kat_status call_fn_parse_poly(void) { return kat_fn_parse(poly_src, &fn_out, NULL); }
static void release_fn(void) { kat_fn_destroy(fn_out); }

static kat_rng *rng_out;
static kat_status call_rng(void) { return kat_rng_create(7, &rng_out); }
static void release_rng(void) { kat_rng_destroy(rng_out); }

static kat_dmat dmat_out;
static kat_status call_dmat(void) { return kat_dmat_alloc(5, 7, &dmat_out); }
static void release_dmat(void) { kat_dmat_free(&dmat_out); }

static kat_array array_out;
static size_t array_shape[3] = {2, 3, 4};
static kat_status call_array(void)
{
    return kat_array_alloc(KAT_DTYPE_F32, 3, array_shape, &array_out);
}
static void release_array(void) { kat_array_free(&array_out); }

START_TEST(test_core_and_fn)
{
    const entry es[] = {
        {"kat_fn_poly", call_fn_poly, release_fn, NULL, {R_IN(coef4, sizeof coef4), R_PTR(fn_out)}},
        {"kat_fn_pow", call_fn_pow, release_fn, NULL, {R_PTR(fn_out)}},
        {"kat_fn_builtin", call_fn_builtin, release_fn, NULL, {R_PTR(fn_out)}},
        {"kat_fn_callback", call_fn_callback, release_fn, NULL, {R_PTR(fn_out)}},
        {"kat_fn_parse", call_fn_parse, release_fn, NULL,
         {R_IN(expr_src, sizeof expr_src), R_PTR(fn_out), R_PTR(expr_pos)}},
        {"kat_fn_parse (polynomial)", call_fn_parse_poly, release_fn, NULL,
         {R_IN(poly_src, sizeof poly_src), R_PTR(fn_out)}},
        {"kat_rng_create", call_rng, release_rng, NULL, {R_PTR(rng_out)}},
        {"kat_dmat_alloc", call_dmat, release_dmat, NULL, {R_PTR(dmat_out)}},
        {"kat_array_alloc", call_array, release_array, NULL,
         {R_IN(array_shape, sizeof array_shape), R_PTR(array_out)}},
    };
    sweep_all(es, COUNT(es));
    check_problems();
}
END_TEST

/* ---- io ---------------------------------------------------------------------------------- */

static unsigned char npy_buf[256];   /* 128 header bytes, 24 of data */
static size_t npy_len;
static char csv_buf[] = "\xEF\xBB\xBF# a comment\nx,y,z\n1,2,3\r\n 4.5 , -6e2, 7\n\n8,9,1e-3";
static char *npy_path, *csv_path, *out_npy_path, *out_csv_path;
static kat_dmat io_dmat;
static kat_array io_array;
static double wmat_data[6] = {1, -2.5, 3, 4e-300, 5, 1e300};
static kat_dmat wmat = {2, 3, 3, wmat_data};

static kat_status call_npy_parse(void) { return kat_npy_parse(npy_buf, npy_len, &io_array); }
static kat_status call_npy_read(void) { return kat_npy_read(npy_path, &io_array); }
static void release_array_io(void) { kat_array_free(&io_array); }
static kat_status call_npy_read_dmat(void) { return kat_npy_read_dmat(npy_path, &io_dmat); }
static kat_status call_csv_parse(void) { return kat_csv_parse(csv_buf, strlen(csv_buf), &io_dmat); }
static kat_status call_csv_read(void) { return kat_csv_read(csv_path, &io_dmat); }
static kat_status call_matrix_read_npy(void) { return kat_matrix_read(npy_path, &io_dmat); }
static kat_status call_matrix_read_csv(void) { return kat_matrix_read(csv_path, &io_dmat); }
static void release_dmat_io(void) { kat_dmat_free(&io_dmat); }
static kat_status call_npy_write(void) { return kat_npy_write_dmat(out_npy_path, &wmat, KAT_DTYPE_F64); }
static kat_status call_csv_write(void) { return kat_csv_write(out_csv_path, &wmat); }
static kat_status call_npy_write_array(void) { return kat_npy_write(out_npy_path, &io_array); }

START_TEST(test_io)
{
    /* A big-endian Fortran-order 2x3 float32 file: the reader converts and reorders it. */
    const char hdr[] = "{'descr': '>f4', 'fortran_order': True, 'shape': (2, 3), }";
    size_t hl = 128 - 10;
    memset(npy_buf, ' ', sizeof npy_buf);
    memcpy(npy_buf, "\x93NUMPY\x01\x00", 8);
    npy_buf[8] = (unsigned char)hl, npy_buf[9] = 0;
    memcpy(npy_buf + 10, hdr, strlen(hdr));
    npy_buf[10 + hl - 1] = '\n';
    for (int i = 0; i < 6; i++) {
        float f = (float)(i + 1) / 4.0f;
        uint32_t u;
        memcpy(&u, &f, 4);
        for (int b = 0; b < 4; b++)
            npy_buf[128 + 4 * i + b] = (unsigned char)(u >> (8 * (3 - b)));
    }
    npy_len = 128 + 24;
    npy_path = tu_tmpfile(".npy");
    csv_path = tu_tmpfile(".csv");
    out_npy_path = tu_tmpfile("_w.npy");
    out_csv_path = tu_tmpfile("_w.csv");
    ck_assert_int_eq(tu_write_file(npy_path, npy_buf, npy_len), 0);
    ck_assert_int_eq(tu_write_file(csv_path, csv_buf, strlen(csv_buf)), 0);
    TU_OK(kat_npy_parse(npy_buf, npy_len, &io_array));   /* for kat_npy_write */
    kat_array src = io_array;

    const entry es[] = {
        {"kat_npy_parse", call_npy_parse, release_array_io, NULL,
         {R_IN(npy_buf, npy_len), R_PTR(io_array)}},
        {"kat_npy_read", call_npy_read, release_array_io, NULL, {R_PTR(io_array)}},
        {"kat_npy_read_dmat", call_npy_read_dmat, release_dmat_io, NULL, {R_PTR(io_dmat)}},
        {"kat_csv_parse", call_csv_parse, release_dmat_io, NULL,
         {R_IN(csv_buf, sizeof csv_buf), R_PTR(io_dmat)}},
        {"kat_csv_read", call_csv_read, release_dmat_io, NULL, {R_PTR(io_dmat)}},
        {"kat_matrix_read (.npy)", call_matrix_read_npy, release_dmat_io, NULL, {R_PTR(io_dmat)}},
        {"kat_matrix_read (.csv)", call_matrix_read_csv, release_dmat_io, NULL, {R_PTR(io_dmat)}},
    };
    sweep_all(es, COUNT(es));
    /* Writers may allocate nothing at all; when they do, sweep them. */
    io_array = src;
    const entry ws[] = {
        {"kat_npy_write_dmat", call_npy_write, NULL, NULL, {R_IN(wmat_data, sizeof wmat_data)}},
        {"kat_csv_write", call_csv_write, NULL, NULL, {R_IN(wmat_data, sizeof wmat_data)}},
        {"kat_npy_write", call_npy_write_array, NULL, NULL, {R_IN(src.data, 6 * sizeof(float))}},
    };
    for (size_t i = 0; i < COUNT(ws); i++)
        sweep_if_allocating(&ws[i]);
    kat_array_free(&src);
    remove(npy_path), remove(csv_path), remove(out_npy_path), remove(out_csv_path);
    free(npy_path), free(csv_path), free(out_npy_path), free(out_csv_path);
    check_problems();
}
END_TEST

/* ---- feature maps ------------------------------------------------------------------------ */

static kat_featmap *fm_out;
static void release_fm(void) { kat_featmap_destroy(fm_out); }
static double poly_coef[4] = {1, 0.5, 0.25, 0.125};
static kat_status call_poly_map(void) { return kat_featmap_poly_create(poly_coef, 4, 3, &fm_out); }
static kat_status call_taylor(void) { return kat_featmap_taylor_create(4, 2, 0, &fm_out); }
static kat_status call_rff_phase(void)
{
    return kat_featmap_rff_create(KAT_RFF_GAUSSIAN, KAT_RFF_PHASE, 3, 16, 1.5, 5, &fm_out);
}
static kat_status call_rff_pair(void)
{
    return kat_featmap_rff_create(KAT_RFF_LAPLACE, KAT_RFF_PAIR, 3, 8, 0.7, 6, &fm_out);
}
static kat_status call_favor(void)
{
    return kat_featmap_favor_create(4, 12, 0.5, KAT_FAVOR_ORTHOGONAL | KAT_FAVOR_STABLE, 9,
                                    &fm_out);
}
static kat_status call_favor_plain(void) { return kat_featmap_favor_create(4, 6, 0.5, 0, 9, &fm_out); }
static kat_status call_elu1(void) { return kat_featmap_elu1_create(5, &fm_out); }
static kat_fn *fn_poly2, *fn_exp;
static kat_status call_poly_from_fn(void) { return kat_featmap_poly_from_fn(fn_poly2, 3, &fm_out); }
static double group_sides[3] = {1.0, 0.5, 2.0};
static kat_status call_group_map(void)
{
    return kat_group_featmap_create(fn_exp, group_sides, 3, 0, 0, &fm_out);
}
static kat_status call_group_map_rank(void)
{
    return kat_group_featmap_create(fn_exp, group_sides, 3, 3, KAT_GROUP_MAP_REQUIRE_PSD, &fm_out);
}
static kat_featmap *tn_inner;
static void prepare_token_norm(void)
{
    ck_assert(kat_featmap_taylor_create(3, 2, 1.0, &tn_inner) == KAT_OK);
}
static kat_status call_token_norm(void)
{
    return kat_featmap_token_norm_create(tn_inner, 1, 0.5, KAT_FEATMAP_POSITIVE, &fm_out);
}

/* A user's map: its state must be destroyed exactly once, also when creation fails. */
static int user_state_live;
static kat_status user_apply(const void *s, kat_side side, size_t n, const double *x, size_t ldx,
                             double *f, size_t ldf)
{
    for (size_t i = 0; i < n; i++)
        f[i * ldf] = 1.0 + x[i * ldx] * x[i * ldx];
    return KAT_OK;
}
static void user_destroy(void *s)
{
    ck_assert_int_eq(user_state_live, 1);
    user_state_live = 0;
    free(s);
}
static const kat_featmap_ops user_ops = {.name = "user", .apply = user_apply,
                                         .destroy = user_destroy};
static void *user_state;
static void prepare_user(void)
{
    ck_assert_int_eq(user_state_live, 0);
    user_state = malloc(16);
    user_state_live = 1;
}
static kat_status call_user_map(void)
{
    kat_status st = kat_featmap_create(&user_ops, user_state, 1, 1, KAT_FEATMAP_POSITIVE, &fm_out);
    ck_assert_int_eq(user_state_live, st == KAT_OK);   /* failed creation destroyed the state */
    return st;
}

START_TEST(test_featmaps)
{
    TU_OK(kat_fn_parse("1 + x + x^2/2", &fn_poly2, NULL));
    TU_OK(kat_fn_parse("exp(-x)", &fn_exp, NULL));   /* completely monotone: PSD on corners */
    const entry es[] = {
        {"kat_featmap_create", call_user_map, release_fm, prepare_user, {R_PTR(fm_out)}},
        {"kat_featmap_poly_create", call_poly_map, release_fm, NULL,
         {R_IN(poly_coef, sizeof poly_coef), R_PTR(fm_out)}},
        {"kat_featmap_poly_from_fn", call_poly_from_fn, release_fm, NULL, {R_PTR(fm_out)}},
        {"kat_featmap_taylor_create", call_taylor, release_fm, NULL, {R_PTR(fm_out)}},
        {"kat_featmap_rff_create (phase)", call_rff_phase, release_fm, NULL, {R_PTR(fm_out)}},
        {"kat_featmap_rff_create (pair)", call_rff_pair, release_fm, NULL, {R_PTR(fm_out)}},
        {"kat_featmap_favor_create (orthogonal, stable)", call_favor, release_fm, NULL,
         {R_PTR(fm_out)}},
        {"kat_featmap_favor_create", call_favor_plain, release_fm, NULL, {R_PTR(fm_out)}},
        {"kat_featmap_elu1_create", call_elu1, release_fm, NULL, {R_PTR(fm_out)}},
        {"kat_featmap_token_norm_create", call_token_norm, release_fm, prepare_token_norm,
         {R_PTR(fm_out)}},
        {"kat_group_featmap_create", call_group_map, release_fm, NULL,
         {R_IN(group_sides, sizeof group_sides), R_PTR(fm_out)}},
        {"kat_group_featmap_create (rank 3, PSD)", call_group_map_rank, release_fm, NULL,
         {R_IN(group_sides, sizeof group_sides), R_PTR(fm_out)}},
    };
    sweep_all(es, COUNT(es));
    kat_fn_destroy(fn_poly2);
    kat_fn_destroy(fn_exp);
    check_problems();
}
END_TEST

/* ---- rank ---------------------------------------------------------------------------------- */

enum { RN = 9, RM = 7, RD = 3 };
static double rq[RN * RD], rk[RM * RD], rmat[RN * RM], rsv[RM];
static kat_dmat RQ = {RN, RD, RD, rq}, RK = {RM, RD, RD, rk}, RMAT = {RN, RM, RM, rmat};
static kat_rank_opts ropts;
static kat_rank_result rres;
static kat_fn *rfn;
static kat_featmap *rfm;
static size_t rsize;
static double rout_data[RN * RM];
static kat_dmat ROUT = {RN, RM, RM, rout_data};

static kat_status call_kernel_matrix(void)
{
    return kat_rank_kernel_matrix(rfn, KAT_RANK_L2SQ, 0.5, &RQ, &RK, &ROUT);
}
static kat_status call_featmap_matrix(void) { return kat_rank_featmap_matrix(rfm, &RQ, &RK, &ROUT); }
static kat_status call_spectrum(void) { return kat_rank_spectrum(&RMAT, rsv, RM); }
static kat_status call_inner_rank(void) { return kat_rank_inner_rank(&RQ, &RK, &rsize); }
static kat_status call_affine_dim(void) { return kat_rank_affine_dim(&RQ, &RK, &rsize); }
static kat_status call_predict(void)
{
    return kat_rank_predict(rfn, KAT_RANK_L2SQ, 0.5, RD, RN, RM, &rsize);
}
static kat_status call_probe(void) { return kat_rank_probe(rfn, &RQ, &RK, &ropts, &rres); }
static kat_status call_probe_featmap(void)
{
    return kat_rank_probe_featmap(rfm, &RQ, &RK, &ropts, &rres);
}
static kat_status call_probe_matrix(void) { return kat_rank_probe_matrix(&RMAT, &ropts, &rres); }
static kat_status call_randomized(void) { return kat_rank_randomized(rfn, &RQ, &RK, &ropts, &rres); }
static void release_rres(void) { kat_rank_result_free(&rres); }

static const region rank_inputs[3] = {R_IN(rq, sizeof rq), R_IN(rk, sizeof rk),
                                      R_IN(rmat, sizeof rmat)};

static entry rank_entry(const char *name, kat_status (*call)(void), void (*release)(void),
                        region out)
{
    entry e = {name, call, release, NULL, {rank_inputs[0], rank_inputs[1], rank_inputs[2], out}};
    return e;
}

START_TEST(test_rank)
{
    fill_d(rq, COUNT(rq), 1, 0.6);
    fill_d(rk, COUNT(rk), 2, 0.6);
    fill_d(rmat, COUNT(rmat), 3, 1.0);
    TU_OK(kat_fn_parse("(1 + x)^2", &rfn, NULL));
    TU_OK(kat_featmap_taylor_create(RD, 2, 1.0, &rfm));
    entry es[] = {
        rank_entry("kat_rank_kernel_matrix", call_kernel_matrix, NULL,
                   (region)R_OUT(rout_data, sizeof rout_data)),
        rank_entry("kat_rank_featmap_matrix", call_featmap_matrix, NULL,
                   (region)R_OUT(rout_data, sizeof rout_data)),
        rank_entry("kat_rank_spectrum", call_spectrum, NULL, (region)R_OUT(rsv, sizeof rsv)),
        rank_entry("kat_rank_inner_rank", call_inner_rank, NULL, (region)R_OUT(&rsize, sizeof rsize)),
        rank_entry("kat_rank_affine_dim", call_affine_dim, NULL, (region)R_OUT(&rsize, sizeof rsize)),
        rank_entry("kat_rank_predict", call_predict, NULL, (region)R_OUT(&rsize, sizeof rsize)),
    };
    for (size_t i = 0; i < COUNT(es); i++)
        sweep_if_allocating(&es[i]);   /* some may need no allocation */

    /* The probes, dense and randomized, with epsilon-ranks and the prediction. */
    kat_rank_opts_init(&ropts);
    ropts.eps = 1e-3;
    entry probes[] = {
        rank_entry("kat_rank_probe (dense)", call_probe, release_rres, (region)R_PTR(rres)),
        rank_entry("kat_rank_probe_featmap", call_probe_featmap, release_rres, (region)R_PTR(rres)),
        rank_entry("kat_rank_probe_matrix", call_probe_matrix, release_rres, (region)R_PTR(rres)),
    };
    sweep_all(probes, COUNT(probes));
    ropts.method = KAT_RANK_RANDOMIZED;
    ropts.block = 2;
    ropts.oversample = 2;
    ropts.power_iters = 1;
    ropts.tile_rows = 4;
    entry rnd[] = {
        rank_entry("kat_rank_probe (randomized)", call_probe, release_rres, (region)R_PTR(rres)),
        rank_entry("kat_rank_randomized", call_randomized, release_rres, (region)R_PTR(rres)),
    };
    sweep_all(rnd, COUNT(rnd));
    kat_fn_destroy(rfn);
    kat_featmap_destroy(rfm);
    check_problems();
}
END_TEST

/* ---- group and metric ------------------------------------------------------------------------ */

enum { GD = 3, GN = 1 << GD, MN = 6, MDIM = 2 };
static kat_fn *gfn_cm, *gfn_bern;
static double gsides[GD] = {1.0, 0.75, 1.5}, glambda[GN], gmult[GD + 1], gcirc[10], gre[10],
              gim[10];
static double mx_data[MN * MDIM], mk_data[MN * MN], mw[MN], md_data[MN * MN], my_data[MN * 2];
static kat_dmat MX = {MN, MDIM, MDIM, mx_data}, MKM = {MN, MN, MN, mk_data},
                MDM = {MN, MN, MN, md_data}, MY = {MN, 2, 2, my_data};
static double emb_data[GN * GN];
static kat_dmat EMB = {GN, GN, GN, emb_data};
static kat_metric_pd_report pd_rep;
static kat_metric_report cm_rep;
static int is_pd;
static kat_metric_grid mgrid;

static kat_status call_hyperrect(void) { return kat_group_hyperrect_spectrum(gfn_cm, gsides, GD, glambda); }
static kat_status call_hypercube(void) { return kat_group_hypercube_spectrum(gfn_cm, GD, gmult, NULL); }
static kat_status call_circulant(void) { return kat_group_circulant_spectrum(gcirc, 10, gre, gim); }
static kat_status call_cyclic(void) { return kat_group_cyclic_spectrum(gfn_cm, 10, gre); }
static kat_status call_krawtchouk(void) { return kat_group_krawtchouk_table(2, gre); }
static kat_status call_distances(void) { return kat_metric_distances(&MX, KAT_METRIC_L2, &MKM); }
static kat_status call_mkernel(void) { return kat_metric_kernel(gfn_cm, &MX, KAT_METRIC_L1, &MKM); }
static kat_status call_sym_eig(void) { return kat_metric_sym_eigenvalues(&MDM, mw); }
static kat_status call_cholesky(void) { return kat_metric_cholesky_pd(&MDM, &is_pd); }
static kat_status call_pd_check(void)
{
    return kat_metric_pd_check(gfn_cm, &MX, KAT_METRIC_L1, &pd_rep, mw);
}
static kat_status call_mds_spectrum(void) { return kat_metric_mds_spectrum(&MDM, mw); }
static kat_status call_mds_embed(void) { return kat_metric_mds_embed(&MDM, 2, &MY); }
static kat_status call_cm(void) { return kat_metric_cm_check(gfn_cm, &mgrid, &cm_rep); }
static kat_status call_bernstein(void) { return kat_metric_bernstein_check(gfn_bern, &mgrid, &cm_rep); }
static kat_status call_embed_gram(void)
{
    return kat_metric_embed(KAT_EMBED_GRAM, gfn_cm, gsides, GD, &EMB);
}

START_TEST(test_group_metric)
{
    TU_OK(kat_fn_parse("exp(-x)", &gfn_cm, NULL));
    TU_OK(kat_fn_parse("1 - exp(-x)", &gfn_bern, NULL));
    for (int i = 0; i < 10; i++)
        gcirc[i] = 1.0 / (1.0 + i);
    fill_d(mx_data, COUNT(mx_data), 11, 1.0);
    /* md: squared distances of points on a line, so MDS embeds them in 1 dimension. */
    for (int i = 0; i < MN; i++)
        for (int j = 0; j < MN; j++)
            md_data[i * MN + j] = (double)((i - j) * (i - j));
    mgrid = kat_metric_grid_default();
    mgrid.points = 21, mgrid.max_order = 3, mgrid.max_step = 2, mgrid.x1 = 2.0;
    const region in[] = {R_IN(gsides, sizeof gsides), R_IN(gcirc, sizeof gcirc),
                         R_IN(mx_data, sizeof mx_data), R_IN(md_data, sizeof md_data)};
    const entry es[] = {
        {"kat_group_hyperrect_spectrum", call_hyperrect, NULL, NULL,
         {in[0], R_OUT(glambda, sizeof glambda)}},
        {"kat_group_hypercube_spectrum", call_hypercube, NULL, NULL, {R_OUT(gmult, sizeof gmult)}},
        {"kat_group_circulant_spectrum", call_circulant, NULL, NULL,
         {in[1], R_OUT(gre, sizeof gre), R_OUT(gim, sizeof gim)}},
        {"kat_group_cyclic_spectrum", call_cyclic, NULL, NULL, {R_OUT(gre, sizeof gre)}},
        {"kat_group_krawtchouk_table", call_krawtchouk, NULL, NULL, {R_OUT(gre, 9 * sizeof(double))}},
        {"kat_metric_distances", call_distances, NULL, NULL, {in[2], R_OUT(mk_data, sizeof mk_data)}},
        {"kat_metric_kernel", call_mkernel, NULL, NULL, {in[2], R_OUT(mk_data, sizeof mk_data)}},
        {"kat_metric_sym_eigenvalues", call_sym_eig, NULL, NULL, {in[3], R_OUT(mw, sizeof mw)}},
        {"kat_metric_cholesky_pd", call_cholesky, NULL, NULL, {in[3], R_OUT(&is_pd, sizeof is_pd)}},
        {"kat_metric_pd_check", call_pd_check, NULL, NULL,
         {in[2], R_OUT(&pd_rep, sizeof pd_rep), R_OUT(mw, sizeof mw)}},
        {"kat_metric_mds_spectrum", call_mds_spectrum, NULL, NULL, {in[3], R_OUT(mw, sizeof mw)}},
        {"kat_metric_mds_embed", call_mds_embed, NULL, NULL, {in[3], R_OUT(my_data, sizeof my_data)}},
        {"kat_metric_cm_check", call_cm, NULL, NULL, {R_OUT(&cm_rep, sizeof cm_rep)}},
        {"kat_metric_bernstein_check", call_bernstein, NULL, NULL, {R_OUT(&cm_rep, sizeof cm_rep)}},
        {"kat_metric_embed (gram)", call_embed_gram, NULL, NULL,
         {in[0], R_OUT(emb_data, sizeof emb_data)}},
    };
    for (size_t i = 0; i < COUNT(es); i++)
        sweep_if_allocating(&es[i]);
    kat_fn_destroy(gfn_cm);
    kat_fn_destroy(gfn_bern);
    check_problems();
}
END_TEST

/* ---- dense attention ----------------------------------------------------------------------- */

enum { AB = 1, AH = 2, AHKV = 1, AN = 37, AM = 45, AD = 12 };
static float aq[AB * AH * AN * AD], ak[AB * AHKV * AM * AD], av[AB * AHKV * AM * AD],
    ado[AB * AH * AN * AD], ao[AB * AH * AN * AD], alse[AB * AH * AN], adq[AB * AH * AN * AD],
    adk[AB * AHKV * AM * AD], adv[AB * AHKV * AM * AD], afo[AB * AH * AN * AD],
    aflse[AB * AH * AN];
static double rf_o[AB * AH * AN * AD], rf_lse[AB * AH * AN], rf_dq[AB * AH * AN * AD],
    rf_dk[AB * AHKV * AM * AD], rf_dv[AB * AHKV * AM * AD];
static kat_tensor TQ, TK, TV, TDO, TO, TL, TDQ, TDK, TDV, TFO, TFL;
static kat_attn_desc adesc;
static kat_attn_plan *aplan, *aplan_out;

static kat_status call_plan_create(void) { return kat_attn_plan_create(&adesc, NULL, &aplan_out); }
static void release_plan(void) { kat_attn_plan_destroy(aplan_out); }
static kat_status call_attn_forward(void) { return kat_attn_forward(aplan, NULL, &TQ, &TK, &TV, &TO, &TL, NULL); }
static kat_status call_attn_backward(void)
{
    return kat_attn_backward(aplan, NULL, &TQ, &TK, &TV, &TFO, &TFL, &TDO, &TDQ, &TDK, &TDV, NULL);
}
static kat_status call_attn_backward_nolse(void)
{
    return kat_attn_backward(aplan, NULL, &TQ, &TK, &TV, &TFO, NULL, &TDO, &TDQ, &TDK, &TDV, NULL);
}
static kat_status call_dense_forward(void) { return kat_attn_dense_forward(&TQ, &TK, &TV, &TO, &TL, 1, 0); }
static kat_status call_dense_backward(void)
{
    return kat_attn_dense_backward(&TQ, &TK, &TV, &TFO, &TFL, &TDO, &TDQ, &TDK, &TDV, 1, 0);
}
static kat_status call_unfused_forward(void) { return kat_attn_unfused_forward(&adesc, &TQ, &TK, &TV, &TO, &TL); }
static kat_status call_unfused_backward(void)
{
    return kat_attn_unfused_backward(&adesc, &TQ, &TK, &TV, &TFO, &TDO, &TDQ, &TDK, &TDV);
}
static kat_status call_ref_forward(void) { return kat_attn_reference_forward(&adesc, &TQ, &TK, &TV, rf_o, rf_lse); }
static kat_status call_ref_backward(void)
{
    return kat_attn_reference_backward(&adesc, &TQ, &TK, &TV, &TDO, rf_dq, rf_dk, rf_dv);
}

START_TEST(test_attn)
{
    fill_f(aq, COUNT(aq), 21, 1.0);
    fill_f(ak, COUNT(ak), 22, 1.0);
    fill_f(av, COUNT(av), 23, 1.0);
    fill_f(ado, COUNT(ado), 24, 1.0);
    TQ = kat_tensor_view(aq, AB, AH, AN, AD);
    TK = kat_tensor_view(ak, AB, AHKV, AM, AD);
    TV = kat_tensor_view(av, AB, AHKV, AM, AD);
    TDO = kat_tensor_view(ado, AB, AH, AN, AD);
    TO = kat_tensor_view(ao, AB, AH, AN, AD);
    TL = kat_tensor_view(alse, AB, AH, AN, 1);
    TDQ = kat_tensor_view(adq, AB, AH, AN, AD);
    TDK = kat_tensor_view(adk, AB, AHKV, AM, AD);
    TDV = kat_tensor_view(adv, AB, AHKV, AM, AD);
    TFO = kat_tensor_view(afo, AB, AH, AN, AD);
    TFL = kat_tensor_view(aflse, AB, AH, AN, 1);
    adesc = (kat_attn_desc){AB, AH, AHKV, AN, AM, AD, 1, 0, 0};
    TU_OK(kat_attn_plan_create(&adesc, NULL, &aplan));
    TU_OK(kat_attn_forward(aplan, NULL, &TQ, &TK, &TV, &TFO, &TFL, NULL));   /* the backward's o, lse */

    const region in[] = {R_IN(aq, sizeof aq), R_IN(ak, sizeof ak), R_IN(av, sizeof av),
                         R_IN(ado, sizeof ado), R_IN(afo, sizeof afo), R_IN(aflse, sizeof aflse)};
    const entry es[] = {
        {"kat_attn_plan_create", call_plan_create, release_plan, NULL, {R_PTR(aplan_out)}},
        {"kat_attn_forward", call_attn_forward, NULL, NULL,
         {in[0], in[1], in[2], R_OUT(ao, sizeof ao), R_OUT(alse, sizeof alse)}},
        {"kat_attn_backward", call_attn_backward, NULL, NULL,
         {in[0], in[1], in[2], in[3], in[4], in[5], R_OUT(adq, sizeof adq),
          R_OUT(adk, sizeof adk), R_OUT(adv, sizeof adv)}},
        {"kat_attn_backward (no lse)", call_attn_backward_nolse, NULL, NULL,
         {in[0], in[1], in[2], in[3], in[4], R_OUT(adq, sizeof adq), R_OUT(adk, sizeof adk),
          R_OUT(adv, sizeof adv)}},
        {"kat_attn_dense_forward", call_dense_forward, NULL, NULL,
         {in[0], in[1], in[2], R_OUT(ao, sizeof ao), R_OUT(alse, sizeof alse)}},
        {"kat_attn_dense_backward", call_dense_backward, NULL, NULL,
         {in[0], in[1], in[2], in[3], in[4], in[5], R_OUT(adq, sizeof adq),
          R_OUT(adk, sizeof adk), R_OUT(adv, sizeof adv)}},
        {"kat_attn_unfused_forward", call_unfused_forward, NULL, NULL,
         {in[0], in[1], in[2], R_OUT(ao, sizeof ao), R_OUT(alse, sizeof alse)}},
        {"kat_attn_unfused_backward", call_unfused_backward, NULL, NULL,
         {in[0], in[1], in[2], in[3], in[4], R_OUT(adq, sizeof adq), R_OUT(adk, sizeof adk),
          R_OUT(adv, sizeof adv)}},
        {"kat_attn_reference_forward", call_ref_forward, NULL, NULL,
         {in[0], in[1], in[2], R_OUT(rf_o, sizeof rf_o), R_OUT(rf_lse, sizeof rf_lse)}},
        {"kat_attn_reference_backward", call_ref_backward, NULL, NULL,
         {in[0], in[1], in[2], in[3], R_OUT(rf_dq, sizeof rf_dq), R_OUT(rf_dk, sizeof rf_dk),
          R_OUT(rf_dv, sizeof rf_dv)}},
    };
    /* Each ISA's kernels: the plan fixes them at creation. */
    kat_arch initial = kat_arch_get();
    for (int a = 0; a < KAT_ARCH_COUNT; a++) {
        if (!kat_arch_supported((kat_arch)a))
            continue;
        TU_OK(kat_arch_set((kat_arch)a));
        kat_attn_plan_destroy(aplan);
        TU_OK(kat_attn_plan_create(&adesc, NULL, &aplan));
        sweep_all(es, a == 0 ? COUNT(es) : 4);
    }
    TU_OK(kat_arch_set(initial));
    kat_attn_plan_destroy(aplan);
    check_problems();
}
END_TEST

/* ---- linear attention --------------------------------------------------------------------- */

enum { LB = 1, LH = 2, LN = 21, LDIN = 3, LDV = 4 };
static float lq[LB * LH * LN * LDIN], lk[LB * LH * LN * LDIN], lv[LB * LH * LN * LDV],
    ldo[LB * LH * LN * LDV], lo[LB * LH * LN * LDV], lfo[LB * LH * LN * LDV],
    ldq[LB * LH * LN * LDIN], ldk[LB * LH * LN * LDIN], ldv[LB * LH * LN * LDV];
static float *lstate_in, *lstate_out, *ldstate;
static double lref[LB * LH * LN * LDV], lrdq[LB * LH * LN * LDIN], lrdk[LB * LH * LN * LDIN],
    lrdv[LB * LH * LN * LDV];
static kat_tensor LQ, LK, LV, LDO, LO, LFO, LDQ, LDK, LDV_, LSI, LSO, LDS;
static kat_featmap *lfm;
static kat_linear_opts lopts;
static size_t lstate_n;

static kat_status call_linear_forward(void)
{
    return kat_linear_forward(lfm, &lopts, &LQ, &LK, &LV, &LO, &LSI, &LSO);
}
static kat_status call_linear_backward(void)
{
    return kat_linear_backward(lfm, &lopts, &LQ, &LK, &LV, &LFO, &LDO, &LDQ, &LDK, &LDV_, &LSI,
                               &LDS);
}
static kat_status call_linear_reference(void)
{
    return kat_linear_reference(lfm, &lopts, 0, 64, &LQ, &LK, &LV, &LSI, lref);
}
static kat_status call_linear_reference_backward(void)
{
    return kat_linear_reference_backward(lfm, &lopts, &LQ, &LK, &LV, &LDO, lrdq, lrdk, lrdv);
}

START_TEST(test_linear)
{
    /* elu+1 allocates nothing in its callbacks, so every allocation is the engine's and a
     * failure must leave every output untouched. The Taylor map allocates scratch inside its
     * vjp; linear.h allows a map callback that fails part way to leave outputs partly
     * written, so for it the backward's outputs are only compared after success. */
    for (int map = 0; map < 2; map++) {
        if (map == 0)
            TU_OK(kat_featmap_elu1_create(LDIN, &lfm));
        else
            TU_OK(kat_featmap_taylor_create(LDIN, 2, 2.0, &lfm));
        int bwd_out = map == 0 ? OUT : OUT_PARTIAL;
        size_t D = kat_featmap_out_dim(lfm);
        lstate_n = LB * LH * D * (LDV + 1);
        lstate_in = malloc(lstate_n * sizeof(float));
        lstate_out = malloc(lstate_n * sizeof(float));
        ldstate = malloc(lstate_n * sizeof(float));
        fill_f(lq, COUNT(lq), 31, 0.5);
        fill_f(lk, COUNT(lk), 32, 0.5);
        fill_f(lv, COUNT(lv), 33, 1.0);
        fill_f(ldo, COUNT(ldo), 34, 1.0);
        LQ = kat_tensor_view(lq, LB, LH, LN, LDIN);
        LK = kat_tensor_view(lk, LB, LH, LN, LDIN);
        LV = kat_tensor_view(lv, LB, LH, LN, LDV);
        LDO = kat_tensor_view(ldo, LB, LH, LN, LDV);
        LO = kat_tensor_view(lo, LB, LH, LN, LDV);
        LFO = kat_tensor_view(lfo, LB, LH, LN, LDV);
        LDQ = kat_tensor_view(ldq, LB, LH, LN, LDIN);
        LDK = kat_tensor_view(ldk, LB, LH, LN, LDIN);
        LDV_ = kat_tensor_view(ldv, LB, LH, LN, LDV);
        LSI = kat_tensor_view(lstate_in, LB, LH, D, LDV + 1);
        LSO = kat_tensor_view(lstate_out, LB, LH, D, LDV + 1);
        LDS = kat_tensor_view(ldstate, LB, LH, D, LDV + 1);
        /* A valid initial state: the keys of a prefix, so its denominators are positive. */
        TU_OK(kat_linear_forward(lfm, NULL, &LQ, &LK, &LV, &LFO, NULL, &LSI));
        for (int causal = 0; causal <= 1; causal++) {
            lopts = (kat_linear_opts){causal, 0, 8, KAT_LINEAR_INTRA_AUTO};
            TU_OK(kat_linear_forward(lfm, &lopts, &LQ, &LK, &LV, &LFO, &LSI, NULL));
            const region in[] = {R_IN(lq, sizeof lq), R_IN(lk, sizeof lk), R_IN(lv, sizeof lv),
                                 R_IN(ldo, sizeof ldo), R_IN(lfo, sizeof lfo),
                                 R_IN(lstate_in, lstate_n * sizeof(float))};
            const entry es[] = {
                {"kat_linear_forward", call_linear_forward, NULL, NULL,
                 {in[0], in[1], in[2], in[5], R_OUT(lo, sizeof lo),
                  R_OUT(lstate_out, lstate_n * sizeof(float))}},
                {"kat_linear_backward", call_linear_backward, NULL, NULL,
                 {in[0], in[1], in[2], in[3], in[4], in[5], {ldq, sizeof ldq, bwd_out},
                  {ldk, sizeof ldk, bwd_out}, {ldv, sizeof ldv, bwd_out},
                  {ldstate, lstate_n * sizeof(float), bwd_out}}},
                {"kat_linear_reference", call_linear_reference, NULL, NULL,
                 {in[0], in[1], in[2], in[5], R_OUT(lref, sizeof lref)}},
                {"kat_linear_reference_backward", call_linear_reference_backward, NULL, NULL,
                 {in[0], in[1], in[2], in[3], R_OUT(lrdq, sizeof lrdq),
                  R_OUT(lrdk, sizeof lrdk), R_OUT(lrdv, sizeof lrdv)}},
            };
            for (size_t i = 0; i < COUNT(es); i++)
                sweep_if_allocating(&es[i]);
        }
        kat_featmap_destroy(lfm);
        free(lstate_in), free(lstate_out), free(ldstate);
    }
    check_problems();
}
END_TEST

/* ---- sparse attention ---------------------------------------------------------------------- */

enum { SB = 1, SH = 2, SHKV = 1, SN = 70, SM = 70, SD = 8, SBLK = 16 };
static float sq[SB * SH * SN * SD], sk[SB * SHKV * SM * SD], sv[SB * SHKV * SM * SD],
    sdo[SB * SH * SN * SD], so[SB * SH * SN * SD], slse[SB * SH * SN], sdq[SB * SH * SN * SD],
    sdk[SB * SHKV * SM * SD], sdv[SB * SHKV * SM * SD], sfo[SB * SH * SN * SD], sflse[SB * SH * SN];
static kat_tensor SQ, SK, SV, SDO, SO, SL, SDQ, SDK, SDV, SFO, SFL;
static kat_attn_desc sdesc;
static uint8_t sqmask[SB * SH * SN], skmask[SB * SHKV * SM], sdense[SN * SM];
static int32_t sqb[SB * SH * SN], skb[SB * SHKV * SM];
static kat_sparse_keep skeep_out, sqkeep, skkeep;
static kat_sparse_blockmask *sbm_out, *sbm;
static sp_handle *slay_out, *slay;
static size_t sb_off[6];
static int32_t sb_kbl[16];
static uint8_t sb_full[16];

static int even_pred(void *arg, size_t b, size_t h, size_t i, size_t j) { return (i + j) % 2 == 0; }

static kat_status call_keep_from_mask(void) { return kat_sparse_keep_from_mask(sqmask, SB, SH, SN, &skeep_out); }
static void release_keep(void) { kat_sparse_keep_free(&skeep_out); }
static kat_status call_lsh(void) { return kat_sparse_lsh_buckets(&SQ, SH / SHKV, 4, 3, sqb); }
static kat_status call_bm_create(void)
{
    kat_sparse_blockmask_desc d = {1, 1, SN, SM, SBLK, SBLK, sb_off, sb_kbl, sb_full, even_pred,
                                   NULL};
    return kat_sparse_blockmask_create(&d, &sbm_out);
}
static kat_status call_bm_window(void)
{
    return kat_sparse_blockmask_sliding_window(SN, SM, 20, 1, SBLK, SBLK, &sbm_out);
}
static kat_status call_bm_global(void)
{
    return kat_sparse_blockmask_global(SN, SM, 3, 10, 1, SBLK, SBLK, &sbm_out);
}
static kat_status call_bm_dense(void)
{
    return kat_sparse_blockmask_from_dense(sdense, 1, 1, SN, SM, SBLK, SBLK, &sbm_out);
}
static void release_bm(void) { kat_sparse_blockmask_destroy(sbm_out); }
static kat_status call_qk_layout(void) { return sp_qk(&sdesc, &sqkeep, &skkeep, &slay_out); }
static kat_status call_hash_layout(void) { return sp_hash(&sdesc, 4, sqb, skb, &slay_out); }
static kat_status call_block_layout(void) { return sp_block(&sdesc, sbm, &slay_out); }
static void release_layout(void) { sp_handle_destroy(slay_out); }
static kat_status call_sparse_forward(void) { return sp_forward(slay, &SQ, &SK, &SV, &SO, &SL, NULL); }
static kat_status call_sparse_backward(void)
{
    return sp_backward(slay, &SQ, &SK, &SV, &SFO, &SFL, &SDO, &SDQ, &SDK, &SDV, NULL);
}

START_TEST(test_sparse)
{
    fill_f(sq, COUNT(sq), 41, 1.0);
    fill_f(sk, COUNT(sk), 42, 1.0);
    fill_f(sv, COUNT(sv), 43, 1.0);
    fill_f(sdo, COUNT(sdo), 44, 1.0);
    SQ = kat_tensor_view(sq, SB, SH, SN, SD);
    SK = kat_tensor_view(sk, SB, SHKV, SM, SD);
    SV = kat_tensor_view(sv, SB, SHKV, SM, SD);
    SDO = kat_tensor_view(sdo, SB, SH, SN, SD);
    SO = kat_tensor_view(so, SB, SH, SN, SD);
    SL = kat_tensor_view(slse, SB, SH, SN, 1);
    SDQ = kat_tensor_view(sdq, SB, SH, SN, SD);
    SDK = kat_tensor_view(sdk, SB, SHKV, SM, SD);
    SDV = kat_tensor_view(sdv, SB, SHKV, SM, SD);
    SFO = kat_tensor_view(sfo, SB, SH, SN, SD);
    SFL = kat_tensor_view(sflse, SB, SH, SN, 1);
    sdesc = (kat_attn_desc){SB, SH, SHKV, SN, SM, SD, 1, 0, 0};
    for (size_t i = 0; i < COUNT(sqmask); i++)
        sqmask[i] = (i * 7) % 5 != 0;
    for (size_t i = 0; i < COUNT(skmask); i++)
        skmask[i] = (i * 3) % 4 != 0;
    for (size_t i = 0; i < SN; i++)
        for (size_t j = 0; j < SM; j++)
            sdense[i * SM + j] = j <= i && (j % 3 != 1 || i - j < 5);
    for (size_t i = 0; i < COUNT(skb); i++)
        skb[i] = (int32_t)((i * 5) % 4);
    /* Block lists: query block qb lists key blocks 0..qb (causal), every other one masked. */
    size_t nqb = (SN + SBLK - 1) / SBLK, e = 0;
    for (size_t qb = 0; qb < nqb; qb++) {
        sb_off[qb] = e;
        for (size_t kb = 0; kb <= qb; kb++, e++)
            sb_kbl[e] = (int32_t)kb, sb_full[e] = kb % 2;
    }
    sb_off[nqb] = e;
    TU_OK(kat_sparse_keep_from_mask(sqmask, SB, SH, SN, &sqkeep));
    TU_OK(kat_sparse_keep_from_mask(skmask, SB, SHKV, SM, &skkeep));
    TU_OK(kat_sparse_lsh_buckets(&SQ, SH / SHKV, 4, 3, sqb));

    const entry build[] = {
        {"kat_sparse_keep_from_mask", call_keep_from_mask, release_keep, NULL,
         {R_IN(sqmask, sizeof sqmask), R_PTR(skeep_out)}},
        {"kat_sparse_lsh_buckets", call_lsh, NULL, NULL, {R_IN(sq, sizeof sq), R_OUT(sqb, sizeof sqb)}},
        {"kat_sparse_blockmask_create", call_bm_create, release_bm, NULL,
         {R_IN(sb_off, sizeof sb_off), R_IN(sb_kbl, sizeof sb_kbl), R_IN(sb_full, sizeof sb_full),
          R_PTR(sbm_out)}},
        {"kat_sparse_blockmask_sliding_window", call_bm_window, release_bm, NULL, {R_PTR(sbm_out)}},
        {"kat_sparse_blockmask_global", call_bm_global, release_bm, NULL, {R_PTR(sbm_out)}},
        {"kat_sparse_blockmask_from_dense", call_bm_dense, release_bm, NULL,
         {R_IN(sdense, sizeof sdense), R_PTR(sbm_out)}},
        {"kat__sparse_qk_layout_create", call_qk_layout, release_layout, NULL, {R_PTR(slay_out)}},
        {"kat__sparse_hash_layout_create", call_hash_layout, release_layout, NULL,
         {R_IN(sqb, sizeof sqb), R_IN(skb, sizeof skb), R_PTR(slay_out)}},
    };
    for (size_t i = 0; i < COUNT(build); i++)
        sweep_if_allocating(&build[i]);

    const region in[] = {R_IN(sq, sizeof sq), R_IN(sk, sizeof sk), R_IN(sv, sizeof sv),
                         R_IN(sdo, sizeof sdo), R_IN(sfo, sizeof sfo), R_IN(sflse, sizeof sflse)};
    const entry run[] = {
        {"kat__sparse_block_layout_create", call_block_layout, release_layout, NULL, {R_PTR(slay_out)}},
        {"kat_sparse_forward", call_sparse_forward, NULL, NULL,
         {in[0], in[1], in[2], R_OUT(so, sizeof so), R_OUT(slse, sizeof slse)}},
        {"kat_sparse_backward", call_sparse_backward, NULL, NULL,
         {in[0], in[1], in[2], in[3], in[4], in[5], R_OUT(sdq, sizeof sdq),
          R_OUT(sdk, sizeof sdk), R_OUT(sdv, sizeof sdv)}},
    };
    /* One layout of each kind, built without failures, then swept through execution. */
    for (int kind = 0; kind < 4; kind++) {
        if (kind == 0)
            TU_OK(sp_qk(&sdesc, &sqkeep, &skkeep, &slay));
        else if (kind == 1)
            TU_OK(sp_hash(&sdesc, 4, sqb, skb, &slay));
        else {
            TU_OK(kind == 2 ? call_bm_create() : call_bm_dense());
            sbm = sbm_out;
            TU_OK(sp_block(&sdesc, sbm, &slay));
        }
        TU_OK(sp_forward(slay, &SQ, &SK, &SV, &SFO, &SFL, NULL));
        for (size_t i = kind >= 2 ? 0 : 1; i < COUNT(run); i++)
            sweep_if_allocating(&run[i]);
        sp_handle_destroy(slay);
        if (kind >= 2)
            kat_sparse_blockmask_destroy(sbm);
    }
    kat_sparse_keep_free(&sqkeep);
    kat_sparse_keep_free(&skkeep);
    check_problems();
}
END_TEST

/* ---- theorems ---------------------------------------------------------------------------- */

static size_t thm_index;
static kat_theorem_result thm_res;
static kat_status call_theorem(void) { return kat_theorem_run(thm_index, KAT_THEOREM_QUICK, &thm_res); }

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

START_TEST(test_theorems)
{
    /* The quick variant of every registry entry. A sweep costs one run per allocation, so the
     * fast suite sweeps the entries whose clean run times its allocation count stays under 2 s
     * and names the others; KAT_ALLOC_ALL_THEOREMS=1 sweeps every entry (minutes). */
    const char *all_env = getenv("KAT_ALLOC_ALL_THEOREMS"), *vg = getenv("KAT_VALGRIND");
    int all = all_env && *all_env == '1';
    if (!all && vg && *vg == '1')
        return;   /* under valgrind even the clean runs take minutes; ASan runs cover them */
    for (size_t i = 0; i < kat_theorem_count(); i++) {
        thm_index = i;
        double t0 = now_seconds();
        kat_debug_fail_alloc_at(0);
        TU_OK(call_theorem());
        size_t made = kat_debug_fail_alloc_at(0);
        double cost = (now_seconds() - t0) * (double)made;
        if (made == 0)
            continue;
        if (!all && cost > 2.0) {
            fprintf(stderr, "# alloc: theorem %s skipped (%zu allocations, about %.0f s to "
                    "sweep; KAT_ALLOC_ALL_THEOREMS=1 runs it)\n", kat_theorem_info_at(i)->id,
                    made, cost);
            continue;
        }
        entry e = {kat_theorem_info_at(i)->id, call_theorem, NULL, NULL, {R_PTR(thm_res)}};
        sweep(&e);
    }
    check_problems();
}
END_TEST

START_TEST(test_report)
{
    /* Runs last in this process (CK_FORK=no) or alone (fork mode): a summary for the log. */
    fprintf(stderr, "# alloc sweeps in this process: %zu entry points, %zu calls\n", sweeps_total,
            calls_total);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("alloc");
    TCase *tc = tcase_create("alloc");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_core_and_fn);
    tcase_add_test(tc, test_io);
    tcase_add_test(tc, test_featmaps);
    tcase_add_test(tc, test_rank);
    tcase_add_test(tc, test_group_metric);
    tcase_add_test(tc, test_attn);
    tcase_add_test(tc, test_linear);
    tcase_add_test(tc, test_sparse);
    tcase_add_test(tc, test_theorems);
    tcase_add_test(tc, test_report);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
