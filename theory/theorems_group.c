/* Registry checks on groups: hyperrectangle corners (Z_2^d), the hypercube, and Z_N. */
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/internal.h"
#include "theorems_internal.h"

/* The sides a_t ~ U[0.5, 1.5] shared by the hyperrectangle entries ("same a"). */
enum { SIDES_SEED = 2011 };

static int cmp_desc(const void *pa, const void *pb)
{
    double x = *(const double *)pa, y = *(const double *)pb;
    return x > y ? -1 : x < y;
}

static double max_abs(const double *v, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(v[i]));
    return m;
}

/* Eigenvalues above / below the rounding allowance of the WHT. */
static void count_signs(const double *lam, const double *g, size_t d, size_t *pos, size_t *neg)
{
    double tol = kat_group_spectrum_tol(g, d);
    size_t n = (size_t)1 << d;
    *pos = *neg = 0;
    for (size_t S = 0; S < n; S++) {
        *pos += lam[S] > tol;
        *neg += lam[S] < -tol;
    }
}

/* g and lambda of f on the hyperrectangle (2 x 2^d values in buf). */
static kat_status spectrum_of(const char *expr, const double *a, size_t d, double *g,
                              double *lam, kat_fn **fout)
{
    kat_fn *f = NULL;
    kat_status st = kat__thm_fn(expr, &f);
    if (!st)
        st = kat_group_hyperrect_values(f, a, d, g);
    if (!st)
        st = kat_group_hyperrect_spectrum(f, a, d, lam);
    if (fout && !st)
        *fout = f;
    else
        kat_fn_destroy(f);
    return st;
}

/* ---- Lemma B.1 ------------------------------------------------------------------------------- */

static const char *const lemma_b1_fns[] = {"x",        "x^2",          "x^3",     "exp(-x)",
                                           "exp(x)",   "max(x-1.3,0)", "sqrt(x)", "log1p(x)"};

kat_status kat__thm_check_hadamard(kat_theorem_result *res, int quick)
{
    size_t d = quick ? 7 : 10, n = (size_t)1 << d;
    double a[10];
    kat_status st = kat__thm_random_sides(SIDES_SEED, d, 0.5, 1.5, a);
    if (st)
        return st;
    kat_dmat D = {0}, H = {0}, HD = {0};
    double *buf = kat__alloc_array(n, 3 * sizeof(double), "spectra");
    if (!buf)
        return KAT_ENOMEM;
    double *g = buf, *lam = buf + n, *w = buf + 2 * n;
    if ((st = kat_dmat_alloc(n, n, &D)) || (st = kat_dmat_alloc(n, n, &H)) ||
        (st = kat_dmat_alloc(n, n, &HD)))
        goto done;
    for (size_t S = 0; S < n; S++)   /* the Sylvester-Hadamard matrix H_d, entries chi_S(b) */
        for (size_t b = 0; b < n; b++)
            H.data[S * n + b] = __builtin_parityll(S & b) ? -1.0 : 1.0;
    kat__thm_note(res, "d = %zu, sides a_t ~ U[0.5, 1.5] (seed %d);", d, SIDES_SEED);
    kat__thm_note(res, "H D H is formed by two dgemm; its off-diagonal, scaled by n sum|g| (every "
                  "entry of |H||D||H|), is bounded by n eps.");
    for (size_t i = 0; i < sizeof lemma_b1_fns / sizeof lemma_b1_fns[0]; i++) {
        kat_fn *f = NULL;
        if ((st = spectrum_of(lemma_b1_fns[i], a, d, g, lam, &f)))
            goto done;
        st = kat_group_hyperrect_matrix(f, a, d, &D);
        kat_fn_destroy(f);
        if (st || (st = kat_metric_sym_eigenvalues(&D, w)))
            goto done;
        qsort(lam, n, sizeof *lam, cmp_desc);
        double diff = 0.0;
        for (size_t k = 0; k < n; k++)
            diff = fmax(diff, fabs(lam[k] - w[k]));
        kat__thm_value(res, KAT_THEOREM_LE, diff / max_abs(w, n), 1e-13, 0.0,
                  "f = %s: max |WHT - dsyevd| / max|lambda|", lemma_b1_fns[i]);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0,
                    H.data, (int)n, D.data, (int)n, 0.0, HD.data, (int)n);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0,
                    HD.data, (int)n, H.data, (int)n, 0.0, D.data, (int)n);
        double off = 0.0, gsum = 0.0;
        for (size_t S = 0; S < n; S++)
            for (size_t T = 0; T < n; T++)
                if (S != T)
                    off = fmax(off, fabs(D.data[S * n + T]));
        for (size_t T = 0; T < n; T++)
            gsum += fabs(g[T]);
        kat__thm_value(res, KAT_THEOREM_LE, off / ((double)n * gsum), (double)n * DBL_EPSILON, 0.0,
                  "f = %s: max |offdiag(H D H)| / (n sum|g|)", lemma_b1_fns[i]);
    }
