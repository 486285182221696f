/* kat group: spectra of kernels that are invariant under a finite abelian group, and the
 * feature maps their characters give.
 *
 * On the corners of a hyperrectangle with sides a_1..a_d (corner b in {0,1}^d, coordinate t
 * equal to a_t when bit t of b is set), the matrix D_f = [f(<a, b XOR c>)] depends only on
 * b XOR c, so the Walsh characters chi_S(b) = (-1)^{|S n b|} are its eigenvectors and its
 * eigenvalues are the Walsh-Hadamard transform of its first row:
 *
 *     lambda_S = sum_{T subset [d]} (-1)^{|S n T|} f(sum_{t in T} a_t),
 *
 * computed in O(d 2^d). Note <a, b XOR c> = ||x_b - x_c||_1 for the corner points x_b, so D_f is
 * f applied to the l1 distances of the corners. Subsets S, T and corners b are bitmasks: bit t
 * (t = 0..d-1) set when t is in the set. On the hypercube (a = 1) lambda_S depends only on
 * j = |S| and is a Krawtchouk sum; on the cyclic group Z_N a circulant's eigenvalues are the
 * DFT of its first row.
 *
 * Conventions: WHTs are unnormalised (applying one twice multiplies by 2^d). Spectra are
 * returned indexed by the subset S (or the frequency m), not sorted. */
#ifndef KAT_GROUP_H
#define KAT_GROUP_H

#include "kat/core.h"
#include "kat/featmap.h"
#include "kat/fn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest d for which kat builds vectors of length 2^d (2^30 doubles = 8 GiB). Larger d is
 * refused with KAT_ERANGE naming the size. */
#define KAT_GROUP_MAX_D 30
/* The largest d for the hypercube's Krawtchouk spectrum (C(d, d/2) must fit in a double). */
#define KAT_GROUP_MAX_CUBE_D 1000

/* In-place unnormalised Walsh-Hadamard transform of x[0 .. 2^d - 1]:
 * x_S <- sum_T (-1)^{|S n T|} x_T. Computed by FFTW as a rank-d real-to-real transform of
 * size-2 R2HC pieces (FFTW_ESTIMATE, so the result does not depend on timing). Thread-safe:
 * plan creation is serialised internally. d = 0 is the identity on one value. Errors:
 * KAT_EINVAL (x NULL), KAT_ERANGE (d > KAT_GROUP_MAX_D), KAT_ENOMEM (FFTW could not plan). */
KAT_API kat_status kat_group_wht(double *x, size_t d);

/* The same transform by an in-place radix-2 butterfly (the reference the FFTW path is tested
 * against; d passes of 2^(d-1) add/subtract pairs). */
KAT_API kat_status kat_group_wht_butterfly(double *x, size_t d);

/* The first row of D_f: g[T] = f(sum_{t in T} a_t) for the 2^d subsets T (bitmasks). Sides
 * a[0..d-1] must be finite and > 0. Errors: KAT_EINVAL (NULL, side <= 0), KAT_EDOM (a side or
 * an f value not finite, naming T), KAT_ERANGE (d > KAT_GROUP_MAX_D, naming 2^d). */
KAT_API kat_status kat_group_hyperrect_values(const kat_fn *f, const double *a, size_t d, double *g);

/* The 2^d eigenvalues of D_f on the hyperrectangle with sides a: lambda[S] (S a bitmask) is
 * the eigenvalue of the Walsh character chi_S. O(d 2^d) time and one 2^d scratch vector (so a
 * failed call leaves lambda untouched). Errors as kat_group_hyperrect_values. */
KAT_API kat_status kat_group_hyperrect_spectrum(const kat_fn *f, const double *a, size_t d,
                                                double *lambda);

/* The dense 2^d x 2^d matrix D_f (entry (b, c) = f(<a, b XOR c>)) into the caller's view D,
 * which must be exactly 2^d x 2^d. For cross-checks against a dense eigensolver. */
KAT_API kat_status kat_group_hyperrect_matrix(const kat_fn *f, const double *a, size_t d, kat_dmat *D);

/* An upper bound on the rounding error of every lambda_S computed from values g by the WHT:
 * (d + 1) eps sum_T |g_T| (d levels of additions plus one rounding of each f value). Use it to
 * decide the sign or zero-ness of an eigenvalue. */
KAT_API double kat_group_spectrum_tol(const double *g, size_t d);

