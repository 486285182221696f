/* The kernel-matrix operator: any block of M = f(s * a(q_i, k_j)) built on demand with GEMM,
 * and the threaded products M X that the dense and the matrix-free paths share. */
#include <cblas.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "core/internal.h"
#include "core/kat_config.h"
#include "core/runtime.h"
#include "rank/rank_internal.h"
#if KAT_HAVE_OPENMP
#include <omp.h>
#endif

/* Columns of M built at once inside a row tile of kat__rank_op_apply: a tile_rows x CHUNK block
 * (2 MiB at 256 rows) stays in cache between its GEMM, f and the product with X. */
enum { CHUNK_COLS = 1024 };

const char *kat_rank_form_name(kat_rank_form form)
{
    static const char *const names[KAT_RANK_FORM_COUNT] = {"inner", "l2sq", "l1"};
    return (int)form >= 0 && form < KAT_RANK_FORM_COUNT ? names[form] : NULL;
}

kat_status kat_rank_form_parse(const char *name, kat_rank_form *out)
{
    if (!name || !out)
        return kat__fail(KAT_EINVAL, "rank_form_parse: %s is NULL", name ? "out" : "name");
    for (int f = 0; f < KAT_RANK_FORM_COUNT; f++)
        if (strcmp(name, kat_rank_form_name((kat_rank_form)f)) == 0) {
            *out = (kat_rank_form)f;
            return KAT_OK;
        }
    return kat__fail(KAT_EINVAL, "unknown form '%s' (expected inner, l2sq or l1)", name);
}

kat_status kat__rank_check_inputs(const char *who, kat_rank_form form, double s, const kat_dmat *Q,
                             const kat_dmat *K, int check_finite)
{
    char what[96];
    kat_status st;
    if ((int)form < 0 || form >= KAT_RANK_FORM_COUNT)
        return kat__fail(KAT_EINVAL, "%s: form = %d is not inner, l2sq or l1", who, (int)form);
    if (!isfinite(s))
        return kat__fail(KAT_EINVAL, "%s: scale s = %g is not finite", who, s);
    snprintf(what, sizeof what, "%s: Q", who);
    if ((st = kat_dmat_check(Q, what, 0)))
        return st;
    snprintf(what, sizeof what, "%s: K", who);
    if ((st = kat_dmat_check(K, what, 0)))
        return st;
    if (Q->cols == 0)
        return kat__fail(KAT_EINVAL, "%s: Q and K need d >= 1 columns (Q has 0)", who);
    if (Q->cols != K->cols)
        return kat__fail(KAT_EINVAL, "%s: Q has d = %zu columns but K has d = %zu", who, Q->cols,
                        K->cols);
    /* BLAS takes 32-bit sizes. */
    if (Q->rows > INT_MAX || K->rows > INT_MAX || Q->ld > INT_MAX || K->ld > INT_MAX)
        return kat__fail(KAT_ERANGE,
                        "%s: Q is %zu x %zu (ld %zu) and K %zu x %zu (ld %zu); sizes and "
                        "strides above %d are not supported by BLAS",
                        who, Q->rows, Q->cols, Q->ld, K->rows, K->cols, K->ld, INT_MAX);
    if (check_finite) {
        snprintf(what, sizeof what, "%s: Q", who);
        if ((st = kat_dmat_check(Q, what, 1)))
            return st;
        snprintf(what, sizeof what, "%s: K", who);
        if ((st = kat_dmat_check(K, what, 1)))
            return st;
    }
    return KAT_OK;
}

static double *row_norms_sq(const double *x, size_t n, size_t ld, size_t d)
{
    double *out = kat__alloc_array(n ? n : 1, sizeof(double), "rank: squared row norms");
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        double acc = 0.0;
        for (size_t t = 0; t < d; t++)
            acc += x[i * ld + t] * x[i * ld + t];
        out[i] = acc;
    }
    return out;
}