done:
    kat_dmat_free(&D);
    kat_dmat_free(&H);
    kat_dmat_free(&HD);
    kat_free(buf);
    return st;
}

/* ---- ranks on the hyperrectangle ---------------------------------------------------------- */

kat_status kat__thm_check_hyperrect_ranks(kat_theorem_result *res, int quick)
{
    static const struct {
        const char *expr;
        int degree;          /* polynomial degree, or -1: full rank */
        double stated;       /* the rank stated at d = 10 */
    } cases[] = {{"x", 1, 11},           {"x^2", 2, 56},           {"x^3", 3, 176},
                 {"(1+x)^4", 4, 386},    {"exp(-x)", -1, 1024},    {"exp(x)", -1, 1024},
                 {"max(x-1.3,0)", -1, 1024}, {"sqrt(x)", -1, 1024}, {"log1p(x)", -1, 1024}};
    size_t d = quick ? 7 : 10, n = (size_t)1 << d;
    double a[10];
    kat_status st = kat__thm_random_sides(SIDES_SEED, d, 0.5, 1.5, a);
    if (st)
        return st;
    double *buf = kat__alloc_array(n, 2 * sizeof(double), "spectra");
    kat_dmat D = {0};
    if (!buf)
        return KAT_ENOMEM;
    if ((st = kat_dmat_alloc(n, n, &D)))
        goto done;
    kat__thm_note(res, "d = %zu, the sides of hadamard-eigenvectors; tolerance sigma_1 n eps for "
                  "both counts.%s",
             d, quick ? " Quick run: expected values from sum_{j<=p} C(d, j)." : "");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double *g = buf, *lam = buf + n;
        kat_fn *f = NULL;
        if ((st = spectrum_of(cases[i].expr, a, d, g, lam, &f)))
            goto done;
        double top = max_abs(lam, n), tol = top * (double)n * DBL_EPSILON;
        size_t wht_rank = 0, svd_rank = 0;
        for (size_t S = 0; S < n; S++)
            wht_rank += fabs(lam[S]) > tol;
        st = kat_group_hyperrect_matrix(f, a, d, &D);
        kat_fn_destroy(f);
        if (st || (st = kat__thm_dense_rank(&D, &svd_rank, NULL)))
            goto done;
        double expect = cases[i].stated;
        if (quick) {
            expect = 0;
            for (int j = 0; j <= (cases[i].degree < 0 ? (int)d : cases[i].degree); j++)
                expect += kat__thm_binomial((unsigned)d, (unsigned)j);
        }
        kat__thm_value(res, KAT_THEOREM_EQ, (double)wht_rank, expect, 0.0, "f = %s: rank (WHT)",
                  cases[i].expr);
        kat__thm_value(res, KAT_THEOREM_EQ, (double)svd_rank, expect, 0.0, "f = %s: rank (dense SVD)",
                  cases[i].expr);
    }
done:
    kat_dmat_free(&D);
    kat_free(buf);
    return st;
}

/* ---- Lemma C.13 --------------------------------------------------------------------------- */

