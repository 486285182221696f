/* Private pieces of the rank module: the kernel-matrix operator that builds any block of
 * M = f(s * a(q_i, k_j)) on demand, its threaded products, LAPACK wrappers and helpers. */
#ifndef KAT_RANK_INTERNAL_H
#define KAT_RANK_INTERNAL_H

#include <stddef.h>
#include "kat/rank.h"

/* M (rows x cols) as a rule: M_ij = f(s * a(x_i, y_j)) with x_i the rows of `a`, y_j the rows
 * of `b`. The transpose is the same rule with a and b swapped (every form is symmetric). */
typedef struct {
    const kat_fn *f;         /* NULL: identity */
    kat_rank_form form;
    double s;
    const double *a, *b;     /* rows x d and cols x d, row-major */
    size_t lda, ldb;
    size_t rows, cols, d;
    double *an, *bn;         /* l2sq: squared row norms of a and b (owned by the op) */
    int transposed;          /* 1 when this is the transpose of the user's M (for messages) */
    size_t row0, col0;       /* where a's and b's first rows sit in the whole Q and K, when the
                                op is one block of a larger M (messages name M's entries) */
} rank_op;

/* Validate Q and K (structure, same d >= 1, BLAS int limits; finiteness when check_finite)
 * and the form/scale; `who` prefixes the error. */
kat_status kat__rank_check_inputs(const char *who, kat_rank_form form, double s, const kat_dmat *Q,
                             const kat_dmat *K, int check_finite);
/* Validate the options of a probe (method, tolerances, oversample, power_iters, tile_rows);
 * `who` prefixes the error. */
kat_status kat__rank_check_opts(const char *who, const kat_rank_opts *o);
/* Set up the rule for M = f(s * a(Q, K)) (computes the norms for l2sq). Q and K must already
 * be validated. */
kat_status kat__rank_op_init(rank_op *op, const kat_fn *f, kat_rank_form form, double s,
                        const kat_dmat *Q, const kat_dmat *K);
void kat__rank_op_free(rank_op *op);
/* The transpose rule (shares the norms: free only the original). */
rank_op kat__rank_op_transpose(const rank_op *op);

/* out[i*ldo + j] = M(i0 + i, j0 + j) for i < ni, j < nj (row-major block). KAT_EDOM, naming f,
 * the entry of the user's M and its argument, when f is not finite there. Single-threaded;
 * safe to call from several threads at once. */
kat_status kat__rank_op_block(const rank_op *op, size_t i0, size_t ni, size_t j0, size_t nj,
                         double *out, size_t ldo);

/* |M|_F^2 = scale^2 * ssq, scale a power of two at or above max |M_ij| (1 when M = 0), so
 * that entries near the overflow threshold neither overflow nor lose the small ones. */
typedef struct {
    double scale, ssq;
} rank_fro;

/* Y = M X, X cols x b and Y rows x b, both column-major (leading dimensions ldx, ldy): M is
 * built tile by tile (tile_rows rows x a column chunk), in parallel over row tiles, never
 * stored. If fro is not NULL it receives |M|_F^2 in scaled form, summed in a fixed order. */
kat_status kat__rank_op_apply(const rank_op *op, const double *X, size_t ldx, size_t b, double *Y,
                         size_t ldy, size_t tile_rows, rank_fro *fro);

/* The whole of M into a row-major rows x cols buffer (ld ldm), in parallel over row tiles. */
kat_status kat__rank_op_fill(const rank_op *op, double *M, size_t ldm, size_t tile_rows);

/* The matrix-free randomized rank on an operator (randomized.c). */
kat_status kat__rank_randomized_op(const rank_op *op, const kat_rank_opts *o, kat_rank_result *res);

/* What the matrix-free searches (randomized.c and the distributed one) share. The threshold
 * below which a singular value counts as beyond the rank: the numerical-rank tolerance, or
 * eps * sigma_1 when smaller. */
double kat__rank_search_threshold(double sigma1, size_t n, size_t m, const kat_rank_opts *o);
/* The Frobenius eps-rank of sv[0..k-1] against |M|_F^2 = fro (the energy outside the
 * values counts as the tail), or KAT_RANK_NONE when even k values do not reach it. */
size_t kat__rank_eps_frobenius_fro(const double *sv, size_t k, const rank_fro *fro, double eps);
/* Fill res from k singular values sv (descending; res takes ownership) of an n x m matrix with
 * |M|_F^2 = fro: rank, tolerance, stable and effective ranks, eps-ranks (as kat_rank_probe). */
void kat__rank_result_from_values(kat_rank_result *res, size_t n, size_t m, double *sv, size_t k,
                             const rank_fro *fro, const kat_rank_opts *o, int converged,
                             size_t passes);

/* Phi = phi(Q) (n x D) and Psi = psi(K) (m x D) for a feature map, allocated here (free with
 * kat_dmat_free); Q and K must already be validated and have d = the map's in_dim. */
