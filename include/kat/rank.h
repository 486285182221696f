/* kat rank: when is f(QK^T) low rank?
 *
 * Kernel matrices M = f(s * Q K^T), f(s * |q - k|_2^2) and f(s * |q - k|_1) (and M = Phi Psi^T
 * from a feature map), seeded point sets to build them from, their singular spectra (LAPACK
 * dgesdd), the usual rank measures (numerical, epsilon, stable, effective), the rank that
 * theory predicts for polynomial f, and a matrix-free randomized rank for sizes whose dense
 * matrix does not fit in memory. All in double precision; Q is n x d, K is m x d, M is n x m. */
#ifndef KAT_RANK_H
#define KAT_RANK_H

#include "kat/core.h"
#include "kat/featmap.h"
#include "kat/fn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* "No value": a predicted rank that theory does not give, an epsilon-rank not asked for. */
#define KAT_RANK_NONE ((size_t)-1)

/* The argument f is applied to: M_ij = f(s * a(q_i, k_j)). */
typedef enum {
    KAT_RANK_INNER = 0,   /* a = <q, k> */
    KAT_RANK_L2SQ,        /* a = |q - k|_2^2 */
    KAT_RANK_L1,          /* a = |q - k|_1 */
    KAT_RANK_FORM_COUNT
} kat_rank_form;

/* "inner", "l2sq", "l1" (NULL for an invalid value). */
KAT_API const char *kat_rank_form_name(kat_rank_form form);
/* Look a form up by name; KAT_EINVAL naming it when unknown. */
KAT_API kat_status kat_rank_form_parse(const char *name, kat_rank_form *out);

/* ---- point sets ---------------------------------------------------------------------- */

typedef enum {
    KAT_RANK_DIST_GAUSS = 0,   /* i.i.d. N(0, sigma^2) entries, sigma = 1/sqrt(d) by default */
    KAT_RANK_DIST_UNIFORM,     /* i.i.d. uniform on [-bound, bound] */
    KAT_RANK_DIST_SPHERE,      /* uniform on the unit sphere of R^d */
    KAT_RANK_DIST_HYPERCUBE,   /* corners of the cube: {0, 1}^d, or {-1, +1}^d with pm1 */
    KAT_RANK_DIST_RECT,        /* corners of a box: coordinate t is 0 or sides[t] */
    KAT_RANK_DIST_GRID,        /* integer grid {0, 1, ..., levels - 1}^d */
    KAT_RANK_DIST_COUNT
} kat_rank_dist;

/* "gauss", "uniform", "sphere", "hypercube", "rect", "grid" (NULL for an invalid value). */
KAT_API const char *kat_rank_dist_name(kat_rank_dist dist);
/* Look a distribution up by name; KAT_EINVAL naming it when unknown. */
KAT_API kat_status kat_rank_dist_parse(const char *name, kat_rank_dist *out);

/* How kat_rank_points draws. Start from kat_rank_points_opts_init and change what you need. */
typedef struct {
    kat_rank_dist dist;
    double sigma;          /* GAUSS: standard deviation; 0 means 1/sqrt(d) */
    double bound;          /* UNIFORM: half-width B > 0 (default 1) */
    int pm1;               /* HYPERCUBE: {-1, +1}^d instead of {0, 1}^d */
    const double *sides;   /* RECT: the d side lengths a_t (finite; not copied) */
    size_t nsides;         /* RECT: must equal d */
    size_t levels;         /* GRID: points per axis, >= 1 (default 3) */
    /* HYPERCUBE, RECT, GRID: rows are the first points of the set in lexicographic order
     * (coordinate 0 varies slowest) instead of independent random draws; the set must have
     * at least as many points as there are rows. The rng is not used. */
    int enumerate;
} kat_rank_points_opts;

/* Defaults: Gaussian with sigma = 1/sqrt(d), bound 1, levels 3, random draws. */
KAT_API void kat_rank_points_opts_init(kat_rank_points_opts *opts);

/* Fill the rows of X (n x d, any ld >= d) with points drawn from rng (kat_rng_create(seed)),
 * row by row, so the same seed gives the same points. Errors: KAT_EINVAL for NULL
 * arguments, d = 0, a bad parameter (sigma < 0, bound <= 0, levels = 0, nsides != d,
 * non-finite sides) or, with enumerate, more rows than the set has points; X is then
 * untouched. n = 0 is allowed. */