kat_status kat__thm_check_discontinuity(kat_theorem_result *res, int quick)
{
    (void)quick;
    size_t n = 64;
    kat_dmat M = {0}, F = {0};
    kat_fn *f = NULL;
    double *w = kat__alloc_array(n, sizeof(double), "eigenvalues");
    kat_status st = w ? kat_fn_builtin("indicator", &f) : KAT_ENOMEM;
    if (!st && !(st = kat_dmat_alloc(n, n, &M)))
        st = kat_dmat_alloc(n, n, &F);
    if (st)
        goto done;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            M.data[i * n + j] = ((double)i - (double)j) / (double)n;
    size_t rank_m = 0, rank_f = 0;
    if ((st = kat__thm_dense_rank(&M, &rank_m, NULL)))
        goto done;
    if ((st = kat_fn_eval(f, M.data, F.data, n * n)))
        goto done;
    size_t mismatch = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            mismatch += F.data[i * n + j] != (i == j ? 0.0 : 1.0);
    if ((st = kat__thm_dense_rank(&F, &rank_f, NULL)) || (st = kat_metric_sym_eigenvalues(&F, w)))
        goto done;
    /* dsyevd is backward stable: eigenvalues within n eps ||F||_2 = n eps 63. */
    double tol = (double)n * DBL_EPSILON * (double)(n - 1);
    size_t minus_one = 0;
    for (size_t i = 0; i < n; i++)
        minus_one += fabs(w[i] + 1.0) <= tol;
    kat__thm_value(res, KAT_THEOREM_EQ, (double)rank_m, 2, 0, "rank of M = (i - j)/n (dense SVD)");
    kat__thm_value(res, KAT_THEOREM_EQ, (double)mismatch, 0, 0, "entries where f(M) != J - I");
    kat__thm_value(res, KAT_THEOREM_EQ, w[0], 63, tol, "largest eigenvalue of f(M)");
    kat__thm_value(res, KAT_THEOREM_EQ, (double)minus_one, 63, 0, "eigenvalues equal to -1");
    kat__thm_value(res, KAT_THEOREM_EQ, (double)rank_f, 64, 0, "rank of f(M) (dense SVD)");
    kat__thm_note(res, "n = 64, f = 1[x != 0]; eigenvalue matches within n eps ||f(M)||.");
done:
    kat_fn_destroy(f);
    kat_dmat_free(&M);
    kat_dmat_free(&F);
    kat_free(w);
    return st;
}

/* ---- the Laplace kernel's closed form ------------------------------------------------------ */

kat_status kat__thm_check_laplace(kat_theorem_result *res, int quick)
{
    size_t d = quick ? 7 : 10, n = (size_t)1 << d, pos, neg;
    double a[10];
    kat_status st = kat__thm_random_sides(SIDES_SEED, d, 0.5, 1.5, a);
    double *buf = st ? NULL : kat__alloc_array(n, 2 * sizeof(double), "spectra");
    if (st || !buf)
        return st ? st : KAT_ENOMEM;
    double *g = buf, *lam = buf + n;
    if ((st = spectrum_of("exp(-x)", a, d, g, lam, NULL)))
        goto done;
    double err = 0.0, top = max_abs(lam, n);
    for (size_t S = 0; S < n; S++) {
        double p = 1.0;
        for (size_t t = 0; t < d; t++)
            p *= (S >> t & 1) ? -expm1(-a[t]) : 1.0 + exp(-a[t]);
        err = fmax(err, fabs(lam[S] - p));
    }
    count_signs(lam, g, d, &pos, &neg);
    kat__thm_value(res, KAT_THEOREM_LE, err / top, 1e-13, 0,
              "exp(-x): max |lambda_S - product formula| / max lambda");
    kat__thm_value(res, KAT_THEOREM_EQ, (double)pos, (double)n, 0, "exp(-x): positive eigenvalues");
    if ((st = spectrum_of("exp(x)", a, d, g, lam, NULL)))
        goto done;
    count_signs(lam, g, d, &pos, &neg);
    kat__thm_value(res, KAT_THEOREM_EQ, (double)pos, (double)n / 2, 0, "exp(x): positive eigenvalues");
    kat__thm_value(res, KAT_THEOREM_EQ, (double)neg, (double)n / 2, 0, "exp(x): negative eigenvalues");
    kat__thm_note(res, "d = %zu, the sides of hadamard-eigenvectors; signs beyond the WHT's rounding "
                  "allowance (d + 1) eps sum|g|.",
             d);
done:
    kat_free(buf);
    return st;
}

