/* Shared by the theorem registry (theorems.c) and its checks (theorems_*.c). */
#ifndef KAT_THEOREMS_INTERNAL_H
#define KAT_THEOREMS_INTERNAL_H

#include "kat/kat.h"
#include "kat/featmaps.h"
#include "kat/rank.h"
#include "kat/theorems.h"

/* A check fills res->values (through kat__thm_value) and may set res->note; it returns KAT_OK
 * unless something could not be computed. quick selects the reduced-size variant. */
typedef kat_status (*thm_check_fn)(kat_theorem_result *res, int quick);

/* Record one measured value; the pass flag follows from cmp and tol. Values beyond
 * KAT_THEOREM_MAX_VALUES are counted as a failure of the entry (never silently dropped). */
void kat__thm_value(kat_theorem_result *res, kat_theorem_cmp cmp, double measured, double expected,
               double tol, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Append a sentence to res->note. */
void kat__thm_note(kat_theorem_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Helpers shared by the checks. */
/* Sides a_t ~ U[lo, hi] from a fixed seed (the theorems' "a_t ~ U[0.5, 1.5]"). */
kat_status kat__thm_random_sides(uint64_t seed, size_t d, double lo, double hi, double *a);
/* Parse a built-in expression (an error here is a bug in the registry). */
kat_status kat__thm_fn(const char *expr, kat_fn **out);
/* Numerical rank of a matrix by dense SVD at the numpy tolerance (rank module). */
kat_status kat__thm_dense_rank(const kat_dmat *M, size_t *rank, double *stable);
/* C(n, k) as a double, exactly for the sizes used here. */
double kat__thm_binomial(unsigned n, unsigned k);

/* The checks, one per registry entry. */
kat_status kat__thm_check_hadamard(kat_theorem_result *res, int quick);
kat_status kat__thm_check_hyperrect_ranks(kat_theorem_result *res, int quick);
kat_status kat__thm_check_generic_ranks(kat_theorem_result *res, int quick);
kat_status kat__thm_check_discontinuity(kat_theorem_result *res, int quick);
kat_status kat__thm_check_laplace(kat_theorem_result *res, int quick);
kat_status kat__thm_check_bernstein(kat_theorem_result *res, int quick);
kat_status kat__thm_check_krawtchouk(kat_theorem_result *res, int quick);
kat_status kat__thm_check_stable_rank(kat_theorem_result *res, int quick);
kat_status kat__thm_check_bochner(kat_theorem_result *res, int quick);
kat_status kat__thm_check_exp_degree(kat_theorem_result *res, int quick);
kat_status kat__thm_check_bounded_entries(kat_theorem_result *res, int quick);
kat_status kat__thm_check_rff(kat_theorem_result *res, int quick);
kat_status kat__thm_check_maps_exact(kat_theorem_result *res, int quick);

/* Chebyshev degree of exp (theorems_approx.c, also used by the bounded-entries check): the
 * least g with 2 sum_{k>g} I_k(R) < eps * e^{sign R} (sign = -1: relative accuracy on
 * [-R, R], sign = +1: accuracy relative to max e^x). */
kat_status kat__thm_exp_degree(double R, double eps, int sign, size_t *g);
/* e^{-R} I_k(R) for k = 0..kmax (Miller's backward recurrence, normalised by
 * I_0 + 2 sum I_k = e^R); out has kmax + 1 values. */
kat_status kat__thm_bessel_scaled(double R, size_t kmax, double *out);

#endif