KAT_API kat_status kat_rank_points(const kat_rank_points_opts *opts, kat_rng *rng, kat_dmat *X);

/* ---- kernel matrices ----------------------------------------------------------------- */

/* M = f(s * a(q_i, k_j)) for the rows q_i of Q (n x d) and k_j of K (m x d); M is n x m. The
 * inner products come from cblas_dgemm (l2sq as |q|^2 + |k|^2 - 2<q, k>, clamped at 0; l1
 * directly), f is applied block by block with kat_fn_eval; f = NULL means the identity.
 * Threaded over row blocks (kat_num_threads), deterministic. Q, K and M may have any
 * ld >= cols; M must not overlap Q or K.
 * Errors: KAT_EINVAL (NULL, d = 0, K's d differs from Q's, M not n x m, overlap, bad form,
 * non-finite s), KAT_ERANGE (a stride product overflows), KAT_EDOM (NaN or Inf in Q or K,
 * naming the entry; or f not finite at some entry, naming f, the entry and its argument;
 * in that case M's content is unspecified, as with kat_fn_eval). n = 0 or m = 0 is allowed. */
KAT_API kat_status kat_rank_kernel_matrix(const kat_fn *f, kat_rank_form form, double s,
                                          const kat_dmat *Q, const kat_dmat *K, kat_dmat *M);

/* M_ij = phi(q_i) . psi(k_j) for a feature map (phi on the query side, psi on the key side),
 * through kat_featmap_apply and one dgemm, so a user's map runs through the same rank probe.
 * Errors as kat_rank_kernel_matrix, plus KAT_EINVAL when d differs from the map's in_dim and
 * whatever the map's apply reports. */
KAT_API kat_status kat_rank_featmap_matrix(const kat_featmap *fm, const kat_dmat *Q, const kat_dmat *K,
                                           kat_dmat *M);

/* ---- spectra and rank measures ------------------------------------------------------- */

/* The singular values of M (rows x cols), all min(rows, cols) of them, in descending order,
 * into sv[0 .. min-1] (nsv >= min(rows, cols)). LAPACK dgesdd without vectors on a copy: M
 * is untouched. Errors: KAT_EINVAL (NULL, nsv too small), KAT_ERANGE, KAT_EDOM (NaN or Inf
 * in M), KAT_ENOMEM (the copy needs more memory than there is), KAT_ELAPACK (no
 * convergence); sv is written only on success. An empty M has no singular values. */
KAT_API kat_status kat_rank_spectrum(const kat_dmat *M, double *sv, size_t nsv);

/* Numerical rank of a rows x cols matrix from its singular values sv[0..k-1] (descending,
 * non-negative, k <= min(rows, cols)): the number of sv[i] > tol, where
 *   tol = max(atol, rtol * sv[0]) when rtol > 0 or atol > 0, else
 *   tol = sv[0] * max(rows, cols) * DBL_EPSILON   (numpy.linalg.matrix_rank, MATLAB rank).
 * rtol = 0 and atol = 0 mean "not given". *tol (may be NULL) receives the tolerance used.
 * Errors: KAT_EINVAL (NULL, negative or non-finite rtol/atol, k > min(rows, cols), sv not
 * descending or negative), KAT_EDOM (non-finite sv). */
KAT_API kat_status kat_rank_numerical(const double *sv, size_t k, size_t rows, size_t cols, double rtol,
                                      double atol, size_t *rank, double *tol);

/* Epsilon-rank in the spectral norm: the least r with sv[r] <= eps * sv[0] (sv[k] = 0), i.e.
 * min over rank-r matrices of |M - M_r|_2 <= eps |M|_2 (Eckart-Young). eps >= 0. */
KAT_API kat_status kat_rank_eps_spectral(const double *sv, size_t k, double eps, size_t *rank);
/* Epsilon-rank in the Frobenius norm: the least r with sqrt(sum_{i >= r} sv[i]^2) <=
 * eps * |M|_F (tail sums accumulated from the smallest value up). eps >= 0. */
KAT_API kat_status kat_rank_eps_frobenius(const double *sv, size_t k, double eps, size_t *rank);
/* Stable rank |M|_F^2 / |M|_2^2 = sum sv^2 / sv[0]^2 (0 for the zero matrix). */
KAT_API kat_status kat_rank_stable(const double *sv, size_t k, double *out);
/* Effective rank exp(H(p)), p_i = sv[i] / sum sv, H the Shannon entropy (Roy and Vetterli
 * 2007); 0 for the zero matrix. */