/* Normalised Krawtchouk polynomials of the hypercube {0,1}^d: out[k*(d+1) + j] =
 * K_k(j) / C(d, k) for k, j = 0..d, where K_k(j) = sum_i (-1)^i C(j, i) C(d-j, k-i) is the sum
 * of (-1)^{|S n T|} over the C(d, k) sets T of size k, for any S of size j. Every value lies in
 * [-1, 1]; computed by the three-term recurrence
 *   (d - k) k_{k+1}(j) = (d - 2j) k_k(j) - k k_{k-1}(j)
 * for k <= d/2 (where it is stable) and the reflection k_{d-k}(j) = (-1)^j k_k(j) above, never
 * forming the binomials; the error stays within a few eps for every d. out holds (d+1)^2
 * values. Errors: KAT_EINVAL (NULL), KAT_ERANGE (d > KAT_GROUP_MAX_CUBE_D). */
KAT_API kat_status kat_group_krawtchouk_table(size_t d, double *out);

/* The spectrum of D_f on the hypercube (a = 1): lambda[j] = sum_k f(k) C(d, k) k_k(j) for
 * j = 0..d, the eigenvalue of every chi_S with |S| = j; mult[j] = C(d, j) (GSL binomials) is
 * its multiplicity. mult may be NULL. d = 0 gives lambda[0] = f(0). Errors: KAT_EINVAL (NULL),
 * KAT_EDOM (f(k) not finite, naming k), KAT_ERANGE (d > KAT_GROUP_MAX_CUBE_D). */
KAT_API kat_status kat_group_hypercube_spectrum(const kat_fn *f, size_t d, double *lambda, double *mult);

/* Eigenvalues of the N x N circulant C (C_ij = c[(j - i) mod N]) through FFTW:
 * lambda_m = sum_k c_k exp(2 pi i m k / N), m = 0..N-1, real parts into re and imaginary parts
 * into im (im may be NULL). The eigenvector of lambda_m is (exp(2 pi i m j / N))_j.
 * Errors: KAT_EINVAL (NULL, N = 0), KAT_EDOM (non-finite c), KAT_ENOMEM. */
KAT_API kat_status kat_group_circulant_spectrum(const double *c, size_t N, double *re, double *im);

/* The spectrum of [f(delta(i - j))] on the cyclic group Z_N with delta(k) = min(k, N - k): a
 * symmetric circulant, so lambda[m] = sum_k f(delta(k)) cos(2 pi m k / N) is real and
 * lambda[m] = lambda[N - m]. Errors: KAT_EINVAL (NULL, N = 0), KAT_EDOM (f not finite at some
 * delta, named). */
KAT_API kat_status kat_group_cyclic_spectrum(const kat_fn *f, size_t N, double *lambda);

/* ---- feature maps from characters ---------------------------------------------------------- */

/* Options for kat_group_featmap_create. */
enum {
    /* Refuse kernels with a negative eigenvalue (beyond kat_group_spectrum_tol), so that the
     * query and key maps are the same Gram features F(b)_S = sqrt(lambda_S / 2^d) chi_S(b). */
    KAT_GROUP_MAP_REQUIRE_PSD = 1u << 0
};

/* A kat_featmap for the kernel k(x_b, x_c) = f(<a, b XOR c>) on the hyperrectangle's corners:
 * phi(x_b)_S = sqrt(|lambda_S| / 2^d) chi_S(b), psi(x_b)_S = sign(lambda_S) phi(x_b)_S, over the
 * `rank` characters S with the largest |lambda_S| (ties by smaller S), so phi(b).psi(c) is the
 * best rank-`rank` approximation of D_f (Eckart-Young); rank = 0 keeps every character with
 * |lambda_S| above the tolerance (the exact map, dimension = rank of D_f). When every
 * lambda_S >= 0 (f positive definite on the corners, e.g. completely monotone f) phi = psi.
 * Inputs are the corner points: row x has x_t = 0 or a_t (within 16 float eps of a_t, so fp32
 * copies work); anything else is KAT_EDOM naming the row and coordinate. The flags are EXACT
 * when no character above the tolerance was dropped, POSITIVE when, in addition, f > 0 at every
 * <a, T>. score() is f(<a, b XOR c>) itself. Errors: those of kat_group_hyperrect_spectrum,
 * KAT_EINVAL (rank > 2^d, NULL out), KAT_EDOM (REQUIRE_PSD and a negative lambda_S, naming S and
 * its value). */
KAT_API kat_status kat_group_featmap_create(const kat_fn *f, const double *a, size_t d, size_t rank,
                                            unsigned options, kat_featmap **out);

#ifdef __cplusplus
}
#endif
#endif
