/* A kernel of your own, end to end, through the public API only.
 *
 * The kernel f(q, k) = 1 + sum_i max(q_i k_i, 0) is no built-in. It factors exactly as
 * phi(q) . psi(k) with phi(x) = psi(x) = [1, relu(x), relu(-x)] (D = 2d + 1): a product q_i k_i
 * is positive exactly when both have the same sign. Every value is >= 1, so normalised
 * attention with it is safe by construction. The program:
 *   1. writes the map as a kat_featmap vtable: apply (required), score and vjp (optional);
 *   2. measures the numerical rank of f(Q K^T) with the rank probe: it is at most D, whatever
 *      the number of points, which is why attention with f is subquadratic;
 *   3. runs causal linear attention with it and checks it against the fp64 quadratic
 *      reference (forward and gradients);
 *   4. prefills half a sequence and decodes the rest one token at a time from the state.
 * Exit status 0 when every check holds.
 * Build and run, with kat installed (docs/user-guide.md, "Install"):
 *     cc custom_kernel.c -o custom_kernel $(pkg-config --cflags --libs kat)
 *     ./custom_kernel
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kat/kat.h"
#include "kat/rank.h"

typedef struct {
    size_t d;
} relu_pair_map;

/* f[i] = [1, relu(x[i]), relu(-x[i])] for n rows. */
static kat_status relu_pair_apply(const void *state, kat_side side, size_t n, const double *x,
                                  size_t ldx, double *f, size_t ldf)
{
    size_t d = ((const relu_pair_map *)state)->d;
    for (size_t i = 0; i < n; i++) {
        const double *xi = x + i * ldx;
        double *fi = f + i * ldf;
        fi[0] = 1.0;
        for (size_t a = 0; a < d; a++) {
            fi[1 + a] = xi[a] > 0.0 ? xi[a] : 0.0;
            fi[1 + d + a] = xi[a] < 0.0 ? -xi[a] : 0.0;
        }
    }
    return KAT_OK;
}

/* The exact kernel, for the rank probe's cross-check and the engine's in-chunk scores. */
static double relu_pair_score(const void *state, const double *q, const double *k)
{
    size_t d = ((const relu_pair_map *)state)->d;
    double s = 1.0;
    for (size_t a = 0; a < d; a++)
        s += q[a] * k[a] > 0.0 ? q[a] * k[a] : 0.0;
    return s;
}

/* dx += J^T g: d relu(x)/dx = [x > 0], d relu(-x)/dx = -[x < 0]. */
static kat_status relu_pair_vjp(const void *state, kat_side side, size_t n, const double *x,
                                size_t ldx, const double *g, size_t ldg, double *dx, size_t lddx)
{
    size_t d = ((const relu_pair_map *)state)->d;
    for (size_t i = 0; i < n; i++)
        for (size_t a = 0; a < d; a++) {
            double xa = x[i * ldx + a];
            dx[i * lddx + a] += xa > 0.0 ? g[i * ldg + 1 + a] : xa < 0.0 ? -g[i * ldg + 1 + d + a]
                                                                         : 0.0;
        }
    return KAT_OK;
}

static void relu_pair_free(void *state) { free(state); }

static const kat_featmap_ops relu_pair_ops = {
    .name = "relu_pair",
    .apply = relu_pair_apply,
    .score = relu_pair_score,
    .vjp = relu_pair_vjp,
    .destroy = relu_pair_free,
};

static int failures;

static void check(int ok, const char *what, double value, double bound)
{
    printf("%-52s %10.3g  (bound %.3g)  %s\n", what, value, bound, ok ? "ok" : "FAILED");
    failures += !ok;
}

static float *gaussian(kat_rng *rng, size_t n, double sigma)
{
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = (float)kat_rng_gaussian(rng, sigma);
    return x;
}