kat_status kat__rank_featmap_features(const kat_featmap *fm, const kat_dmat *Q, const kat_dmat *K,
                                 kat_dmat *Phi, kat_dmat *Psi);
/* 1 when the memory spanned by two views intersects. */
int kat__rank_dmat_overlap(const kat_dmat *a, const kat_dmat *b);

/* Singular values (descending) of the column-major rows x cols matrix a (lda), which is
 * destroyed; sv receives min(rows, cols) values. KAT_ELAPACK when dgesdd does not converge. */
kat_status kat__rank_svd_values_inplace(size_t rows, size_t cols, double *a, size_t lda, double *sv);

/* Householder QR of the column-major rows x cols matrix a (lda), rows >= cols: on return a
 * holds the R factor in its upper triangle (and the reflectors below) when form_q is 0, or
 * the orthonormal Q factor when form_q is 1. tau has cols entries. Workspace through
 * kat_malloc. */
kat_status kat__rank_qr_inplace(size_t rows, size_t cols, double *a, size_t lda, double *tau,
                           int form_q);

/* Frobenius epsilon-rank with the energy beyond sv[k-1] given (tail_sq) and the total energy
 * (fro_sq) given, all in units of `unit` (a power of two, so that squares of huge or tiny
 * values neither overflow nor vanish: tail_sq and fro_sq are energies divided by unit^2):
 * the least r with sum_{i>=r} (sv[i]/unit)^2 + tail_sq <= eps^2 fro_sq, or KAT_RANK_NONE
 * when even r = k does not reach it. */
size_t kat__rank_eps_frobenius_tail(const double *sv, size_t k, double unit, double tail_sq,
                               double fro_sq, double eps);
/* The least power of two above x > 0, clamped to [2^-1022, 2^1023] (so that its reciprocal
 * is finite and x / it < 2); 1 for x = 0. */
double kat__rank_pow2_above(double x);
/* The numerical-rank tolerance of kat_rank_numerical for a given sigma_1. */
double kat__rank_tolerance(double sigma1, size_t rows, size_t cols, double rtol, double atol);
/* Number of sv[i] > tol (sv descending). */
size_t kat__rank_count_above(const double *sv, size_t k, double tol);

/* KAT_ENOMEM, naming `what`, its size and the machine's memory, when `bytes` is more than
 * this machine can hold; `hint` (may be "") is appended to the message. */
kat_status kat__rank_mem_check(double bytes, const char *what, const char *hint);

/* Compensated (Neumaier) accumulation, for sums whose order is fixed but long. */
typedef struct {
    double sum, c;
} rank_sum;
static inline void rank_sum_add(rank_sum *acc, double x)
{
    double t = acc->sum + x;
    if ((acc->sum >= 0 ? acc->sum : -acc->sum) >= (x >= 0 ? x : -x))
        acc->c += (acc->sum - t) + x;
    else
        acc->c += (x - t) + acc->sum;
    acc->sum = t;
}
static inline double rank_sum_value(const rank_sum *acc) { return acc->sum + acc->c; }

/* A scaled sum of squares: the running total is scale^2 * (sum + c) with a compensated sum;
 * scale 0 until a nonzero entry is seen. */
typedef struct {
    double scale;
    rank_sum ssq;
} rank_fro_acc;
/* Add the squares of an ni x nj row-major block (ld ldb) of finite entries. */
void kat__rank_fro_acc_add(rank_fro_acc *acc, const double *blk, size_t ni, size_t nj, size_t ldb);

/* The packed tile product (kernel_packed.c), which kat__rank_op_apply uses when the CPU has
 * AVX-512 and kat's kernels are the AVX-512 ones (kat_arch_get). Columns of M per chunk: */
enum { RANK_PACKED_KC = 256 };
int kat__rank_packed_available(void);
/* Doubles of X laid out in panels (m rows, b columns), and per-thread scratch of a tile. */
size_t kat__rank_packed_x_size(size_t m, size_t b);
size_t kat__rank_packed_scratch(size_t tile_rows, size_t b, size_t d);
/* Xp = X (m x b, column-major, ld ldx) in panels of 8 columns (zero-padded), row by row. */
void kat__rank_packed_x(const double *X, size_t ldx, size_t m, size_t b, double *Xp);
/* Y[i0 .. i0+ni-1, 0 .. b-1] = rows i0.. of M times X (Xp from kat__rank_packed_x with m =
 * op->cols), adding the rows' squares to fro when not NULL; scratch holds
 * kat__rank_packed_scratch(ni, b, d) doubles. */
void kat__rank_packed_tile(const rank_op *op, size_t i0, size_t ni, const double *Xp, size_t b,
                      double *Y, size_t ldy, double *scratch, rank_fro_acc *fro);


#endif
