/* kat featmaps: the built-in feature maps of the theory module — exact polynomial maps, Taylor
 * maps of exp, random Fourier features and positive random features (FAVOR+).
 *
 * Every constructor returns a kat_featmap (include/kat/featmap.h) with fp64 and fp32 `apply`,
 * `score`, and fp64 and fp32 `vjp`, so each map runs through the rank probe and the
 * linear-attention engine, forward and backward. Maps are immutable after creation and every
 * callback is thread-safe. Random maps take an explicit seed: the same seed gives the same
 * frequencies, bit for bit.
 *
 * fp32 paths: polynomial maps run the same recurrence in float (relative error about
 * 4(P+1) float eps per feature); random maps compute W x with OpenBLAS sgemm, then FAVOR+ uses
 * the dispatched vector 2^x of lib/kernels (<= 1 ulp) and random Fourier features a vectorised
 * sine/cosine (Cody-Waite reduction by pi/2, Taylor polynomials; about 2 ulp of 1 beyond the
 * rounding of the argument; arguments above 6000 in magnitude go through libm). The fp64 paths
 * use libm throughout and are the reference. */
#ifndef KAT_FEATMAPS_H
#define KAT_FEATMAPS_H

#include <stdint.h>
#include "kat/featmap.h"
#include "kat/fn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest feature dimension a built-in map accepts (2^31 - 1: the BLAS index limit the
 * attention engine works under). Larger requests fail with KAT_ERANGE naming the size. */
#define KAT_FEATMAP_MAX_DIM ((size_t)2147483647)

/* ---- polynomial maps: phi(q).psi(k) = f(q.k) exactly --------------------------------------- */

/* The feature dimension of the exact map of f(x) = sum_t coef[t] x^t on R^d:
 * sum over t with coef[t] != 0 of C(d+t-1, t), the number of degree-t monomials in d variables.
 * KAT_EINVAL for d = 0, ncoef = 0, NULL pointers or an all-zero f (dimension 0); KAT_EDOM for
 * a non-finite coefficient; KAT_ERANGE, naming the size, when it exceeds KAT_FEATMAP_MAX_DIM. */
KAT_API kat_status kat_featmap_poly_dim(const double *coef, size_t ncoef, size_t d, size_t *dim);

/* The exact polynomial map of f(x) = sum_{t<ncoef} coef[t] x^t on R^d, in the symmetric
 * (monomial) basis: for each degree t with coef[t] != 0 and each multiset alpha of t indices
 * (non-decreasing i1 <= ... <= it), phi(q)_alpha = sqrt(|a_t| t!/alpha!) q^alpha and
 * psi(k)_alpha = sign(a_t) sqrt(|a_t| t!/alpha!) k^alpha, so phi(q).psi(k) = f(q.k) by the
 * multinomial theorem. Features are ordered by degree, then (within a degree) by the largest
 * index, then recursively in the same order; each monomial is computed from one of the previous
 * degree with one multiplication, so a row costs O(dim).
 * Flags: KAT_FEATMAP_EXACT always; KAT_FEATMAP_POSITIVE when f(x) > 0 for every real x (q.k
 * ranges over all of R when d >= 1). That is decided at creation: f constant and positive, or
 * of even degree with a positive leading coefficient whose minimum over the real critical
 * points (roots of f', from the eigenvalues of its companion matrix, Newton-polished) exceeds
 * the rounding error of evaluating f there. Odd degrees are never positive.
 * score(q, k) = f(q.k). Trailing zero coefficients are ignored. Errors as kat_featmap_poly_dim. */
KAT_API kat_status kat_featmap_poly_create(const double *coef, size_t ncoef, size_t d, kat_featmap **out);

/* The same for a kat_fn recognised as a polynomial (kat_fn_poly_coeffs). KAT_EINVAL naming f
 * when f is not a polynomial (exp, relu, a callback, ...). */
KAT_API kat_status kat_featmap_poly_from_fn(const kat_fn *f, size_t d, kat_featmap **out);

/* The feature dimension of the order-P Taylor map on R^d: C(d+P, P) = sum_{t<=P} C(d+t-1, t)
 * (1 + d + d(d+1)/2 for P = 2). KAT_EINVAL for d = 0 or order < 0; KAT_ERANGE naming the size. */
