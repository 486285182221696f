/* Registry checks built on the rank probe and the feature maps: generic ranks (GKR),
 * random Fourier features, and the exactness of polynomial and character maps. */
#include <float.h>
#include <math.h>
#include <string.h>
#include "core/internal.h"
#include "theorems_internal.h"

/* ---- generic ranks -------------------------------------------------------------------------- */

kat_status kat__thm_check_generic_ranks(kat_theorem_result *res, int quick)
{
    static const struct {
        size_t n, d;
        const char *expr;
        double stated;
    } cases[] = {{400, 6, "x^2", 21},       {400, 6, "x^3", 56},        {400, 6, "(1+x)^3", 84},
                 {400, 6, "x^4+x", 132},    {400, 6, "exp(x)", 400},    {1024, 11, "x^4", 1001},
                 {1024, 11, "(1+x)^3", 364}, {1024, 11, "(1+x)^4", 1024}};
    kat_dmat Q = {0}, K = {0};
    kat_status st = KAT_OK;
    size_t cur_n = 0, cur_d = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0] && !st; i++) {
        if (quick && cases[i].n > 400)
            continue;
        if (cases[i].n != cur_n || cases[i].d != cur_d) {
            /* One draw of Q and K (N(0, 1/d) entries) per (n, d). */
            kat_dmat_free(&Q);
            kat_dmat_free(&K);
            kat_rng *rng = NULL;
            kat_rank_points_opts po;
            kat_rank_points_opts_init(&po);
            if ((st = kat_dmat_alloc(cases[i].n, cases[i].d, &Q)) ||
                (st = kat_dmat_alloc(cases[i].n, cases[i].d, &K)) ||
                (st = kat_rng_create(1406 + cases[i].n, &rng)) ||
                (st = kat_rank_points(&po, rng, &Q)) || (st = kat_rank_points(&po, rng, &K))) {
                kat_rng_destroy(rng);
                break;
            }
            kat_rng_destroy(rng);
            cur_n = cases[i].n;
            cur_d = cases[i].d;
        }
        kat_fn *f = NULL;
        kat_rank_opts opts;
        kat_rank_opts_init(&opts);
        kat_rank_result r;
        if ((st = kat__thm_fn(cases[i].expr, &f)))
            break;
        st = kat_rank_probe(f, &Q, &K, &opts, &r);
        kat_fn_destroy(f);
        if (st)
            break;
        kat__thm_value(res, KAT_THEOREM_EQ, (double)r.rank, cases[i].stated, 0,
                  "n = %zu, d = %zu, f = %s: rank (dense SVD)", cases[i].n, cases[i].d,
                  cases[i].expr);
        if (r.predicted_rank != KAT_RANK_NONE)
            kat__thm_value(res, KAT_THEOREM_EQ, (double)r.predicted_rank, cases[i].stated, 0,
                      "n = %zu, d = %zu, f = %s: predicted rank (GKR)", cases[i].n, cases[i].d,
                      cases[i].expr);
        kat_rank_result_free(&r);
    }
    kat__thm_note(res, "Q, K with N(0, 1/d) entries (kat_rank_points, seed 1406 + n), M = f(QK^T), "
                  "numpy tolerance sigma_1 n eps.%s",
             quick ? " Quick run: the n = 1024 cases are skipped." : "");
    kat_dmat_free(&Q);
    kat_dmat_free(&K);
    return st;
}

/* ---- random Fourier features ---------------------------------------------------------------- */

/* Mean, unbiased variance, and the standard errors of both, of z[0..M-1]. */
static void moments(const double *z, size_t M, double *mean, double *var, double *se_mean,
                    double *se_var)
{
    double m = 0.0;
    for (size_t i = 0; i < M; i++)
        m += z[i];
    m /= (double)M;
    double m2 = 0.0, m4 = 0.0;
    for (size_t i = 0; i < M; i++) {
        double c = (z[i] - m) * (z[i] - m);
        m2 += c;
        m4 += c * c;
    }
    *mean = m;
    *var = m2 / (double)(M - 1);
    m2 /= (double)M;
    m4 /= (double)M;
    *se_mean = sqrt(*var / (double)M);
    *se_var = sqrt(fmax(m4 - m2 * m2, 0.0) / (double)M);
}

