/* kat featmap: low-rank feature maps k(q, k) = <phi(q), psi(k)>, phi, psi: R^d -> R^D.
 * One small vtable, so a user's map runs through the rank probe and the attention engine
 * exactly like the built-in ones (polynomial, Taylor, group, random features, elu+1). */
#ifndef KAT_FEATMAP_H
#define KAT_FEATMAP_H

#include "kat/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { KAT_SIDE_QUERY = 0, KAT_SIDE_KEY = 1 } kat_side;

/* Flags a map declares at creation. */
enum {
    /* phi(q).psi(k) > 0 for every input, by construction (positive features, even Taylor
     * order, ...). Normalised attention refuses maps without it. */
    KAT_FEATMAP_POSITIVE = 1u << 0,
    /* phi(q).psi(k) equals the kernel exactly (not a random approximation). */
    KAT_FEATMAP_EXACT = 1u << 1
};

/* Rows are contiguous vectors: row i of x is x + i*ldx. All callbacks must be thread-safe
 * (several threads may call them at once on different rows). */
typedef struct {
    const char *name;
    /* Required: f[i] = phi(x[i]) (side QUERY) or psi(x[i]) (side KEY) for i < n. */
    kat_status (*apply)(const void *state, kat_side side, size_t n,
                        const double *x, size_t ldx, double *f, size_t ldf);
    /* Optional fast fp32 path for the attention engine (else it goes through apply). */
    kat_status (*apply_f32)(const void *state, kat_side side, size_t n,
                            const float *x, size_t ldx, float *f, size_t ldf);
    /* Optional: the exact kernel value k(q, k) (else <phi(q), psi(k)>). */
    double (*score)(const void *state, const double *q, const double *k);
    /* Optional vector-Jacobian product: dx[i] += J_i^T g[i] with J_i = d feature / d x at
     * x[i]. Needed for the backward pass. */
    kat_status (*vjp)(const void *state, kat_side side, size_t n, const double *x, size_t ldx,
                      const double *g, size_t ldg, double *dx, size_t lddx);
    kat_status (*vjp_f32)(const void *state, kat_side side, size_t n, const float *x,
                          size_t ldx, const float *g, size_t ldg, float *dx, size_t lddx);
    /* Optional: frees state. */
    void (*destroy)(void *state);
    /* Optional, for an EXACT map whose kernel is a function of the dot product,
     * k(q, k) = g(q . k): replaces each of the n fp32 values z[i] = q . k by g(z[i]). Linear
     * attention then scores the pairs of a causal chunk with d-dimensional dots instead of
     * D-dimensional feature dots (kat_linear_intra DOT). */
    kat_status (*dot_kernel_f32)(const void *state, size_t n, float *z);
    /* Optional with dot_kernel_f32, for a kernel of transformed tokens, k(q, k) = g(t(q) . t(k)):
     * y[i] = t(x[i]) (d values) for i < n. NULL: the dot is of the tokens themselves. */
    kat_status (*dot_input_f32)(const void *state, kat_side side, size_t n, const float *x,
                                size_t ldx, float *y, size_t ldy);
} kat_featmap_ops;

typedef struct kat_featmap kat_featmap;

/* Wrap a user's ops (not copied: must outlive the map) and state (owned from now on: freed
 * with ops->destroy, also when this call fails). in_dim = d >= 1, out_dim = D >= 1. */
KAT_API kat_status kat_featmap_create(const kat_featmap_ops *ops, void *state, size_t in_dim,
                                      size_t out_dim, unsigned flags, kat_featmap **out);
KAT_API void kat_featmap_destroy(kat_featmap *fm);   /* NULL ok */

KAT_API size_t kat_featmap_in_dim(const kat_featmap *fm);
KAT_API size_t kat_featmap_out_dim(const kat_featmap *fm);
KAT_API unsigned kat_featmap_flags(const kat_featmap *fm);
KAT_API const char *kat_featmap_name(const kat_featmap *fm);
KAT_API int kat_featmap_has_vjp(const kat_featmap *fm);
KAT_API const kat_featmap_ops *kat_featmap_get_ops(const kat_featmap *fm);
KAT_API const void *kat_featmap_state(const kat_featmap *fm);

/* Validated calls. X is n x d, F is n x D; KAT_EINVAL on shape mismatch, KAT_EDOM on
 * non-finite input or output. */
KAT_API kat_status kat_featmap_apply(const kat_featmap *fm, kat_side side, const kat_dmat *X,
                                     kat_dmat *F);
/* fp32 rows (unvalidated data, for the engine's hot loop; shapes are the caller's job). */
KAT_API kat_status kat_featmap_apply_f32(const kat_featmap *fm, kat_side side, size_t n,
                                         const float *x, size_t ldx, float *f, size_t ldf);
KAT_API kat_status kat_featmap_vjp_f32(const kat_featmap *fm, kat_side side, size_t n, const float *x,
                                       size_t ldx, const float *g, size_t ldg, float *dx, size_t lddx);
/* k(q, k): ops->score if given, else the inner product of the features. */
KAT_API kat_status kat_featmap_score(const kat_featmap *fm, const double *q, const double *k,
                                     double *out);

#ifdef __cplusplus
}
#endif
#endif
