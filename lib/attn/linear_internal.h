/* Private to the linear-attention engine (lib/attn/linear*.c): the validated problem, the
 * per-thread workspace and the chunk-level building blocks shared by forward and backward. */
#ifndef KAT_LINEAR_INTERNAL_H
#define KAT_LINEAR_INTERNAL_H

#include <stddef.h>
#include "kat/linear.h"
#include "kernels/kernels.h"

/* One validated call. Tensors are the caller's views; sizes are checked to fit sgemm's int. */
typedef struct {
    const kat_featmap *fm;
    const kat_featmap_ops *ops;
    const void *mstate;
    int causal, normalize;
    kat_linear_intra intra;   /* resolved: FEATURES, SCORE or DOT */
    const kat_kernels *kern;  /* the readout's and the in-chunk scores' micro-kernels */
    size_t C;                 /* chunk */
    size_t B, H, nq, nk;
    size_t d, Df, dv, E;      /* E = dv + 1: [v | 1] */
    const kat_tensor *q, *k, *v, *state_in;
    const kat_tensor *o;
    /* backward only */
    const kat_tensor *o_in, *d_o;
    const kat_tensor *dq, *dk, *dvt;
} lin_problem;

/* Validate the arguments every entry point shares and fill p (fn names the caller in errors).
 * need_positive: refuse a map that is not POSITIVE when normalising. */
kat_status kat__lin_setup(const char *fn, const kat_featmap *fm, const kat_linear_opts *opts,
                     int need_positive, const kat_tensor *q, const kat_tensor *k,
                     const kat_tensor *v, const kat_tensor *state_in, lin_problem *p);

/* Scratch of one thread; every buffer is allocated before the first output is written. */
typedef struct {
    float *phq, *psk;   /* C x Df features of a query / key chunk */
    float *a;           /* C x C in-chunk scores, lower triangle */
    float *qx, *kx;     /* C x d: the map's dot inputs t(q), t(k) (intra DOT) */
    float *vbar;        /* C x E: [V_c | 1] */
    float *obar;        /* C x ldo: [numerator | denominator], ldo = E rounded up to 16 */
    float *s;           /* Df x E carried state (segment-private) */
    float *z;           /* Df: the state's denominator column, contiguous */
    float *ones;        /* C ones: the weights that sum key features into z */
    float *den;         /* C: the chunk's readout denominators phi(q) . z */
    const float **srow; /* Df row pointers into the state being read out */
    const float **vrow; /* C row pointers into vbar */
    double *xd, *fd;    /* fp64 round trip of maps without fp32 paths: C x d, C x Df */
    double *qd, *kd;    /* score path: the chunk's q and k rows in fp64, C x d each */
    double *gx;         /* vjp fp64 round trip: C x d */
    /* backward */
    float *dphi;        /* C x Df */
    float *df;          /* C x C */
    float *g;           /* C x E: [do / den | -(do . o) / den] */
    float *dvbar;       /* C x E */
    float *r;           /* Df x E reverse state */
    float *bden;        /* N: denominators of one sequence (backward) */
} lin_ws;

/* Bytes of one thread's scratch (a multiple of 64; 0 when the size overflows), and the
 * carving of that scratch from 64-byte aligned memory. */
size_t kat__lin_ws_bytes(const lin_problem *p, int backward);
void kat__lin_ws_carve(const lin_problem *p, int backward, unsigned char *mem, lin_ws *w);

/* How a pass runs: threads, whether OpenBLAS is held at one thread, and the workspace:
 * nt thread scratches of ws_bytes, then (the forward's final states, the backward's state
 * gradients) B H D_f (d_v + 1) floats. Fixed when a plan is made. */
typedef struct {
    int nt;
    int blas_single;
    size_t ws_bytes;
    size_t states_off;
    size_t bytes;
} lin_sched;

/* The schedule of a pass with `threads` threads (overflow: KAT_ERANGE). */
kat_status kat__lin_schedule(const char *fn, const lin_problem *p, int backward, int threads,
                        lin_sched *s);
/* Shapes and options without tensors: what a plan knows (fn names the caller in errors). */
kat_status kat__lin_configure(const char *fn, const kat_featmap *fm, const kat_linear_opts *opts,
                         int need_positive, size_t B, size_t H, size_t nq, size_t nk, size_t dq,
                         size_t dk, size_t dv, lin_problem *p);
/* The full checks of a forward / backward call (tensors, states, aliasing) into p. */
kat_status kat__lin_check_forward(const char *fn, const kat_featmap *fm, const kat_linear_opts *opts,
                             const kat_tensor *q, const kat_tensor *k, const kat_tensor *v,
                             const kat_tensor *o, const kat_tensor *state_in,
                             const kat_tensor *state_out, lin_problem *p);