KAT_API kat_status kat_featmap_taylor_dim(size_t d, int order, size_t *dim);

/* The order-P Taylor map of exp(q.k / tau): the exact polynomial map of
 * T_P(x) = sum_{t<=P} (x/tau)^t / t!, with the temperature tau > 0 (tau = 0 selects sqrt(d)).
 * The map represents T_P exactly (flag EXACT, score = T_P(q.k)); it approximates exp(q.k/tau)
 * with the truncation error of the series. Even P: flag POSITIVE, because the Taylor
 * polynomial of exp of even degree has no real root (at a critical point x* of T_P,
 * T_P(x*) = x*^P/P! > 0); odd P is not positive. Orders 1 and 2 are the maps of FAST/Fastmax
 * (arXiv 2402.07901) and Based (arXiv 2402.18668).
 * Errors: KAT_EINVAL for d = 0, order < 0, tau < 0 or non-finite; KAT_ERANGE naming the size. */
KAT_API kat_status kat_featmap_taylor_create(size_t d, int order, double tau, kat_featmap **out);

/* ---- random Fourier features (Rahimi and Recht, NIPS 2007) --------------------------------- */

typedef enum {
    KAT_RFF_GAUSSIAN = 0,   /* k(q, k) = exp(-|q - k|_2^2 / (2 sigma^2)); w ~ N(0, I/sigma^2) */
    KAT_RFF_LAPLACE = 1     /* k(q, k) = exp(-|q - k|_1 / sigma); w_j ~ Cauchy(0, 1/sigma) */
} kat_rff_kernel;

typedef enum {
    /* M features sqrt(2/M) cos(w_m.x + b_m), b_m ~ U[0, 2 pi). */
    KAT_RFF_PHASE = 0,
    /* 2M features sqrt(1/M) (cos(w_m.x), sin(w_m.x)): the first M are cosines, the next M
     * sines. Lower variance per frequency (no b), twice the dimension. */
    KAT_RFF_PAIR = 1
} kat_rff_form;

/* Random Fourier features for a shift-invariant kernel: E[phi(q).psi(k)] = k(q, k), and
 * phi = psi. Neither flag is set (features and products may be negative; not exact).
 * score(q, k) = the exact kernel. M >= 1 frequencies, sigma > 0 finite, seeded.
 * Errors: KAT_EINVAL for d = 0, M = 0, sigma <= 0 or non-finite, an unknown kernel or form;
 * KAT_ERANGE when the dimension exceeds KAT_FEATMAP_MAX_DIM. */
KAT_API kat_status kat_featmap_rff_create(kat_rff_kernel kernel, kat_rff_form form, size_t d, size_t M,
                                          double sigma, uint64_t seed, kat_featmap **out);

/* ---- positive random features for exp(scale q.k) (FAVOR+, arXiv 2009.14794) ----------------- */

enum {
    /* Draw the frequencies in blocks of d mutually orthogonal directions (QR of a Gaussian
     * matrix, LAPACKE dgeqrf/dorgqr, signs fixed so each block is Haar distributed), each row
     * rescaled by an independent chi_d norm so its marginal stays N(0, I): still unbiased,
     * lower variance. The last block holds the remaining M mod d rows. */
    KAT_FAVOR_ORTHOGONAL = 1u << 0,
    /* Numerically stable query side: phi(q)_m = exp(z_m - max_j z_j)/sqrt(M) with
     * z = sqrt(scale) W q, i.e. phi(q) times the positive per-query factor
     * exp(scale |q|^2/2 - max_j z_j). The factor cancels in normalised attention (numerator
     * and denominator of the same query); it is a statistic of that one token only, never of
     * the sequence, so causal attention stays causal. phi(q).psi(k) is then no longer an
     * estimate of the kernel itself. The key side is never rescaled. */
    KAT_FAVOR_STABLE = 1u << 1
};