kat_status kat__rank_op_init(rank_op *op, const kat_fn *f, kat_rank_form form, double s,
                        const kat_dmat *Q, const kat_dmat *K)
{
    memset(op, 0, sizeof *op);
    op->f = f;
    op->form = form;
    op->s = s;
    op->a = Q->data;
    op->lda = Q->ld;
    op->rows = Q->rows;
    op->b = K->data;
    op->ldb = K->ld;
    op->cols = K->rows;
    op->d = Q->cols;
    if (form == KAT_RANK_L2SQ) {
        op->an = row_norms_sq(Q->data, Q->rows, Q->ld, Q->cols);
        op->bn = op->an ? row_norms_sq(K->data, K->rows, K->ld, K->cols) : NULL;
        if (!op->bn) {
            kat_free(op->an);
            op->an = NULL;
            return KAT_ENOMEM;
        }
    }
    return KAT_OK;
}

void kat__rank_op_free(rank_op *op)
{
    if (!op)
        return;
    kat_free(op->an);
    kat_free(op->bn);
    op->an = op->bn = NULL;
}

rank_op kat__rank_op_transpose(const rank_op *op)
{
    rank_op t = *op;
    t.a = op->b;
    t.lda = op->ldb;
    t.rows = op->cols;
    t.an = op->bn;
    t.b = op->a;
    t.ldb = op->lda;
    t.cols = op->rows;
    t.bn = op->an;
    t.transposed = !op->transposed;
    t.row0 = op->col0;
    t.col0 = op->row0;
    return t;
}

/* The argument of f at (i, j), recomputed directly for an error message. */
static double entry_argument(const rank_op *op, size_t i, size_t j)
{
    const double *x = op->a + i * op->lda, *y = op->b + j * op->ldb;
    double acc = 0.0;
    for (size_t t = 0; t < op->d; t++) {
        double diff = x[t] - y[t];
        acc += op->form == KAT_RANK_INNER ? x[t] * y[t]
               : op->form == KAT_RANK_L2SQ ? diff * diff
                                           : fabs(diff);
    }
    return op->s * acc;
}

/* The block with f applied but not checked (kat__rank_op_block checks it). */
static void build_block(const rank_op *op, size_t i0, size_t ni, size_t j0, size_t nj,
                        double *out, size_t ldo)
{
    if (ni == 0 || nj == 0)
        return;
    const double *x = op->a + i0 * op->lda, *y = op->b + j0 * op->ldb;
    const int d = (int)op->d;
    switch (op->form) {
    case KAT_RANK_INNER:
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)ni, (int)nj, d, op->s, x,
                    (int)op->lda, y, (int)op->ldb, 0.0, out, (int)ldo);
        break;
    case KAT_RANK_L2SQ:
        /* |x|^2 + |y|^2 - 2<x, y>: one GEMM; clamp the rounding below 0 (|x - y|^2 >= 0). */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)ni, (int)nj, d, -2.0, x,
                    (int)op->lda, y, (int)op->ldb, 0.0, out, (int)ldo);
        for (size_t i = 0; i < ni; i++) {
            double *row = out + i * ldo, xn = op->an[i0 + i];
            const double *yn = op->bn + j0;
            for (size_t j = 0; j < nj; j++) {
                double v = row[j] + xn + yn[j];
                row[j] = op->s * (v > 0.0 ? v : 0.0);
            }
        }
        break;
    default: /* KAT_RANK_L1 */
        for (size_t i = 0; i < ni; i++) {
            const double *xi = x + i * op->lda;
            double *row = out + i * ldo;
            for (size_t j = 0; j < nj; j++) {
                const double *yj = y + j * op->ldb;
                double acc = 0.0;
                for (size_t t = 0; t < op->d; t++)
                    acc += fabs(xi[t] - yj[t]);
                row[j] = op->s * acc;
            }
        }
        break;
    }
    if (op->f)
        for (size_t i = 0; i < ni; i++)
            kat_fn_eval_unchecked(op->f, out + i * ldo, out + i * ldo, nj);
}

