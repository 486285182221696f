/* kat metric: metric transforms — which f make f(distance) a positive definite kernel or a
 * (squared) distance again, tested numerically, and the explicit embeddings that witness it.
 *
 * Background (Schoenberg 1935, 1938; Alman et al., arXiv 2011.11503): f(||x - y||) is positive
 * definite for every point set of l1 (or l2^2) when f is completely monotone (f >= 0 and
 * (-1)^k f^(k) >= 0), and f(||x - y||) is of negative type (embeds as a squared l2 distance, and
 * on hyperrectangle corners as an l1 distance) when f is a Bernstein function (f(0) = 0, f >= 0,
 * f' completely monotone). A matrix D of squared distances is Euclidean exactly when
 * -1/2 P D P (P = I - J/n) is positive semidefinite (classical MDS). */
#ifndef KAT_METRIC_H
#define KAT_METRIC_H

#include "kat/core.h"
#include "kat/fn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How two points are compared. INNER is not a distance: it gives <x, y>, so that f(INNER) is
 * the attention kernel f(QK^T) on one point set. */
typedef enum {
    KAT_METRIC_L1 = 0,   /* sum_t |x_t - y_t| */
    KAT_METRIC_L2,       /* sqrt(sum_t (x_t - y_t)^2) */
    KAT_METRIC_L2SQ,     /* sum_t (x_t - y_t)^2 */
    KAT_METRIC_INNER,    /* sum_t x_t y_t */
    KAT_METRIC_COUNT
} kat_metric;

/* "l1", "l2", "l2sq", "inner" -> the enum; KAT_EINVAL naming the text otherwise. */
KAT_API kat_status kat_metric_parse(const char *name, kat_metric *out);
/* The name of a metric ("l1", ...), or "unknown". */
KAT_API const char *kat_metric_name(kat_metric m);

/* D (n x n) = the pairwise distances (or inner products) of the rows of X (n x d). D must not
 * overlap X. Errors: KAT_EINVAL (NULL, shape, unknown metric), KAT_EDOM (non-finite X). */
KAT_API kat_status kat_metric_distances(const kat_dmat *X, kat_metric metric, kat_dmat *D);

/* K (n x n) = f applied entrywise to the distances: K_ij = f(dist(x_i, x_j)). KAT_EDOM naming
 * the entry when f is not finite there; K is then left untouched. */
KAT_API kat_status kat_metric_kernel(const kat_fn *f, const kat_dmat *X, kat_metric metric, kat_dmat *K);

/* The corners of the hyperrectangle with sides a as points: X (2^d x d), row b has x_t = a_t
 * when bit t of b is set and 0 otherwise (the order kat_group_* and kat_metric_embed use).
 * Errors: KAT_EINVAL (shape, side <= 0), KAT_EDOM (non-finite side), KAT_ERANGE (d too large). */
KAT_API kat_status kat_metric_corners(const double *a, size_t d, kat_dmat *X);

/* All eigenvalues of the symmetric matrix A (n x n), in descending order, into w[0..n-1]
 * (LAPACKE_dsyevd on a copy: A is untouched). A must be symmetric up to rounding:
 * |A_ij - A_ji| <= 16 eps max|A|, else KAT_EINVAL naming the entry. KAT_ELAPACK if dsyevd does
 * not converge. n = 0 is a no-op. */
KAT_API kat_status kat_metric_sym_eigenvalues(const kat_dmat *A, double *w);

/* Whether the symmetric A is positive definite by a Cholesky factorisation (LAPACKE_dpotrf on
 * a copy): *is_pd = 1 when it succeeds. Much faster than the spectrum, and exact in its
 * verdict up to rounding of the smallest eigenvalue. */
KAT_API kat_status kat_metric_cholesky_pd(const kat_dmat *A, int *is_pd);

/* Positive definiteness of f(distance) on a point set. */
typedef struct {
    size_t n;                 /* points */
    double min_eigenvalue;    /* smallest eigenvalue of K = f(D) */
    double max_eigenvalue;
    double tol;               /* n eps max|lambda|: eigenvalues within it count as zero */
    size_t n_positive;        /* eigenvalues > tol */
    size_t n_negative;        /* eigenvalues < -tol */
    int cholesky_pd;          /* dpotrf succeeded */
    int psd;                  /* n_negative == 0 */
} kat_metric_pd_report;

/* Build K = f(dist(X)), and report its extreme eigenvalues (dsyevd) and the Cholesky verdict.
 * w (may be NULL) receives all n eigenvalues in descending order. */
KAT_API kat_status kat_metric_pd_check(const kat_fn *f, const kat_dmat *X, kat_metric metric,
                                       kat_metric_pd_report *rep, double *w);

/* Schoenberg's test by classical MDS: the eigenvalues (descending) of B = -1/2 P D P with
 * P = I - J/n, taking the entries of the symmetric D (n x n) as squared distances. D is
 * Euclidean (D_ij = ||y_i - y_j||^2 for some points y) iff every eigenvalue is >= 0 (up to
 * rounding, n eps max|lambda|). D is untouched. */
KAT_API kat_status kat_metric_mds_spectrum(const kat_dmat *D, double *w);

/* Classical MDS coordinates: Y (n x k) = V_k sqrt(Lambda_k) from the k largest eigenpairs of
 * -1/2 P D P, so ||y_i - y_j||^2 reproduces D when D is Euclidean of dimension <= k.
 * KAT_EDOM when one of the k eigenvalues used is negative beyond rounding (D is not Euclidean
 * in k dimensions), naming it. Eigenvalues within rounding of 0 give zero coordinates. */