/* Positive random features: phi(x)_m = psi(x)_m = exp(sqrt(s) w_m.x - s |x|^2/2)/sqrt(M) with
 * w_m ~ N(0, I), s = scale, so E[phi(q).psi(k)] = exp(s q.k) (s = 1/sqrt(d) gives softmax
 * attention's kernel). Flag POSITIVE (every feature is > 0), not EXACT. score = exp(s q.k).
 * flags: KAT_FAVOR_ORTHOGONAL | KAT_FAVOR_STABLE. Without STABLE (and always on the key side)
 * a feature overflows when sqrt(s) w.x - s|x|^2/2 exceeds about 88 in fp32 (709 in fp64); the
 * validated kat_featmap_apply then reports KAT_EDOM.
 * Errors: KAT_EINVAL for d = 0, M = 0, scale <= 0 or non-finite, unknown flags; KAT_ELAPACK if
 * the QR fails; KAT_ERANGE when M exceeds KAT_FEATMAP_MAX_DIM. */
KAT_API kat_status kat_featmap_favor_create(size_t d, size_t M, double scale, unsigned flags,
                                            uint64_t seed, kat_featmap **out);

/* A read-only view of a random map's M x d frequency matrix W (row m = w_m, without the FAVOR
 * scale sqrt(s)), valid while the map lives. KAT_EINVAL if fm is not an RFF or FAVOR+ map. */
KAT_API kat_status kat_featmap_random_frequencies(const kat_featmap *fm, kat_dmat *W);

/* ---- maps made for linear attention ------------------------------------------------------- */

/* elu(x) + 1 (Katharopoulos et al. 2020): phi = psi = 1 + elu(x), D = d. Positive features,
 * so POSITIVE | EXACT; fp32 paths and a vjp. */
KAT_API kat_status kat_featmap_elu1_create(size_t d, kat_featmap **out);

/* Per-token normalisation around a map: phi(x) = inner.phi(n(x)), n(x) = scale * u / |u| with
 * u = x - mean(x) when center, else u = x (n(x) = 0 when u = 0). Each token is normalised by
 * its own statistics only, never by one of the whole sequence (which would leak future tokens
 * into causal outputs). This is FAST's Fastmax normalisation with a Taylor map inside.
 * Takes ownership of inner (destroyed with the new map, and on failure). scale > 0, finite.
 * flags: inner's flags OR extra_flags — pass KAT_FEATMAP_POSITIVE only when the inner kernel is
 * positive on the sphere of radius scale (e.g. 1 + x for scale < 1). Gradients go through the
 * normalisation when inner has a vjp. */
KAT_API kat_status kat_featmap_token_norm_create(kat_featmap *inner, int center, double scale,
                                                 unsigned extra_flags, kat_featmap **out);


/* ---- feature-map specs: the one grammar of every caller (the kat command included) -------- */

/* A spec names a map in text; the same spec gives the same map everywhere:
 *   taylor:P, taylorP         order-P Taylor map of exp(s q.k), P in [0, 1000000]
 *   poly:EXPR                 exact map of the polynomial f(q.k) = EXPR in x, e.g. poly:(1+x)^2
 *   rff:M[:pair]              random Fourier features of exp(-|q-k|_2^2 / (2 sigma^2))
 *   rff-laplace:M[:pair]      the same for exp(-|q-k|_1 / sigma)
 *   favor:M[:ortho][:stable]  positive random features (FAVOR+) for exp(s q.k)
 *   elu1                      elu(x) + 1
 *   group[:R]                 character map of f(<a, b xor c>) on box corners, rank R (0: exact)
 * with M >= 1 frequencies (":pair": 2M features cos, sin; otherwise M with random phases),
 * ":ortho" orthogonal frequency blocks (KAT_FAVOR_ORTHOGONAL), ":stable" the stabilised query
 * side (KAT_FAVOR_STABLE). Defaults for input dimension d: s = 1/sqrt(d) (tau = sqrt(d), the
 * softmax scale) and sigma = d^(1/4), so rff's kernel is exp(q.k / sqrt(d)) times norm factors. */
typedef enum {
    KAT_FEATMAP_KIND_TAYLOR = 0,
    KAT_FEATMAP_KIND_POLY,
    KAT_FEATMAP_KIND_RFF,
    KAT_FEATMAP_KIND_RFF_LAPLACE,
    KAT_FEATMAP_KIND_FAVOR,
    KAT_FEATMAP_KIND_ELU1,
    KAT_FEATMAP_KIND_GROUP
} kat_featmap_kind;

