/* kat theorems: a registry of theorems about low-rank kernels, each reproduced by computation.
 *
 * Every entry has an id, a statement, its source (paper, arXiv id, theorem number), the kat
 * routines that check it and the test that runs it. Running an entry recomputes its measured
 * values from scratch (fixed seeds, so runs are reproducible) and compares each with the
 * expected value the source states (or, where a stated value was found wrong, the corrected
 * value; docs/theory.md lists those errata). `kat theorem list | run ID | all` prints them. */
#ifndef KAT_THEOREMS_H
#define KAT_THEOREMS_H

#include <stddef.h>
#include "kat/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How a measured value is compared with the expected one. */
typedef enum {
    KAT_THEOREM_EQ = 0,   /* |measured - expected| <= tol */
    KAT_THEOREM_LE,       /* measured <= expected + tol (an upper bound, e.g. an error) */
    KAT_THEOREM_GE        /* measured >= expected - tol */
} kat_theorem_cmp;

/* One measured quantity of a theorem. */
typedef struct {
    char label[96];        /* what was measured, e.g. "rank, f = x^2" */
    double measured;
    double expected;
    double tol;            /* allowed deviation (0 for exact integers) */
    kat_theorem_cmp cmp;
    int pass;
} kat_theorem_value;

#define KAT_THEOREM_MAX_VALUES 48

/* The fixed description of a registry entry. */
typedef struct {
    const char *id;          /* short, unique, e.g. "hadamard-eigenvectors" */
    const char *title;       /* one line */
    const char *statement;   /* what is claimed, with the parameters checked */
    const char *source;      /* paper, arXiv id, theorem / lemma number */
    const char *routine;     /* the kat routines that compute the measured values */
    const char *test;        /* the test that runs the entry */
} kat_theorem_info;

/* The outcome of running one entry. */
typedef struct {
    const kat_theorem_info *info;
    int quick;                    /* the reduced-size variant was run */
    size_t nvalues;
    kat_theorem_value values[KAT_THEOREM_MAX_VALUES];
    int pass;                     /* every value passed */
    double seconds;               /* wall time of the check */
    char note[1024];              /* parameters, caveats, errata that apply */
} kat_theorem_result;

/* Options for kat_theorem_run. */
enum {
    /* Smaller sizes (for sanitizer and valgrind runs): the statement's own parameters are
     * replaced where they are expensive, and expected values come from the closed forms. */
    KAT_THEOREM_QUICK = 1u << 0
};

/* Number of registry entries. */
KAT_API size_t kat_theorem_count(void);

/* Entry `index` (< kat_theorem_count()), or NULL. */
KAT_API const kat_theorem_info *kat_theorem_info_at(size_t index);

/* Index of the entry with this id; KAT_EINVAL naming the id when there is none. */
KAT_API kat_status kat_theorem_find(const char *id, size_t *index);

/* Run entry `index` and fill *res. A theorem whose values do not match is still KAT_OK, with
 * res->pass = 0; a status other than KAT_OK means the check could not be computed (KAT_ENOMEM,
 * KAT_ELAPACK, an invalid index, ...), and then *res is untouched. Deterministic: fixed seeds. */
KAT_API kat_status kat_theorem_run(size_t index, unsigned flags, kat_theorem_result *res);

/* The degree a polynomial needs to approximate exp on [-R, R] (Aggarwal and Alman, arXiv
 * 2205.06249): the least g whose Chebyshev tail 2 sum_{k>g} I_k(R) is below eps e^{-R} when
 * `relative` (so the truncated Chebyshev series has relative error < eps everywhere on
 * [-R, R]), or below eps e^{R} otherwise (error < eps max e^x). I_k by Miller's backward
 * recurrence, normalised by I_0 + 2 sum_k I_k = e^R, in scaled form (no overflow for any R).
 * Errors: KAT_EINVAL (R not in (0, 1e4], eps not in (0, 1), NULL g), KAT_ERANGE (relative and
 * eps e^{-2R} below the smallest normal double, R > ~345 for eps = 1e-8). */
KAT_API kat_status kat_theorem_exp_degree(double R, double eps, int relative, size_t *g);

#ifdef __cplusplus
}
#endif
#endif