kat_status kat__lin_check_backward(const char *fn, const kat_featmap *fm,
                              const kat_linear_opts *opts, const kat_tensor *q,
                              const kat_tensor *k, const kat_tensor *v, const kat_tensor *o,
                              const kat_tensor *d_o, const kat_tensor *dq, const kat_tensor *dk,
                              const kat_tensor *dv, const kat_tensor *state_in,
                              const kat_tensor *d_state_in, lin_problem *p);
/* Run a checked pass on `work` (s->bytes, 64-byte aligned): allocates nothing. */
kat_status kat__lin_forward_run(const lin_problem *p, const lin_sched *s,
                           const kat_tensor *state_out, unsigned char *work);
kat_status kat__lin_backward_run(const lin_problem *p, const lin_sched *s,
                            const kat_tensor *d_state_in, unsigned char *work);

/* Features of n rows of x (row stride ldx) into f (n x Df, ld Df), through apply_f32 or the
 * fp64 round trip. Not checked for finiteness: outputs and states are. */
kat_status kat__lin_features(const lin_problem *p, lin_ws *w, kat_side side, const float *x,
                        size_t ldx, size_t n, float *f);
/* dx[i] += J_i^T g[i] (g: n x Df, ld Df; dx row stride lddx). */
kat_status kat__lin_vjp(const lin_problem *p, lin_ws *w, kat_side side, const float *x, size_t ldx,
                   size_t n, const float *g, float *dx, size_t lddx);
/* In-chunk causal scores a[i][j] = f(q_i, k_j) for j <= i, 0 above (n x n, ld C); needs
 * w->phq and w->psk filled for the FEATURES path. */
kat_status kat__lin_scores(const lin_problem *p, lin_ws *w, const float *q, size_t ldq,
                      const float *k, size_t ldk, size_t n);
/* Row stride of w->obar: E rounded up to the kernels' 16-float accumulator rows. */
static inline size_t lin_ldo(const lin_problem *p) { return (p->E + 15) & ~(size_t)15; }
/* w->obar rows [0, n) = phi(Q_c) S + A [V_c | 1]: the readout of the state s (Df x E, its
 * last column, the denominators, taken from the contiguous copy w->z) by the query features
 * w->phq plus, when a is not NULL, the in-chunk scores a (n x n, ld C) times w->vbar. Through
 * the accumulation and row-dot kernels: nothing is packed. */
void kat__lin_readout(const lin_problem *p, lin_ws *w, size_t n, const float *s, const float *a);
/* w->z = the last column of s (Df x E). */
void kat__lin_load_z(const lin_problem *p, lin_ws *w, const float *s);
/* w->vbar = [V rows | 1] for n rows. */
void kat__lin_load_vbar(const lin_problem *p, lin_ws *w, const float *v, size_t ldv, size_t n);

/* Row pointers of the views. */
static inline const float *lin_row(const kat_tensor *t, size_t item, size_t H, size_t n)
{
    return kat_tensor_row(t, item / H, item % H, n);
}

/* The forward on chunk range [c_lo, c_hi) of one (batch, head) item. s: the state at c_lo
 * (Df x E), updated in place to the state at c_hi. full = 0: only the state (no outputs). */
kat_status kat__lin_fwd_causal(const lin_problem *p, lin_ws *w, size_t item, size_t c_lo, size_t c_hi,
                          float *s, int full);
/* Non-causal: s += sum over keys [k_lo, k_hi) of psi(k)[v | 1]^T. */
kat_status kat__lin_fwd_keys(const lin_problem *p, lin_ws *w, size_t item, size_t k_lo, size_t k_hi,
                        float *s);
/* Non-causal: outputs of queries [q_lo, q_hi) from the full state s. */
kat_status kat__lin_fwd_queries(const lin_problem *p, lin_ws *w, size_t item, size_t q_lo,
                           size_t q_hi, const float *s);

/* Backward pieces (linear_backward.c). */
/* The whole backward of one item: dq, dk, dv written; ds0 (D x E, may be NULL) receives
 * dL/dstate_in. */
kat_status kat__lin_bwd_item(const lin_problem *p, lin_ws *w, size_t item, float *ds0);

/* s (D x E, contiguous) = the item's state_in, or zeros without one. */
void kat__lin_load_state(const lin_problem *p, size_t item, float *s);

/* The sgemm calls, row-major: C = alpha op(A) op(B) + beta C. */
void kat__lin_gemm(int ta, int tb, size_t m, size_t n, size_t k, const float *a, size_t lda,
              const float *b, size_t ldb, float beta, float *c, size_t ldc);

#endif