/* 1 when every x[i] is finite: an exponent test on the bits, which vectorises (an isfinite
 * loop does not), so checking costs little next to building the block. */
static int finite_fast(const double *x, size_t n)
{
    const uint64_t expo = 0x7ff0000000000000ull;
    uint64_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t u;
        memcpy(&u, &x[i], sizeof u);
        bad |= (uint64_t)((u & expo) == expo);
    }
    return bad == 0;
}

kat_status kat__rank_op_block(const rank_op *op, size_t i0, size_t ni, size_t j0, size_t nj,
                         double *out, size_t ldo)
{
    build_block(op, i0, ni, j0, nj, out, ldo);
    for (size_t i = 0; i < ni; i++) {
        double *row = out + i * ldo;
        if (finite_fast(row, nj))
            continue;
        size_t j = kat__first_nonfinite(row, nj);
        double arg = entry_argument(op, i0 + i, j0 + j);
        size_t r = op->row0 + i0 + i, c = op->col0 + j0 + j;
        if (op->transposed) {
            size_t tmp = r;
            r = c;
            c = tmp;
        }
        return kat__fail(KAT_EDOM,
                        "f = %s is %g at M(%zu, %zu), whose argument is %.17g; f must be "
                        "finite on every entry (a smaller scale s may help)",
                        op->f ? kat_fn_name(op->f) : "identity", row[j], r, c, arg);
    }
    return KAT_OK;
}

static size_t ceil_div(size_t a, size_t b) { return a / b + (a % b != 0); }

/* Bring acc to a scale of at least `scale` (both powers of two): the sum shrinks exactly. */
static void fro_rescale(rank_fro_acc *acc, double scale)
{
    if (scale <= acc->scale)
        return;
    double r = acc->scale / scale;   /* 0 for an empty sum */
    acc->ssq.sum *= r * r;
    acc->ssq.c *= r * r;
    acc->scale = scale;
}

/* Lanes of the block's maximum and sum of squares: independent partial results in a fixed
 * order, which the compiler turns into vector registers (one running sum would be a chain of
 * dependent additions, a quarter of the first pass's time over M). */
enum { FRO_LANES = 8 };

/* Entries are finite here (a NaN or Inf fails the call afterwards), so the least power of
 * two above the block's maximum is. */
void kat__rank_fro_acc_add(rank_fro_acc *acc, const double *blk, size_t ni, size_t nj, size_t ldb)
{
    /* A plain comparison, not fmax: fmax is a libm call per entry (it must order NaNs), and
     * this loop runs over every entry of M; a NaN is skipped here and reported by the
     * finiteness check of the product. */
    double lane[FRO_LANES] = {0};
    size_t nv = nj - nj % FRO_LANES;
    for (size_t i = 0; i < ni; i++) {
        const double *row = blk + i * ldb;
        for (size_t j = 0; j < nv; j += FRO_LANES)
            for (int l = 0; l < FRO_LANES; l++) {
                double a = fabs(row[j + l]);
                lane[l] = a > lane[l] ? a : lane[l];
            }
        for (size_t j = nv; j < nj; j++) {
            double a = fabs(row[j]);
            lane[0] = a > lane[0] ? a : lane[0];
        }
    }
    double amax = 0.0;
    for (int l = 0; l < FRO_LANES; l++)
        amax = lane[l] > amax ? lane[l] : amax;
    if (!(amax <= DBL_MAX) || amax == 0.0)
        return;   /* Inf: the NaN/Inf check on Y reports it; zeros add nothing */
    fro_rescale(acc, kat__rank_pow2_above(amax));
    double inv = 1.0 / acc->scale;
    for (size_t i = 0; i < ni; i++) {
        const double *row = blk + i * ldb;
        double part[FRO_LANES] = {0}, r = 0.0;
        for (size_t j = 0; j < nv; j += FRO_LANES)
            for (int l = 0; l < FRO_LANES; l++) {
                double x = row[j + l] * inv;
                part[l] += x * x;
            }
        for (size_t j = nv; j < nj; j++) {
            double x = row[j] * inv;
            r += x * x;
        }
        for (int l = 0; l < FRO_LANES; l++)
            r += part[l];
        rank_sum_add(&acc->ssq, r);
    }
}