kat_status kat__thm_check_rff(kat_theorem_result *res, int quick)
{
    const size_t d = 3, M = quick ? 40000 : 400000;
    const double delta[3] = {0.7, -0.2, 0.4}, zero[3] = {0, 0, 0};
    const double k_stated = 0.7082, var_phase_stated = 0.6242, var_pair_stated = 0.1242;
    double nd2 = 0.0;
    for (size_t t = 0; t < d; t++)
        nd2 += delta[t] * delta[t];
    /* Closed forms: k(D) = e^{-|D|^2/2}; a phase product 2 cos(w.q + b) cos(w.k + b) =
     * cos(w.D) + cos(w.(q+k) + 2b) has variance (1 + k(2D))/2 + 1/2 - k(D)^2, a cosine pair
     * cos(w.D) has (1 + k(2D))/2 - k(D)^2. */
    double kD = exp(-nd2 / 2), k2D = exp(-2.0 * nd2);
    double var_phase = 0.5 * (1.0 + k2D) + 0.5 - kD * kD, var_pair = 0.5 * (1.0 + k2D) - kD * kD;
    kat__thm_value(res, KAT_THEOREM_EQ, kD, k_stated, 5e-5, "closed form k(Delta) = exp(-|Delta|^2/2)");
    kat__thm_value(res, KAT_THEOREM_EQ, var_phase, var_phase_stated, 5e-5,
              "closed form variance of a phase product");
    kat__thm_value(res, KAT_THEOREM_EQ, var_pair, var_pair_stated, 5e-5,
              "closed form variance of a cosine pair");
    double *F = kat__alloc_array(4 * M, sizeof(double), "feature rows");
    double *z = kat__alloc_array(M, sizeof(double), "per-draw products");
    kat_status st = F && z ? KAT_OK : KAT_ENOMEM;
    for (int form = 0; form < 2 && !st; form++) {
        kat_featmap *fm = NULL;
        size_t D = form == 0 ? M : 2 * M;
        if ((st = kat_featmap_rff_create(KAT_RFF_GAUSSIAN, form == 0 ? KAT_RFF_PHASE : KAT_RFF_PAIR,
                                         d, M, 1.0, 2007 + (uint64_t)form, &fm)))
            break;
        kat_dmat Xq = {1, d, d, (double *)delta}, Xk = {1, d, d, (double *)zero};
        kat_dmat Fq = {1, D, D, F}, Fk = {1, D, D, F + D};
        st = kat_featmap_apply(fm, KAT_SIDE_QUERY, &Xq, &Fq);
        if (!st)
            st = kat_featmap_apply(fm, KAT_SIDE_KEY, &Xk, &Fk);
        kat_featmap_destroy(fm);
        if (st)
            break;
        /* One draw per frequency: M phi_m(q) psi_m(k) (summed over the cos and sin pair). */
        for (size_t m = 0; m < M; m++)
            z[m] = (double)M * (form == 0 ? F[m] * F[D + m]
                                          : F[m] * F[D + m] + F[M + m] * F[D + M + m]);
        double mean, var, se_mean, se_var;
        moments(z, M, &mean, &var, &se_mean, &se_var);
        const char *name = form == 0 ? "phase" : "cosine pair";
        kat__thm_value(res, KAT_THEOREM_EQ, mean, k_stated, 3.0 * se_mean + 5e-5,
                  "%s: mean of %zu products (tol 3 SE)", name, M);
        kat__thm_value(res, KAT_THEOREM_EQ, var, form == 0 ? var_phase_stated : var_pair_stated,
                  3.0 * se_var + 5e-5, "%s: variance of the products (tol 3 SE)", name);
    }
    kat__thm_note(res, "sigma = 1, q = Delta, k = 0, %zu frequencies (seeds 2007, 2008); stated "
                  "values to half a unit of their last digit, Monte Carlo within 3 standard "
                  "errors.",
             M);
    kat_free(F);
    kat_free(z);
    return st;
}

/* ---- exact feature maps --------------------------------------------------------------------- */