/* The longest poly:EXPR expression a spec may hold (bytes, without the terminating zero). */
#define KAT_FEATMAP_SPEC_EXPR_MAX 255

/* A parsed spec. kat_featmap_spec_parse fills every field; a caller may then set the fields
 * marked "caller" before kat_featmap_spec_create. */
typedef struct {
    kat_featmap_kind kind;
    int order;              /* taylor: P */
    size_t count;           /* rff, rff-laplace, favor: M */
    int pair;               /* rff, rff-laplace: the cos/sin pair form (KAT_RFF_PAIR) */
    unsigned favor_flags;   /* favor: KAT_FAVOR_ORTHOGONAL | KAT_FAVOR_STABLE */
    size_t rank;            /* group: R, 0 for the exact map */
    char expr[KAT_FEATMAP_SPEC_EXPR_MAX + 1];   /* poly: EXPR */
    /* caller: the kernel parameter, 0 for the default: s of exp(s q.k) for taylor and favor,
     * sigma for rff and rff-laplace; no meaning (must stay 0) for the others. */
    double scale;
    /* caller: per-token normalisation in front of the map (kat_featmap_token_norm_create,
     * centred) onto the sphere of radius sqrt(1/s) (taylor: times sqrt(1/2) for P = 1, so
     * 1 + s q.k >= 1/2 > 0 and the map is POSITIVE), radius 1 for the other maps. For a Taylor
     * map s q.k then lies in [-1, 1]: FAST's Fastmax. 0 after parsing. */
    int norm;
    /* caller, group only: f of the l1 distance (not owned; NULL: exp(-x)) and the d sides a
     * (not owned; NULL: all 1). */
    const kat_fn *group_f;
    const double *group_sides;
} kat_featmap_spec;

/* Parse a spec. KAT_EPARSE when the text is malformed (unknown map, missing or non-numeric
 * count, unknown option), KAT_EINVAL when it is well formed but a value is out of range
 * (M = 0, P beyond 1000000, EXPR too long); the message names the spec and what is wrong. */
KAT_API kat_status kat_featmap_spec_parse(const char *spec, kat_featmap_spec *out);

/* "taylor", "poly", "rff", "rff-laplace", "favor", "elu1", "group"; "unknown" otherwise. */
KAT_API const char *kat_featmap_kind_name(kat_featmap_kind kind);

/* The scale in use for input dimension d: spec->scale, or the default of its kind (above);
 * 0 for the kinds without one. */
KAT_API double kat_featmap_spec_scale(const kat_featmap_spec *spec, size_t d);

/* The seed of the random maps (rff, favor) where the caller names none: `kat features`
 * without --seed, the Python package's kat.featmap, kat.rff and kat.favor. */
#define KAT_FEATMAP_DEFAULT_SEED 0

/* Build the map of a parsed spec on R^d (seed: the random maps' frequencies). Errors as the
 * map's constructor; KAT_EINVAL when scale is given to a kind without one, or is not > 0 and
 * finite. */
KAT_API kat_status kat_featmap_spec_create(const kat_featmap_spec *spec, size_t d, uint64_t seed,
                                           kat_featmap **out);

/* kat_featmap_spec_parse then kat_featmap_spec_create with the defaults. */
KAT_API kat_status kat_featmap_parse(const char *spec, size_t d, uint64_t seed,
                                     kat_featmap **out);

/* The kernel that the map of spec stands for, at (q, k) in R^d (d = kat_featmap_in_dim(fm)):
 * exp(s q.k) for taylor (of which the map is the truncated series) and favor, the Gaussian or
 * Laplace kernel for rff, f(q.k) for poly, f(|q - k|_1) = f(<a, b xor c>) on corners for
 * group, phi(q).psi(k) for elu1. fm must come from kat_featmap_spec_create(spec, ...).
 * KAT_ENOTSUP with norm set (the kernel is then one of the normalised tokens). */
KAT_API kat_status kat_featmap_spec_kernel(const kat_featmap_spec *spec, const kat_featmap *fm,
                                           const double *q, const double *k, double *out);

#ifdef __cplusplus
}
#endif
#endif