/* Threads for a region of `work` multiply-adds over `items` work items: small jobs run on
 * one thread, where waking a team costs more than it saves (the results do not depend on
 * the choice: every item is computed the same way whichever thread runs it). */
static int region_threads(double work, size_t items)
{
    int nt = kat_num_threads();
    if (work < 1e6)
        nt = 1;
    if ((size_t)nt > items)
        nt = (int)items;
    return nt < 1 ? 1 : nt;
}

kat_status kat__rank_op_apply(const rank_op *op, const double *X, size_t ldx, size_t b, double *Y,
                         size_t ldy, size_t tile_rows, rank_fro *fro)
{
    if (fro)
        *fro = (rank_fro){1.0, 0.0};
    if (op->rows == 0 || b == 0)
        return KAT_OK;
    if (op->cols == 0) {   /* M has no columns: M X = 0 */
        for (size_t c = 0; c < b; c++)
            memset(Y + c * ldy, 0, op->rows * sizeof(double));
        return KAT_OK;
    }
    size_t tb = tile_rows ? tile_rows : 256;
    if (tb > op->rows)
        tb = op->rows;
    size_t ntiles = ceil_div(op->rows, tb);
    /* The packed product builds chunks of RANK_PACKED_KC columns in its own layout; the
     * portable one chunks of CHUNK_COLS for OpenBLAS. Either scratch holds a tb x cb block
     * for naming a non-finite entry. */
    int packed = kat__rank_packed_available();
    size_t cb = packed ? RANK_PACKED_KC : CHUNK_COLS;
    if (cb > op->cols)
        cb = op->cols;
    size_t scratch = packed ? kat__rank_packed_scratch(tb, b, op->d) : tb * cb;
    rank_fro_acc *partial = NULL;
    double *Xp = NULL;
    if (fro && !(partial = kat__alloc_array(ntiles, sizeof *partial, "rank: tile sums")))
        return KAT_ENOMEM;
    if (packed) {
        if (!(Xp = kat__alloc_array(kat__rank_packed_x_size(op->cols, b), sizeof(double),
                                   "rank: packed vectors"))) {
            kat_free(partial);
            return KAT_ENOMEM;
        }
        kat__rank_packed_x(X, ldx, op->cols, b, Xp);
    }
    kat_par_err err;
    kat__par_err_init(&err);
    int nt = region_threads((double)op->rows * (double)op->cols * (double)(b + op->d), ntiles);
    /* Each thread of the region calls a single-threaded GEMM: OpenBLAS's own threads would
     * oversubscribe the cores, and a tile's GEMM then runs the same code whatever the thread
     * counts, which keeps the bits independent of them. */
    kat_status hs = kat__blas_hold(1, nt, "rank");
    if (hs) {
        kat_free(partial);
        kat_free(Xp);
        return hs;
    }
#pragma omp parallel num_threads(nt)
    {
        double *buf = kat__alloc_array(scratch, sizeof(double), "rank: tile buffer");
        if (!buf)
            kat__par_err_record(&err, 0, KAT_ENOMEM);
#pragma omp for schedule(dynamic, 1)
        for (size_t t = 0; t < ntiles; t++) {
            if (!buf || kat_par_err_failed(&err))
                continue;
            size_t i0 = t * tb, ni = op->rows - i0 < tb ? op->rows - i0 : tb;
            rank_fro_acc acc = {0.0, {0.0, 0.0}};
            if (packed)
                kat__rank_packed_tile(op, i0, ni, Xp, b, Y, ldy, buf, partial ? &acc : NULL);
            for (size_t j0 = 0; j0 < op->cols && !packed; j0 += cb) {
                size_t nj = op->cols - j0 < cb ? op->cols - j0 : cb;
                build_block(op, i0, ni, j0, nj, buf, cb);
                if (partial)
                    kat__rank_fro_acc_add(&acc, buf, ni, nj, cb);
                /* Y[i0.., :] (+)= block X[j0.., :]; the row-major block is a column-major
                 * nj x ni matrix, hence the transpose. */
                cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)ni, (int)b, (int)nj,
                            1.0, buf, (int)cb, X + j0, (int)ldx, j0 ? 1.0 : 0.0, Y + i0,
                            (int)ldy);
            }
            if (partial)
                partial[t] = acc;
            /* A NaN or Inf anywhere in these rows of M reaches Y (inf * 0 is NaN too), so
             * checking Y is enough; only then look for the entry, to name it. */
            int ok = 1;
            for (size_t c = 0; c < b && ok; c++)
                ok = finite_fast(Y + c * ldy + i0, ni);
            if (!ok) {
                kat_status st = KAT_OK;
                for (size_t j0 = 0; j0 < op->cols && !st; j0 += cb)
                    st = kat__rank_op_block(op, i0, ni, j0,
                                       op->cols - j0 < cb ? op->cols - j0 : cb, buf, cb);
                if (!st)
                    st = kat__fail(KAT_EDOM, "rows %zu..%zu of M times a test block overflow "
                                  "(M's entries are finite but too large)", op->row0 + i0,
                                  op->row0 + i0 + ni - 1);
                kat__par_err_record(&err, t, st);
            }
        }
        kat_free(buf);
    }
    kat__blas_release();
    kat_free(Xp);
    kat_status st = kat__par_err_raise(&err);
    if (st == KAT_OK && fro) {
        rank_fro_acc total = {0.0, {0.0, 0.0}};
        for (size_t t = 0; t < ntiles; t++)
            fro_rescale(&total, partial[t].scale);
        for (size_t t = 0; t < ntiles; t++) {
            rank_fro_acc p = partial[t];
            fro_rescale(&p, total.scale);
            rank_sum_add(&total.ssq, p.ssq.sum);
            rank_sum_add(&total.ssq, p.ssq.c);
        }
        if (total.scale > 0.0)
            *fro = (rank_fro){total.scale, rank_sum_value(&total.ssq)};
    }
    kat_free(partial);
    return st;
}