kat_status kat__thm_check_maps_exact(kat_theorem_result *res, int quick)
{
    static const char *const polys[] = {"x^4", "(1+x)^4", "x^4+x", "1-2*x+3*x^3"};
    static const size_t dims[] = {1, 3, 8, 16};
    const size_t pairs = quick ? 16 : 64;
    kat_rng *rng = NULL;
    kat_status st = kat_rng_create(1234, &rng);
    double q[16], k[16], coef[8];
    for (size_t i = 0; i < 4 && !st; i++) {
        kat_fn *f = NULL;
        if ((st = kat__thm_fn(polys[i], &f)))
            break;
        int deg = kat_fn_poly_coeffs(f, coef, 8);
        for (size_t j = 0; j < 4 && !st; j++) {
            size_t d = dims[j];
            kat_featmap *fm = NULL;
            if ((st = kat_featmap_poly_from_fn(f, d, &fm)))
                break;
            double want_dim = 0.0;
            for (int t = 0; t <= deg; t++)
                if (coef[t] != 0.0)
                    want_dim += kat__thm_binomial((unsigned)(d + (size_t)t - 1), (unsigned)t);
            size_t D = kat_featmap_out_dim(fm);
            double *F = kat__alloc_array(2 * D, sizeof(double), "features");
            double worst = 0.0;
            if (!F)
                st = KAT_ENOMEM;
            for (size_t p = 0; p < pairs && !st; p++) {
                double qq = 0, kk = 0, qk = 0;
                for (size_t t = 0; t < d; t++) {
                    q[t] = kat_rng_gaussian(rng, 1.0 / sqrt((double)d));
                    k[t] = kat_rng_gaussian(rng, 1.0 / sqrt((double)d));
                    qq += q[t] * q[t];
                    kk += k[t] * k[t];
                    qk += q[t] * k[t];
                }
                kat_dmat Xq = {1, d, d, q}, Xk = {1, d, d, k}, Fq = {1, D, D, F},
                         Fk = {1, D, D, F + D};
                if ((st = kat_featmap_apply(fm, KAT_SIDE_QUERY, &Xq, &Fq)) ||
                    (st = kat_featmap_apply(fm, KAT_SIDE_KEY, &Xk, &Fk)))
                    break;
                double s = 0.0, scale = 0.0;
                for (size_t c = 0; c < D; c++)
                    s += F[c] * F[D + c];
                for (int t = 0; t <= deg; t++)
                    scale += fabs(coef[t]) * pow(sqrt(qq * kk), t);
                worst = fmax(worst, fabs(s - kat_fn_eval1(f, qk)) / scale);
            }
            kat_free(F);
            kat_featmap_destroy(fm);
            if (st)
                break;
            kat__thm_value(res, KAT_THEOREM_EQ, (double)D, want_dim, 0,
                      "f = %s, d = %zu: dimension sum_t C(d+t-1, t)", polys[i], d);
            kat__thm_value(res, KAT_THEOREM_LE, worst, 1e-12, 0, "f = %s, d = %zu: max relative error",
                      polys[i], d);
        }
        kat_fn_destroy(f);
    }
    /* Character maps for completely monotone f on the corners (d = 10, sides U[0.5, 1.5]). */
    static const char *const cm[] = {"exp(-x)", "1/(1+x)"};
    size_t d = quick ? 7 : 10, n = (size_t)1 << d;
    double a[10];
    if (!st)
        st = kat__thm_random_sides(2011, d, 0.5, 1.5, a);
    double entry_err[2] = {0, 0};
    for (size_t i = 0; i < 2 && !st; i++) {
        kat_fn *f = NULL;
        kat_featmap *fm = NULL;
        kat_dmat X = {0}, F = {0};
        if (!(st = kat__thm_fn(cm[i], &f)) &&
            !(st = kat_group_featmap_create(f, a, d, 0, KAT_GROUP_MAP_REQUIRE_PSD, &fm)) &&
            !(st = kat_dmat_alloc(n, d, &X)) && !(st = kat_metric_corners(a, d, &X)) &&
            !(st = kat_dmat_alloc(n, kat_featmap_out_dim(fm), &F)))
            st = kat_featmap_apply(fm, KAT_SIDE_QUERY, &X, &F);
        double worst = 0.0, worst_entry = 0.0;
        for (size_t p = 0; !st && p < n + 4096; p++) {
            size_t b = p < n ? 0 : (size_t)kat_rng_uint(rng, n);
            size_t c = p < n ? p : (size_t)kat_rng_uint(rng, n);
            double s = 0.0, sabs = 0.0, dist = 0.0;
            for (size_t j = 0; j < F.cols; j++) {
                double term = F.data[b * F.ld + j] * F.data[c * F.ld + j];
                s += term;
                sabs += fabs(term);
            }
            for (size_t t = 0; t < d; t++)
                dist += ((b ^ c) >> t & 1) ? a[t] : 0.0;
            double want = kat_fn_eval1(f, dist);
            worst = fmax(worst, fabs(s - want) / sabs);
            worst_entry = fmax(worst_entry, fabs(s - want) / want);
        }
        if (!st) {
            kat__thm_value(res, KAT_THEOREM_EQ, (double)F.cols, (double)n, 0,
                      "character map of %s: dimension 2^d", cm[i]);
            kat__thm_value(res, KAT_THEOREM_LE, worst, 1e-12, 0,
                      "character map of %s: max relative error F(b).F(c)", cm[i]);
            entry_err[i] = worst_entry;
        }
        kat_dmat_free(&X);
        kat_dmat_free(&F);
        kat_featmap_destroy(fm);
        kat_fn_destroy(f);
    }
    kat__thm_note(res, "Polynomial maps on %zu random pairs per (f, d) with N(0, 1/d) entries; error "
                  "relative to sum_t |a_t| (|q||k|)^t, the size of the terms summed. Character "
                  "maps on corners of the sides of hadamard-eigenvectors (d = %zu), every pair "
                  "(0, c) and 4096 random pairs; error relative to sum_S |F_b(S) F_c(S)| = "
                  "f(0), the size of the terms summed (the smallest kernel values, e^{-sum a} "
                  "for exp(-x), carry the rounding of that sum: relative to f itself the error "
                  "is up to %.2g for %s and %.2g for %s).",
             pairs, d, entry_err[0], cm[0], entry_err[1], cm[1]);
    kat_rng_destroy(rng);
    return st;
}