KAT_API kat_status kat_rank_effective(const double *sv, size_t k, double *out);

/* ---- what theory predicts ------------------------------------------------------------ */

/* The binomial coefficient C(n, k), exact, saturating at SIZE_MAX when it does not fit. */
KAT_API size_t kat_rank_binomial(size_t n, size_t k);

/* The rank of f(s * a(q, k)) on an n x m matrix of generic inputs, when theory gives one
 * (else *out = KAT_RANK_NONE):
 *  - inner, f = sum_t a_t x^{i_t} a polynomial: min(n, m, sum over a_t != 0 of
 *    C(i_t + r - 1, r - 1)) where r = rank(Q K^T) (Guillot, Khare and Rajaratnam 2017,
 *    Theorem B: x^i of a rank-r matrix has rank C(i + r - 1, r - 1), the dimension of
 *    symmetric i-tensors on R^r, and generic inputs reach it);
 *  - l2sq, f a polynomial of degree p: min(n, m, C(p + r, r) + C(p + r - 1, r)) where r is
 *    the dimension of the affine hull of the points (d for generic points): the functions
 *    k -> f(|q - k|^2) span the polynomials of degree <= p plus |k|^{2(D-p)} times those of
 *    degree 2p - D for p < D <= 2p (derived in predict.c; the tests check it against the
 *    dense rank for d = 3, 5 and p = 1, 2, 3; p = 1 gives the classical d + 2);
 *  - l1, and every non-polynomial f: no prediction.
 * s = 0 makes M the constant f(0): rank 1, or 0 when f(0) = 0. "Generic" excludes special
 * point sets: on {0,1}^d, for instance, x^2 = x coordinate-wise and ranks are lower.
 * Binomials saturate, so a huge count just reads min(n, m). */
KAT_API kat_status kat_rank_predict(const kat_fn *f, kat_rank_form form, double s, size_t r, size_t n,
                                    size_t m, size_t *out);

/* rank(Q K^T) at the default tolerance, without forming the n x m product: QR of Q and K
 * (LAPACK dgeqrf), then the singular values of R_Q R_K^T, which are those of Q K^T. */
KAT_API kat_status kat_rank_inner_rank(const kat_dmat *Q, const kat_dmat *K, size_t *r);
/* Dimension of the affine hull of the rows of Q and K together: the numerical rank (default
 * tolerance) of the rows minus their mean. */
KAT_API kat_status kat_rank_affine_dim(const kat_dmat *Q, const kat_dmat *K, size_t *r);

/* ---- the rank probe ------------------------------------------------------------------ */

typedef enum {
    KAT_RANK_DENSE = 0,    /* build M, full spectrum with dgesdd: O(nm) memory, O(nm min) time */
    KAT_RANK_RANDOMIZED    /* matrix-free randomized range finder: O((n + m) k) memory */
} kat_rank_method;

/* What a probe computes. Start from kat_rank_opts_init and change what you need. */
typedef struct {
    kat_rank_form form;       /* default KAT_RANK_INNER */
    double scale;             /* s, default 1 */
    kat_rank_method method;   /* default KAT_RANK_DENSE */
    double rtol, atol;        /* numerical-rank tolerance, as kat_rank_numerical (0: unset) */
    double eps;               /* > 0: also the spectral and Frobenius epsilon-ranks */
    int predict;              /* compute predicted_rank (default 1; costs a QR of Q and K) */
    /* Randomized method. */
    uint64_t seed;            /* Gaussian test matrices (default 0) */
    size_t block;             /* columns of the first block, at least the predicted rank +
                                 oversample when theory gives one; each next one doubles
                                 (default 64) */
    size_t oversample;        /* a block with at least this many directions below the
                                 threshold ends the search (default 10) */
    int power_iters;          /* extra power iterations per block, 2 passes each (default 0:
                                 the Krylov reuse below already sharpens decaying spectra) */
    size_t max_rank;          /* stop after this many directions (0: min(n, m)); the rank is
                                 then a lower bound (result.converged = 0) */
    size_t tile_rows;         /* rows of M built at once per thread (default 512) */
} kat_rank_opts;

KAT_API void kat_rank_opts_init(kat_rank_opts *opts);