kat_status kat__rank_op_fill(const rank_op *op, double *M, size_t ldm, size_t tile_rows)
{
    if (op->rows == 0 || op->cols == 0)
        return KAT_OK;
    size_t tb = tile_rows ? tile_rows : 256;
    if (tb > op->rows)
        tb = op->rows;
    size_t ntiles = ceil_div(op->rows, tb);
    kat_par_err err;
    kat__par_err_init(&err);
    int nt = region_threads((double)op->rows * (double)op->cols * (double)(op->d + 4), ntiles);
    kat_status hs = kat__blas_hold(1, nt, "rank");
    if (hs)
        return hs;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (size_t t = 0; t < ntiles; t++) {
        if (kat_par_err_failed(&err))
            continue;
        size_t i0 = t * tb, ni = op->rows - i0 < tb ? op->rows - i0 : tb;
        kat_status st = kat__rank_op_block(op, i0, ni, 0, op->cols, M + i0 * ldm, ldm);
        if (st)
            kat__par_err_record(&err, t, st);
    }
    kat__blas_release();
    return kat__par_err_raise(&err);
}

kat_status kat__rank_mem_check(double bytes, const char *what, const char *hint)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0)
        return KAT_OK;   /* unknown: let the allocation decide */
    double phys = (double)pages * (double)page;
    /* Leave a tenth for everything else; beyond that the OS would kill us mid-way. */
    if (bytes <= 0.9 * phys)
        return KAT_OK;
    const double gib = 1024.0 * 1024.0 * 1024.0;
    return kat__fail(KAT_ENOMEM, "%s needs %.3g GiB but this machine has %.3g GiB of memory%s",
                    what, bytes / gib, phys / gib, hint ? hint : "");
}
