/* The theorem registry: one table of entries, each with its statement, source and check. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "core/internal.h"
#include "theorems_internal.h"

#define MCLRR "Alman, Chu, Miller, Narayanan, Sellke, Song, \"Metric Transforms and Low Rank " \
              "Representations of Kernels for Fast Attention\", NeurIPS 2024, arXiv 2011.11503"

typedef struct {
    kat_theorem_info info;
    thm_check_fn check;
} thm_entry;

static const thm_entry registry[] = {
    {{"hadamard-eigenvectors", "Walsh characters diagonalise f(<a, b xor c>)",
      "On the 2^d corners of a hyperrectangle with sides a, D_f = [f(<a, b xor c>)] has the "
      "Walsh characters as eigenvectors: its spectrum is the Walsh-Hadamard transform of its "
      "first row. Checked for d = 10, a_t ~ U[0.5, 1.5], f in {x, x^2, x^3, exp(-x), exp(x), "
      "relu(x-1.3), sqrt(x), log1p(x)}: the WHT spectrum equals the dense dsyevd spectrum to "
      "1e-13 relative, and H D_f H is diagonal.",
      MCLRR ", Lemma B.1 (the paper writes H_n for H_d)",
      "kat_group_hyperrect_spectrum, kat_group_hyperrect_matrix, kat_metric_sym_eigenvalues",
      "tests/test_theorems.c (every entry), tests/test_group.c test_hyperrect_spectrum_dense"},
     kat__thm_check_hadamard},
    {{"hyperrect-ranks", "Ranks of f(<a, b xor c>) on the hyperrectangle",
      "Same a (d = 10): rank D_f = sum_{j<=p} C(10, j) for a polynomial of degree p: x -> 11, "
      "x^2 -> 56, x^3 -> 176, (1+x)^4 -> 386; and full rank 1024 for exp(-x), exp(x), "
      "relu(x-1.3), sqrt(x), log1p(x). Counted from the WHT spectrum and by dense SVD, both at "
      "the numpy tolerance sigma_1 n eps.",
      MCLRR ", witness of Theorem 2.5 / Theorem C.11",
      "kat_group_hyperrect_spectrum, kat_rank_spectrum, kat_rank_numerical",
      "tests/test_theorems.c"},
     kat__thm_check_hyperrect_ranks},
    {{"generic-ranks", "Ranks of polynomial kernels on generic inputs (GKR)",
      "For Q, K with N(0, 1/d) entries, rank f(QK^T) = min(n, sum_t C(i_t + r - 1, r - 1)) "
      "for f = sum_t a_t x^{i_t}, r = rank(QK^T) = d: n = 400, d = 6: x^2 -> 21, x^3 -> 56, "
      "(1+x)^3 -> 84, x^4+x -> 132, exp -> 400; n = 1024, d = 11: x^4 -> 1001, (1+x)^3 -> "
      "364, (1+x)^4 -> 1024. The measured rank and the predicted rank both match.",
      "Guillot, Khare, Rajaratnam, \"Preserving positivity for rank-constrained matrices\", "
      "Trans. AMS 2017, arXiv 1406.0042, Theorem B",
      "kat_rank_points, kat_rank_probe, kat_rank_predict", "tests/test_theorems.c"},
     kat__thm_check_generic_ranks},
    {{"discontinuity", "A discontinuous f destroys low rank",
      "M_ij = (i - j)/n, n = 64, has rank 2, while f(M) for f = 1[x != 0] is J - I, with "
      "eigenvalue 63 once and -1 63 times (full rank).",
      MCLRR ", Lemma C.13", "kat_rank_spectrum, kat_rank_numerical, kat_metric_sym_eigenvalues",
      "tests/test_theorems.c"},
     kat__thm_check_discontinuity},
    {{"laplace-closed-form", "The Laplace kernel's spectrum factorises",
      "d = 10, a_t ~ U[0.5, 1.5]: for f = exp(-x), lambda_S = prod_{t not in S}(1 + e^{-a_t}) "
      "prod_{t in S}(1 - e^{-a_t}) to 1e-13 (relative to the largest eigenvalue), all "
      "positive; for f = exp(x), exactly 512 positive and 512 negative eigenvalues.",
      MCLRR ", Section 4 (completely monotone f of l1 distances)",
      "kat_group_hyperrect_spectrum", "tests/test_theorems.c, tests/test_group.c "
      "test_laplace_closed_form"},
     kat__thm_check_laplace},
    {{"bernstein-negative-type", "Bernstein functions give negative-type matrices",
      "d = 10, a_t ~ U[0.5, 1.5], f in {sqrt(x), log1p(x), 1-exp(-x), x/(1+x), x^0.3}: D_f has "
      "exactly one positive eigenvalue and 1023 negative ones; f passes the finite-difference "
      "Bernstein test; the explicit l1 embedding (2^d - 1 = 1023 coordinates, not 2d) "
      "reproduces f(<a, b xor c>) to 1e-12.",
      MCLRR ", Theorem 4.4 (the paper states 2d coordinates; 2^d - 1 are needed)",
      "kat_group_hyperrect_spectrum, kat_metric_bernstein_check, kat_metric_embed",
      "tests/test_theorems.c, tests/test_metric.c test_embeddings"},
     kat__thm_check_bernstein},
    {{"krawtchouk-form", "The hypercube spectrum through Krawtchouk polynomials",
      "Hypercube {0,1}^10, f = sqrt(x): the eigenvalue of chi_S is lambda_j = sum_k f(k) "
      "K_k(j) with j = |S|, equal to the WHT spectrum to 1e-12 (relative to the largest), with "
      "multiplicities C(10, j).",
      MCLRR ", Appendix B (hypercube case, a = 1)",
      "kat_group_hypercube_spectrum, kat_group_hyperrect_spectrum",
      "tests/test_theorems.c, tests/test_group.c test_hypercube_matches_wht"},
     kat__thm_check_krawtchouk},
    {{"stable-rank-exp", "Stable rank of exp(s x) on the hypercube",
      "D_f = [exp(s |b xor c|)] on {0,1}^10 has stable rank [2(1 + e^{2s})/(1 + e^s)^2]^d: "
      "s = 0.5, 1, 2, 4 -> 1.7906, 6.9276, 96.9709, 714.6746, from the WHT spectrum and by "
      "dense SVD.",
      MCLRR ", Appendix B (eigenvalues of exp on the hypercube)",
      "kat_group_hyperrect_spectrum, kat_rank_spectrum, kat_rank_stable",
      "tests/test_theorems.c"},
     kat__thm_check_stable_rank},
    {{"bochner-cyclic", "Bochner on Z_64: which f(delta) are positive definite",
      "delta(k) = min(k, 64 - k): exp(-delta/s) for s = 2, 4, 8, 16 has smallest eigenvalue "
      "0.2449, 0.1243, 0.06128, 0.02701 (all positive); exp(-delta^2/s^2) with s = 16 has "
      "-0.04441 at frequency 4; sqrt(delta) has every nonzero-frequency eigenvalue <= -0.716.",
      "Bochner's theorem on the cyclic group; Schoenberg, \"Metric spaces and positive definite "
      "functions\", Trans. AMS 1938",
      "kat_group_cyclic_spectrum, kat_metric_sym_eigenvalues", "tests/test_theorems.c"},
     kat__thm_check_bochner},
    {{"exp-degree", "Polynomial degree needed for exp on [-R, R]",
      "The least g whose Chebyshev tail 2 sum_{k>g} I_k(R) is below eps e^{-R} (eps = 1e-8), "
      "for R = 1, 2, 4, ..., 256: 9, 12, 17, 27, 45, 81, 153, 295, 581 (149 for R = 64, a value "
      "once stated, falls short: docs/theory.md, errata); below eps e^{R}: 8, 10, 14, 18, 24, "
      "34, 47, 65, 92.",
      "Aggarwal, Alman, \"Optimal-degree polynomial approximations for exponentials and "
      "Gaussian kernel density estimation\", CCC 2022, arXiv 2205.06249",
      "kat_theorem_exp_degree (Miller's recurrence for I_k), cross-checked against GSL in the tests",
      "tests/test_theorems.c test_exp_degree_against_gsl"},
     kat__thm_check_exp_degree},
    {{"bounded-entries", "Bounded entries make exp(QK^T/d) low rank",
      "n = 1024, d = 10, Q = B Q0, K = B K0 with Q0, K0 ~ U[-1, 1] (one draw for every B), "
      "A = exp(QK^T/d), R = B^2 = 1, 2, ..., 256: the spectral eps-rank (eps = 1e-8) of A is at "
      "most C(d + g, g) with g the degree above at R; the degree-g Chebyshev polynomial of exp "
      "reaches entrywise relative error eps, and its explicit feature map (dimension "
      "C(d + g, g)) reproduces it. The eps-rank need not be monotone in B.",
      "Alman, Song, \"Fast Attention Requires Bounded Entries\", NeurIPS 2023, arXiv 2302.13214, "
      "Theorem 1.3 (upper bound via polynomial method)",
      "kat_rank_spectrum, kat_rank_eps_spectral, kat_featmap_poly_create",
      "tests/test_theorems.c"},
     kat__thm_check_bounded_entries},
    {{"rff-gaussian", "Random Fourier features are unbiased (Gaussian kernel)",
      "Gaussian kernel (sigma = 1), Delta = (0.7, -0.2, 0.4), 4e5 draws: the mean of one feature "
      "product is k(Delta) = 0.7082; the variance of a phase feature product is 0.6242 and of a "
      "cosine pair per frequency 0.1242 (Monte Carlo, within 3 standard errors).",
      "Rahimi, Recht, \"Random Features for Large-Scale Kernel Machines\", NIPS 2007, "
      "Claim 1 and Section 3",
      "kat_featmap_rff_create, kat_featmap_apply", "tests/test_theorems.c"},
     kat__thm_check_rff},
    {{"feature-maps-exact", "Polynomial and character feature maps are exact",
      "Polynomial maps give phi(q).psi(k) = f(q.k) to 1e-12 (relative to sum_t |a_t| "
      "(|q||k|)^t) for degree <= 4 and d <= 16, with dimension sum_t C(d + t - 1, t); "
      "character maps give F(b).F(c) = f(<a, b xor c>) to 1e-12 relative for completely "
      "monotone f (d = 10).",
      MCLRR ", Section 3 (polynomial method) and Appendix B (characters)",
      "kat_featmap_poly_create, kat_group_featmap_create", "tests/test_theorems.c, "
      "tests/test_group.c test_featmap_exact_psd"},
     kat__thm_check_maps_exact},
};

enum { NENTRIES = sizeof registry / sizeof registry[0] };

size_t kat_theorem_count(void) { return NENTRIES; }

const kat_theorem_info *kat_theorem_info_at(size_t index)
{
    return index < NENTRIES ? &registry[index].info : NULL;
}

kat_status kat_theorem_find(const char *id, size_t *index)
{
    if (!id || !index)
        return kat__fail(KAT_EINVAL, "theorem_find: %s is NULL", id ? "index" : "id");
    for (size_t i = 0; i < NENTRIES; i++)
        if (strcmp(registry[i].info.id, id) == 0) {
            *index = i;
            return KAT_OK;
        }
    return kat__fail(KAT_EINVAL, "no theorem with id '%s' (kat theorem list shows them)", id);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

kat_status kat_theorem_run(size_t index, unsigned flags, kat_theorem_result *res)
{
    if (index >= NENTRIES)
        return kat__fail(KAT_EINVAL, "theorem_run: index %zu is not below the %d entries", index,
                        NENTRIES);
    if (!res)
        return kat__fail(KAT_EINVAL, "theorem_run: res is NULL");
    if (flags & ~(unsigned)KAT_THEOREM_QUICK)
        return kat__fail(KAT_EINVAL, "theorem_run: unknown flags %#x", flags);
    kat_theorem_result *r = kat_calloc(1, sizeof *r);
    if (!r)
        return KAT_ENOMEM;
    r->info = &registry[index].info;
    r->quick = (flags & KAT_THEOREM_QUICK) != 0;
    r->pass = 1;
    double t0 = now_seconds();
    kat_status st = registry[index].check(r, r->quick);
    r->seconds = now_seconds() - t0;
    if (st == KAT_OK && r->nvalues == 0) {
        r->pass = 0;   /* a check that measured nothing proves nothing */
        kat__thm_note(r, "no value was measured.");
    }
    if (st == KAT_OK)
        *res = *r;
    kat_free(r);
    return st;
}