KAT_API kat_status kat_metric_mds_embed(const kat_dmat *D, size_t k, kat_dmat *Y);

/* ---- complete monotonicity and Bernstein functions, by finite differences -------------------- */

#define KAT_METRIC_MAX_ORDER 12

/* The grid x_i = x0 + i h (h = (x1 - x0)/(points - 1)) on which differences are taken, and
 * which differences: every order k <= max_order with steps h_1 <= ... <= h_k drawn from
 * {h, 2h, ..., max_step h} (mixed differences), whose stencil fits in the grid. */
typedef struct {
    double x0, x1;       /* 0 <= x0 < x1, finite */
    size_t points;       /* >= max_order + 1 */
    size_t max_order;    /* 1 .. KAT_METRIC_MAX_ORDER */
    size_t max_step;     /* >= 1 */
} kat_metric_grid;

/* [0, 8] with 161 points (h = 0.05), orders up to 8, steps h..4h: 3.3e5 differences. */
KAT_API kat_metric_grid kat_metric_grid_default(void);

/* The verdict of a difference test and, when it fails, where. */
typedef struct {
    int holds;                              /* no violation anywhere */
    size_t checked;                         /* differences (and values) examined */
    size_t violations;                      /* how many were negative beyond rounding */
    /* The reported violation: the lowest order that fails, and there the most negative
     * value relative to its tolerance. */
    const char *condition;                  /* which condition failed (static text) */
    size_t order;                           /* k (0: a value of f itself) */
    double x;                               /* grid point where the stencil starts */
    double steps[KAT_METRIC_MAX_ORDER];     /* h_1 .. h_k */
    double value;                           /* the signed difference that should be >= 0 */
    double tol;                             /* its rounding allowance */
} kat_metric_report;

/* Complete monotonicity on the grid: f >= 0 and (-1)^k Delta_{h_1} ... Delta_{h_k} f(x) >= 0
 * for every listed order and steps. A difference counts as negative only below
 * -2^k (k + 4) eps max|f| over its stencil (the rounding of 2^k values of f, each within a
 * few eps, and k levels of subtraction). A failed test is KAT_OK with rep->holds = 0.
 * Errors: KAT_EINVAL (NULL, bad grid), KAT_EDOM (f not finite at a grid point, named). */
KAT_API kat_status kat_metric_cm_check(const kat_fn *f, const kat_metric_grid *grid,
                                       kat_metric_report *rep);

/* Bernstein property on the grid: f(0) = 0 (the grid must start at x0 = 0; |f(0)| within
 * 4 eps max|f|), f >= 0, and completely alternating differences
 * (-1)^(k-1) Delta_{h_1} ... Delta_{h_k} f(x) >= 0 for k >= 1, with the same allowance. */
KAT_API kat_status kat_metric_bernstein_check(const kat_fn *f, const kat_metric_grid *grid,
                                              kat_metric_report *rep);

/* ---- explicit embeddings on hyperrectangle corners ------------------------------------------ */

/* With lambda_S the spectrum of D_f = [f(<a, b XOR c>)] (kat_group_hyperrect_spectrum):
 *  L1:   q_b(S) = (2 |lambda_S| / 2^d) [|S n b| odd], S != 0: 2^d - 1 coordinates with
 *        ||q_b - q_c||_1 = f(<a, b XOR c>). Needs f(0) = 0 and lambda_S <= 0 for S != 0
 *        (negative type; Bernstein f qualify, Thm 4.4 of arXiv 2011.11503).
 *  L2SQ: p_b(S) = sqrt(-lambda_S / 2^(d+1)) chi_S(b), S != 0: ||p_b - p_c||^2 =
 *        f(<a, b XOR c>), same condition.
 *  GRAM: F_b(S) = sqrt(lambda_S / 2^d) chi_S(b) for all 2^d sets S: F_b . F_c =
 *        f(<a, b XOR c>). Needs every lambda_S >= 0 (completely monotone f qualify).
 * Eigenvalues within kat_group_spectrum_tol of the required sign count as zero. */
typedef enum { KAT_EMBED_L1 = 0, KAT_EMBED_L2SQ, KAT_EMBED_GRAM, KAT_EMBED_COUNT } kat_embed_kind;

/* "l1", "l2sq", "gram" -> the enum (KAT_EINVAL naming the text otherwise). */
KAT_API kat_status kat_metric_embed_parse(const char *name, kat_embed_kind *out);

/* The shape of an embedding's matrix: 2^d rows and 2^d - 1 (L1, L2SQ) or 2^d (GRAM) columns.
 * KAT_ERANGE when 2^d or the matrix size does not fit (naming the size). */
KAT_API kat_status kat_metric_embed_shape(kat_embed_kind kind, size_t d, size_t *rows, size_t *cols);

/* Fill P (exactly the shape above; row b is corner b, column S-1 or S is the character S).
 * Errors: those of kat_group_hyperrect_spectrum; KAT_EINVAL (shape); KAT_EDOM when f does not
 * qualify, naming the condition, the set S and lambda_S (P is then untouched). */
KAT_API kat_status kat_metric_embed(kat_embed_kind kind, const kat_fn *f, const double *a, size_t d,
                                    kat_dmat *P);

#ifdef __cplusplus
}
#endif
#endif