static double rel_err(const float *x, const double *ref, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        num += (x[i] - ref[i]) * (x[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return sqrt(num / den);
}

int main(void)
{
    const size_t d = 16, D = 2 * d + 1, N = 1000, dv = 16, H = 2;
    kat_status st;

    /* 1. the map: the library owns the state from here on */
    relu_pair_map *state = malloc(sizeof *state);
    state->d = d;
    kat_featmap *fm;
    if ((st = kat_featmap_create(&relu_pair_ops, state, d, D,
                                 KAT_FEATMAP_POSITIVE | KAT_FEATMAP_EXACT, &fm))) {
        fprintf(stderr, "featmap_create: %s\n", kat_last_error());
        return 1;
    }
    kat_rng *rng;
    kat_rng_create(1, &rng);

    /* 2. the rank of f(Q K^T) on 400 x 400 points: at most D = 2d + 1 = 33 */
    size_t n = 400;
    kat_dmat Q, K;
    kat_dmat_alloc(n, d, &Q);
    kat_dmat_alloc(n, d, &K);
    for (size_t i = 0; i < n * d; i++) {
        Q.data[i] = kat_rng_gaussian(rng, 1.0);
        K.data[i] = kat_rng_gaussian(rng, 1.0);
    }
    kat_rank_opts ropts;
    kat_rank_opts_init(&ropts);
    kat_rank_result res;
    if ((st = kat_rank_probe_featmap(fm, &Q, &K, &ropts, &res))) {
        fprintf(stderr, "rank probe: %s\n", kat_last_error());
        return 1;
    }
    printf("rank of f(QK^T), %zu x %zu points in R^%zu: %zu (features: %zu)\n", n, n, d,
           res.rank, D);
    check(res.rank <= D && res.rank > d, "numerical rank (within (d, D])", (double)res.rank,
          (double)D);
    kat_rank_result_free(&res);
    kat_dmat_free(&Q);
    kat_dmat_free(&K);

    /* 3. causal linear attention, forward and backward, against fp64 */
    float *qd = gaussian(rng, H * N * d, 0.5), *kd = gaussian(rng, H * N * d, 0.5);
    float *vd = gaussian(rng, H * N * dv, 1.0), *dod = gaussian(rng, H * N * dv, 1.0);
    float *od = calloc(H * N * dv, sizeof(float)), *o2d = calloc(H * N * dv, sizeof(float));
    float *dqd = calloc(H * N * d, sizeof(float)), *dkd = calloc(H * N * d, sizeof(float));
    float *dvd = calloc(H * N * dv, sizeof(float));
    kat_tensor q = kat_tensor_view(qd, 1, H, N, d), k = kat_tensor_view(kd, 1, H, N, d);
    kat_tensor v = kat_tensor_view(vd, 1, H, N, dv), o = kat_tensor_view(od, 1, H, N, dv);
    kat_tensor d_o = kat_tensor_view(dod, 1, H, N, dv), dq = kat_tensor_view(dqd, 1, H, N, d);
    kat_tensor dk = kat_tensor_view(dkd, 1, H, N, d), dvt = kat_tensor_view(dvd, 1, H, N, dv);
    kat_linear_opts opts = {.causal = 1, .chunk = 64};
    double *ref = malloc(H * N * dv * sizeof(double));
    double *gq = malloc(H * N * d * sizeof(double)), *gk = malloc(H * N * d * sizeof(double));
    double *gv = malloc(H * N * dv * sizeof(double));
    if ((st = kat_linear_forward(fm, &opts, &q, &k, &v, &o, NULL, NULL)) ||
        (st = kat_linear_reference(fm, &opts, 1, 64, &q, &k, &v, NULL, ref)) ||
        (st = kat_linear_backward(fm, &opts, &q, &k, &v, &o, &d_o, &dq, &dk, &dvt, NULL, NULL)) ||
        (st = kat_linear_reference_backward(fm, &opts, &q, &k, &v, &d_o, gq, gk, gv))) {
        fprintf(stderr, "linear attention: %s: %s\n", kat_strerror(st), kat_last_error());
        return 1;
    }
    /* fp32 bound: a few roundings per term of a chunk-length sum plus a D-long dot */
    double bound = 8 * 5.96e-8 * (64 + D);
    check(rel_err(od, ref, H * N * dv) <= bound, "forward vs the exact kernel in fp64",
          rel_err(od, ref, H * N * dv), bound);
    check(rel_err(dqd, gq, H * N * d) <= bound, "dq vs fp64", rel_err(dqd, gq, H * N * d), bound);
    check(rel_err(dkd, gk, H * N * d) <= bound, "dk vs fp64", rel_err(dkd, gk, H * N * d), bound);
    check(rel_err(dvd, gv, H * N * dv) <= bound, "dv vs fp64", rel_err(dvd, gv, H * N * dv),
          bound);
    /* the same with the map's score for the in-chunk part */
    kat_linear_opts sopts = opts;
    sopts.intra = KAT_LINEAR_INTRA_SCORE;
    kat_tensor o2 = kat_tensor_view(o2d, 1, H, N, dv);
    if ((st = kat_linear_forward(fm, &sopts, &q, &k, &v, &o2, NULL, NULL)))
        return fprintf(stderr, "%s\n", kat_last_error()), 1;
    check(rel_err(o2d, ref, H * N * dv) <= bound, "forward with score() inside chunks",
          rel_err(o2d, ref, H * N * dv), bound);

    /* 4. prefill 600 tokens, then decode the last 400 one at a time from the state */
    const size_t P = 600;
    float *sd = calloc(H * D * (dv + 1), sizeof(float));
    kat_tensor s = kat_tensor_view(sd, 1, H, D, dv + 1);
    kat_tensor qp = q, kp = k, vp = v, op = o2;
    qp.N = kp.N = vp.N = op.N = P;
    memset(o2d, 0, H * N * dv * sizeof(float));
    if ((st = kat_linear_forward(fm, &opts, &qp, &kp, &vp, &op, NULL, &s)))
        return fprintf(stderr, "%s\n", kat_last_error()), 1;
    for (size_t t = P; t < N; t++) {
        kat_tensor qt = q, kt = k, vt = v, ot = o2;
        qt.N = kt.N = vt.N = ot.N = 1;
        qt.data += t * d, kt.data += t * d, vt.data += t * dv, ot.data += t * dv;
        if ((st = kat_linear_forward(fm, &opts, &qt, &kt, &vt, &ot, &s, &s)))
            return fprintf(stderr, "%s\n", kat_last_error()), 1;
    }
    check(rel_err(o2d, ref, H * N * dv) <= bound, "prefill + token-by-token decoding",
          rel_err(o2d, ref, H * N * dv), bound);

    kat_featmap_destroy(fm);
    kat_rng_destroy(rng);
    free(qd), free(kd), free(vd), free(dod), free(od), free(o2d), free(dqd), free(dkd);
    free(dvd), free(ref), free(gq), free(gk), free(gv), free(sd);
    printf("%s\n", failures ? "custom kernel: FAILED" : "custom kernel: all checks passed");
    return failures ? 1 : 0;
}