void kat__thm_value(kat_theorem_result *res, kat_theorem_cmp cmp, double measured, double expected,
               double tol, const char *fmt, ...)
{
    int pass;
    switch (cmp) {
    case KAT_THEOREM_LE:
        pass = measured <= expected + tol;
        break;
    case KAT_THEOREM_GE:
        pass = measured >= expected - tol;
        break;
    default:
        pass = fabs(measured - expected) <= tol;
    }
    if (!isfinite(measured))
        pass = 0;
    if (!pass)
        res->pass = 0;
    if (res->nvalues >= KAT_THEOREM_MAX_VALUES) {
        res->pass = 0;
        return;
    }
    kat_theorem_value *v = &res->values[res->nvalues++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->label, sizeof v->label, fmt, ap);
    va_end(ap);
    v->measured = measured;
    v->expected = expected;
    v->tol = tol;
    v->cmp = cmp;
    v->pass = pass;
}

void kat__thm_note(kat_theorem_result *res, const char *fmt, ...)
{
    size_t len = strlen(res->note);
    if (len + 2 >= sizeof res->note)
        return;
    if (len)
        res->note[len++] = ' ';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->note + len, sizeof res->note - len, fmt, ap);
    va_end(ap);
}

kat_status kat__thm_random_sides(uint64_t seed, size_t d, double lo, double hi, double *a)
{
    kat_rng *rng = NULL;
    kat_status st = kat_rng_create(seed, &rng);
    if (st)
        return st;
    for (size_t t = 0; t < d; t++)
        a[t] = lo + (hi - lo) * kat_rng_uniform(rng);
    kat_rng_destroy(rng);
    return KAT_OK;
}

kat_status kat__thm_fn(const char *expr, kat_fn **out) { return kat_fn_parse(expr, out, NULL); }

kat_status kat__thm_dense_rank(const kat_dmat *M, size_t *rank, double *stable)
{
    size_t k = M->rows < M->cols ? M->rows : M->cols;
    double *sv = kat__alloc_array(k ? k : 1, sizeof(double), "singular values");
    if (!sv)
        return KAT_ENOMEM;
    kat_status st = kat_rank_spectrum(M, sv, k);
    if (!st && rank)
        st = kat_rank_numerical(sv, k, M->rows, M->cols, 0.0, 0.0, rank, NULL);
    if (!st && stable)
        st = kat_rank_stable(sv, k, stable);
    kat_free(sv);
    return st;
}

double kat__thm_binomial(unsigned n, unsigned k)
{
    if (k > n)
        return 0.0;
    double r = 1.0;
    for (unsigned i = 1; i <= k; i++)
        r = r * (double)(n - k + i) / (double)i;   /* exact while the values stay below 2^53 */
    return nearbyint(r);
}