/* ---- Theorem 4.4 ----------------------------------------------------------------------------- */

kat_status kat__thm_check_bernstein(kat_theorem_result *res, int quick)
{
    static const char *const fns[] = {"sqrt(x)", "log1p(x)", "1-exp(-x)", "x/(1+x)", "x^0.3"};
    size_t d = quick ? 7 : 10, n = (size_t)1 << d, pos, neg;
    double a[10];
    kat_status st = kat__thm_random_sides(SIDES_SEED, d, 0.5, 1.5, a);
    if (st)
        return st;
    double *buf = kat__alloc_array(n, 2 * sizeof(double), "spectra");
    kat_dmat P = {0};
    kat_rng *rng = NULL;
    if (!buf)
        return KAT_ENOMEM;
    size_t rows, cols;
    if ((st = kat_metric_embed_shape(KAT_EMBED_L1, d, &rows, &cols)) ||
        (st = kat_dmat_alloc(rows, cols, &P)) || (st = kat_rng_create(44, &rng)))
        goto done;
    double *g = buf, *lam = buf + n;
    kat_metric_grid grid = kat_metric_grid_default();
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        kat_fn *f = NULL;
        if ((st = spectrum_of(fns[i], a, d, g, lam, &f)))
            goto done;
        count_signs(lam, g, d, &pos, &neg);
        kat_metric_report rep;
        st = kat_metric_bernstein_check(f, &grid, &rep);
        if (!st)
            st = kat_metric_embed(KAT_EMBED_L1, f, a, d, &P);
        /* The embedding on 4096 random pairs of corners plus every pair (0, c). */
        double err = 0.0, fmax_ = max_abs(g, n);
        for (size_t p = 0; !st && p < 4096 + n; p++) {
            size_t b = p < n ? 0 : (size_t)kat_rng_uint(rng, n);
            size_t c = p < n ? p : (size_t)kat_rng_uint(rng, n);
            double l1 = 0.0;
            for (size_t j = 0; j < cols; j++)
                l1 += fabs(P.data[b * cols + j] - P.data[c * cols + j]);
            err = fmax(err, fabs(l1 - g[b ^ c]));
        }
        kat_fn_destroy(f);
        if (st)
            goto done;
        kat__thm_value(res, KAT_THEOREM_EQ, (double)pos, 1, 0, "f = %s: positive eigenvalues", fns[i]);
        kat__thm_value(res, KAT_THEOREM_EQ, (double)neg, (double)n - 1, 0,
                  "f = %s: negative eigenvalues", fns[i]);
        kat__thm_value(res, KAT_THEOREM_EQ, rep.holds, 1, 0,
                  "f = %s: finite-difference Bernstein test passes", fns[i]);
        kat__thm_value(res, KAT_THEOREM_LE, err / fmax_, 1e-12, 0,
                  "f = %s: max | ||q_b - q_c||_1 - f | / max f", fns[i]);
    }
    kat__thm_value(res, KAT_THEOREM_EQ, (double)cols, (double)n - 1, 0,
              "coordinates of the l1 embedding (2^d - 1)");
    kat__thm_note(res, "d = %zu, the sides of hadamard-eigenvectors; Bernstein test on [0, 8], "
                  "h = 0.05, orders <= 8, steps h..4h.",
             d);
done:
    kat_rng_destroy(rng);
    kat_dmat_free(&P);
    kat_free(buf);
    return st;
}

/* ---- the Krawtchouk form ------------------------------------------------------------------ */