typedef struct {
    size_t n, m, d;
    kat_rank_method method;
    size_t rank;                 /* numerical rank: #{sigma_i > tol} */
    double tol;
    size_t eps_rank_spectral;    /* KAT_RANK_NONE unless opts.eps > 0 */
    size_t eps_rank_frobenius;
    double sigma_max;            /* |M|_2 */
    double fro_norm;             /* |M|_F, summed from the entries */
    double stable_rank;          /* |M|_F^2 / |M|_2^2 */
    double effective_rank;       /* exp(entropy) of the computed singular values */
    size_t predicted_rank;       /* kat_rank_predict, or KAT_RANK_NONE */
    size_t base_rank;            /* the r given to kat_rank_predict (KAT_RANK_NONE if unused) */
    size_t nsv;                  /* singular values computed: min(n, m) for dense; the
                                    captured ones for randomized */
    double *sv;                  /* descending; owned, freed by kat_rank_result_free */
    int converged;               /* randomized: 1 when the search ended on a saturated block
                                    or spanned the whole space; dense: 1 */
    size_t passes;               /* randomized: passes over M (each builds M tile by tile) */
} kat_rank_result;

KAT_API void kat_rank_result_free(kat_rank_result *res);   /* NULL ok; zeroes the struct */

/* Rank of M = f(s * a(Q, K)) (opts->form, opts->scale; f = NULL is the identity).
 * Dense: M is built in memory (n * m doubles; checked against the machine's memory first:
 * KAT_ENOMEM / KAT_ERANGE saying the size and suggesting the randomized method), then its
 * full spectrum. Randomized (kat_rank_randomized). The result's sv is allocated; free it
 * with kat_rank_result_free. On failure *res is untouched. */
KAT_API kat_status kat_rank_probe(const kat_fn *f, const kat_dmat *Q, const kat_dmat *K,
                                  const kat_rank_opts *opts, kat_rank_result *res);

/* The same for M = Phi Psi^T from a feature map (form and scale are ignored; the prediction
 * is KAT_RANK_NONE). */
KAT_API kat_status kat_rank_probe_featmap(const kat_featmap *fm, const kat_dmat *Q, const kat_dmat *K,
                                          const kat_rank_opts *opts, kat_rank_result *res);

/* The same for a matrix the caller already has (dense method only; no prediction). */
KAT_API kat_status kat_rank_probe_matrix(const kat_dmat *M, const kat_rank_opts *opts,
                                         kat_rank_result *res);

/* Matrix-free randomized rank (Halko, Martinsson and Tropp 2011, the adaptive range finder,
 * in the blocked QB form of Yu, Gu and Li 2018): M is never stored; each pass builds it tile
 * by tile (tile_rows rows x 1024-column chunks: GEMM, then f) in parallel over row tiles.
 * Block j (b_j = block * 2^j columns) takes a test matrix Omega whose first half is the last
 * block's M^T Q (orthonormalised; a Krylov step) and whose rest is Gaussian, forms
 * Y = M Omega (plus power_iters power iterations), orthonormalises it against the basis so
 * far, and computes B_j = Y^T M: two passes per block. The singular values of
 * B = [B_1; ...] estimate the leading ones of M from below. The search stops when a block
 * has at least `oversample` directions at or below the threshold (the tolerance of
 * kat_rank_numerical, and eps * sigma_1 with eps > 0; for the Frobenius eps-rank, also when
 * the energy left outside the basis is within eps |M|_F), or the basis spans min(n, m) or
 * max_rank. The Frobenius norm is exact (summed in the first pass), so the Frobenius
 * eps-rank uses the true residual energy. The numerical rank drives the search: for an
 * eps-rank alone, set rtol = eps too, or the search goes on down to the default tolerance.
 * Deterministic for a seed: a fixed tile partition and each tile's sums in a fixed order,
 * so the bits do not depend on kat's thread count (the small products outside the tiles run
 * in OpenBLAS on one thread, whatever OpenBLAS's own setting). Memory: about (2n + 3m) k
 * doubles for k directions, checked against the machine's memory before each block. */
KAT_API kat_status kat_rank_randomized(const kat_fn *f, const kat_dmat *Q, const kat_dmat *K,
                                       const kat_rank_opts *opts, kat_rank_result *res);

#ifdef __cplusplus
}
#endif
#endif