kat_status kat__thm_check_krawtchouk(kat_theorem_result *res, int quick)
{
    size_t d = quick ? 7 : 10, n = (size_t)1 << d;
    double ones[10], lj[11], mult[11];
    for (size_t t = 0; t < d; t++)
        ones[t] = 1.0;
    double *buf = kat__alloc_array(n, 2 * sizeof(double), "spectra");
    if (!buf)
        return KAT_ENOMEM;
    double *g = buf, *lam = buf + n;
    kat_fn *f = NULL;
    kat_status st = spectrum_of("sqrt(x)", ones, d, g, lam, &f);
    if (!st)
        st = kat_group_hypercube_spectrum(f, d, lj, mult);
    kat_fn_destroy(f);
    if (st)
        goto done;
    double err = 0.0, tol = 2.0 * kat_group_spectrum_tol(g, d);
    for (size_t S = 0; S < n; S++)
        err = fmax(err, fabs(lam[S] - lj[__builtin_popcountll(S)]));
    kat__thm_value(res, KAT_THEOREM_LE, err / max_abs(lam, n), 1e-12, 0,
              "max |lambda_S (WHT) - lambda_|S| (Krawtchouk)| / max|lambda|");
    for (size_t j = 0; j <= d; j++) {
        /* The multiplicity as observed in the WHT spectrum: how many lambda_S equal lambda_j. */
        size_t count = 0;
        for (size_t S = 0; S < n; S++)
            count += fabs(lam[S] - lj[j]) <= tol;
        kat__thm_value(res, KAT_THEOREM_EQ, (double)count, kat__thm_binomial((unsigned)d, (unsigned)j), 0,
                  "j = %zu: WHT eigenvalues equal to lambda_j", j);
    }
    size_t wrong = 0;
    for (size_t j = 0; j <= d; j++)
        wrong += mult[j] != kat__thm_binomial((unsigned)d, (unsigned)j);
    kat__thm_value(res, KAT_THEOREM_EQ, (double)wrong, 0, 0,
              "levels whose reported multiplicity differs from C(d, j)");
    kat__thm_note(res, "hypercube d = %zu, f = sqrt(x).", d);
done:
    kat_free(buf);
    return st;
}

/* ---- stable rank of exp(s x) --------------------------------------------------------------- */

kat_status kat__thm_check_stable_rank(kat_theorem_result *res, int quick)
{
    static const double svals[] = {0.5, 1.0, 2.0, 4.0};
    static const double stated[] = {1.7906, 6.9276, 96.9709, 714.6746};
    size_t d = quick ? 6 : 10, n = (size_t)1 << d;
    double ones[10];
    for (size_t t = 0; t < d; t++)
        ones[t] = 1.0;
    double *buf = kat__alloc_array(n, 2 * sizeof(double), "spectra");
    kat_dmat D = {0};
    if (!buf)
        return KAT_ENOMEM;
    kat_status st = kat_dmat_alloc(n, n, &D);
    for (size_t i = 0; !st && i < 4; i++) {
        char expr[64];
        snprintf(expr, sizeof expr, "exp(%.17g*x)", svals[i]);
        double *g = buf, *lam = buf + n, s = svals[i];
        kat_fn *f = NULL;
        if ((st = spectrum_of(expr, ones, d, g, lam, &f)))
            break;
        st = kat_group_hyperrect_matrix(f, ones, d, &D);
        kat_fn_destroy(f);
        double svd_stable = 0.0;
        if (st || (st = kat__thm_dense_rank(&D, NULL, &svd_stable)))
            break;
        double sum2 = 0.0, top = max_abs(lam, n);
        for (size_t S = 0; S < n; S++)
            sum2 += lam[S] * lam[S];
        double wht_stable = sum2 / (top * top);
        double closed = pow(2.0 * (1.0 + exp(2.0 * s)) / ((1.0 + exp(s)) * (1.0 + exp(s))),
                            (double)d);
        /* Stated to 4 decimals: half a unit of the last digit. Quick runs (another d) compare
         * with the closed form, to the rounding of an n-term sum. */
        double expect = quick ? closed : stated[i];
        double tol = quick ? 1e-12 * closed : 5e-5;
        kat__thm_value(res, KAT_THEOREM_EQ, wht_stable, expect, tol, "s = %g: stable rank (WHT)", s);
        kat__thm_value(res, KAT_THEOREM_EQ, svd_stable, expect, quick ? 1e-10 * closed : tol,
                  "s = %g: stable rank (dense SVD)", s);
        if (!quick)
            kat__thm_value(res, KAT_THEOREM_EQ, closed, expect, tol,
                      "s = %g: closed form [2(1+e^{2s})/(1+e^s)^2]^d", s);
    }
    kat__thm_note(res, "hypercube d = %zu, D_f = [exp(s |b xor c|)].", d);
    kat_dmat_free(&D);
    kat_free(buf);
    return st;
}

/* ---- Bochner on Z_64 ----------------------------------------------------------------------- */

kat_status kat__thm_check_bochner(kat_theorem_result *res, int quick)
{
    (void)quick;
    static const struct {
        const char *expr;
        double stated_min, tol;   /* the stated smallest eigenvalue, half a unit of its digits */
    } laplace[] = {{"exp(-x/2)", 0.2449, 5e-5},
                   {"exp(-x/4)", 0.1243, 5e-5},
                   {"exp(-x/8)", 0.06128, 5e-6},
                   {"exp(-x/16)", 0.02701, 5e-6}};
    size_t N = 64;
    double *buf = kat__alloc_array(N, 3 * sizeof(double), "cyclic spectra");
    kat_dmat C = {0};
    if (!buf)
        return KAT_ENOMEM;
    double *lam = buf, *w = buf + N, *sorted = buf + 2 * N, dense_err = 0.0;
    kat_status st = kat_dmat_alloc(N, N, &C);
    const char *all[] = {laplace[0].expr, laplace[1].expr, laplace[2].expr, laplace[3].expr,
                         "exp(-x^2/256)", "sqrt(x)"};
    for (size_t i = 0; !st && i < 6; i++) {
        kat_fn *f = NULL;
        if ((st = kat__thm_fn(all[i], &f)))
            break;
        st = kat_group_cyclic_spectrum(f, N, lam);
        /* The same matrix, dense, through dsyevd. */
        for (size_t r = 0; !st && r < N; r++)
            for (size_t c = 0; c < N; c++) {
                size_t k = (c + N - r) % N;
                C.data[r * N + c] = kat_fn_eval1(f, (double)(k <= N - k ? k : N - k));
            }
        kat_fn_destroy(f);
        if (st || (st = kat_metric_sym_eigenvalues(&C, w)))
            break;
        memcpy(sorted, lam, N * sizeof(double));
        qsort(sorted, N, sizeof(double), cmp_desc);
        for (size_t k = 0; k < N; k++)
            dense_err = fmax(dense_err, fabs(sorted[k] - w[k]) / max_abs(w, N));
        size_t argmin = 0, positive = 0;
        double maxnz = -INFINITY;
        for (size_t m = 0; m < N; m++) {
            argmin = lam[m] < lam[argmin] ? m : argmin;
            positive += lam[m] > 0.0;
            if (m)
                maxnz = fmax(maxnz, lam[m]);
        }
        if (i < 4) {
            kat__thm_value(res, KAT_THEOREM_EQ, lam[argmin], laplace[i].stated_min, laplace[i].tol,
                      "%s: smallest eigenvalue", all[i]);
            kat__thm_value(res, KAT_THEOREM_EQ, (double)positive, (double)N, 0,
                      "%s: positive eigenvalues", all[i]);
        } else if (i == 4) {
            kat__thm_value(res, KAT_THEOREM_EQ, lam[argmin], -0.04441, 5e-6,
                      "%s: smallest eigenvalue", all[i]);
            kat__thm_value(res, KAT_THEOREM_EQ, (double)(argmin <= N - argmin ? argmin : N - argmin), 4,
                      0, "%s: its frequency (m or N - m)", all[i]);
        } else {
            kat__thm_value(res, KAT_THEOREM_LE, maxnz, -0.716, 0,
                      "%s: largest nonzero-frequency eigenvalue", all[i]);
        }
    }
    if (!st)
        kat__thm_value(res, KAT_THEOREM_LE, dense_err, 1e-13, 0,
                  "all six: max |FFT - dsyevd| / max|lambda|");
    kat__thm_note(res, "N = 64, f applied to the cyclic distance; stated values to half a unit of "
                  "their last digit.");
    kat_dmat_free(&C);
    kat_free(buf);
    return st;
}
