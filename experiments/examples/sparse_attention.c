/* Dynamic sparse attention from C, through the public API only: hash buckets from angular LSH,
 * QK-drop and a causal sliding window, each run forward and backward, with the fraction of the
 * dense causal engine's tile pairs it visits. Each output is checked on a few rows against the
 * definition (a softmax over the keys the pattern allows, in double). Exit status 0 when all
 * agree.
 * Build and run, with kat installed (docs/user-guide.md, "Install"):
 *     cc sparse_attention.c -o sparse_attention $(pkg-config --cflags --libs kat)
 *     ./sparse_attention
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "kat/kat.h"

enum { B = 1, H = 4, N = 1000, D = 32 };

/* The allowed-key rule of each example, for the check. */
typedef int (*allowed_fn)(const void *ctx, size_t h, size_t i, size_t j);

typedef struct {
    const int32_t *qb, *kb;
} hash_ctx;

static int hash_allowed(const void *c, size_t h, size_t i, size_t j)
{
    const hash_ctx *x = c;
    return j <= i && x->qb[h * N + i] == x->kb[h * N + j];
}

static int drop_allowed(const void *c, size_t h, size_t i, size_t j)
{
    (void)c, (void)h;
    return j <= i && j % 2 == 0;   /* every odd key dropped */
}

static int window_allowed(const void *c, size_t h, size_t i, size_t j)
{
    (void)c, (void)h;
    return j <= i && i - j < 64;
}

/* Largest |o - softmax(q k^T / sqrt(D)) v| over a few rows, in double. */
static double check_rows(const float *q, const float *k, const float *v, const float *o,
                         allowed_fn allowed, const void *ctx)
{
    double worst = 0.0;
    for (size_t h = 0; h < H; h++)
        for (size_t i = 0; i < N; i += 97) {
            double mx = -INFINITY, sum = 0.0, acc[D] = {0};
            const float *qi = q + (h * N + i) * D;
            for (int pass = 0; pass < 2; pass++)
                for (size_t j = 0; j < N; j++) {
                    if (!allowed(ctx, h, i, j))
                        continue;
                    double s = 0.0;
                    for (size_t d = 0; d < D; d++)
                        s += (double)qi[d] * k[(h * N + j) * D + d];
                    s /= sqrt((double)D);
                    if (pass == 0) {
                        mx = s > mx ? s : mx;
                        continue;
                    }
                    double p = exp(s - mx);
                    sum += p;
                    for (size_t d = 0; d < D; d++)
                        acc[d] += p * v[(h * N + j) * D + d];
                }
            for (size_t d = 0; d < D; d++) {
                double want = sum > 0 ? acc[d] / sum : 0.0;
                double err = fabs(want - o[(h * N + i) * D + d]);
                worst = err > worst ? err : worst;
            }
        }
    return worst;
}

/* Plan, forward, backward, statistics and the check for one pattern and its per-call args. */
static int run(const char *name, const kat_attn_desc *desc, const kat_attn_pattern *pattern,
               const kat_attn_args *args, float *buf[9], allowed_fn allowed, const void *ctx)
{
    kat_tensor q = kat_tensor_view(buf[0], B, H, N, D), k = kat_tensor_view(buf[1], B, H, N, D);
    kat_tensor v = kat_tensor_view(buf[2], B, H, N, D), o = kat_tensor_view(buf[3], B, H, N, D);
    kat_tensor lse = kat_tensor_view(buf[4], B, H, N, 1);
    kat_tensor dout = kat_tensor_view(buf[5], B, H, N, D), dq = kat_tensor_view(buf[6], B, H, N, D);
    kat_tensor dk = kat_tensor_view(buf[7], B, H, N, D), dv = kat_tensor_view(buf[8], B, H, N, D);
    kat_attn_plan *plan = NULL;
    kat_status st = kat_attn_plan_create(desc, pattern, &plan);
    if (!st)
        st = kat_attn_forward(plan, args, &q, &k, &v, &o, &lse, NULL);
    if (!st)
        st = kat_attn_backward(plan, args, &q, &k, &v, &o, &lse, &dout, &dq, &dk, &dv, NULL);
    kat_sparse_stats s;
    if (!st)
        st = kat_attn_plan_stats(plan, args, &s);
    kat_attn_plan_destroy(plan);
    if (st) {
        fprintf(stderr, "%s: %s: %s\n", name, kat_strerror(st), kat_last_error());
        return 0;
    }
    double err = check_rows(buf[0], buf[1], buf[2], buf[3], allowed, ctx);
    printf("%-22s tile pairs %6zu of the dense causal %6zu (%4.1f%%), %zu masked; "
           "max error on checked rows %.2g\n",
           name, s.tile_pairs, s.dense_pairs,
           100.0 * (double)s.tile_pairs / (double)s.dense_pairs, s.masked_pairs, err);
    return err < 1e-4;
}

int main(void)
{
    float *buf[9];
    kat_rng *rng;
    if (kat_rng_create(2024, &rng))
        return 1;
    for (int i = 0; i < 9; i++) {
        buf[i] = malloc(sizeof(float) * B * H * N * D);
        if (!buf[i])
            return 1;
        for (size_t e = 0; e < (size_t)B * H * N * D; e++)
            buf[i][e] = (float)kat_rng_gaussian(rng, 1.0);
    }
    kat_rng_destroy(rng);
    kat_attn_desc desc = {B, H, H, N, N, D, KAT_SPARSE_CAUSAL, 0, D};   /* scale 1/sqrt(D) */
    kat_tensor q = kat_tensor_view(buf[0], B, H, N, D), k = kat_tensor_view(buf[1], B, H, N, D);
    int ok = 1;

    /* 1. Hash: 8 LSH buckets; a query sees the earlier keys of its bucket. */
    int32_t *qb = malloc(sizeof(int32_t) * B * H * N), *kb = malloc(sizeof(int32_t) * B * H * N);
    kat_status st = kat_sparse_lsh_buckets(&q, 1, 8, 7, qb);
    if (!st)
        st = kat_sparse_lsh_buckets(&k, 1, 8, 7, kb);
    kat_attn_pattern hash = {.kind = KAT_ATTN_HASH, .buckets = 8};
    kat_attn_args hargs = {.q_buckets = qb, .k_buckets = kb};
    hash_ctx hc = {qb, kb};
    ok &= !st && run("hash, 8 LSH buckets", &desc, &hash, &hargs, buf, hash_allowed, &hc);

    /* 2. QK-drop: keep every query and the even keys. */
    uint8_t *keep = malloc((size_t)B * H * N);
    for (size_t i = 0; i < (size_t)B * H * N; i++)
        keep[i] = i % 2 == 0;
    kat_sparse_keep kk = {0};
    st = kat_sparse_keep_from_mask(keep, B, H, N, &kk);
    kat_attn_pattern drop = {.kind = KAT_ATTN_QKDROP};
    kat_attn_args dargs = {.k_keep = &kk};
    ok &= !st && run("QK-drop, odd keys", &desc, &drop, &dargs, buf, drop_allowed, NULL);
    kat_sparse_keep_free(&kk);

    /* 3. A causal sliding window of 64 keys (block lists built once, with the plan). */
    kat_attn_pattern window;
    st = kat_attn_pattern_parse("window:64", &window);
    ok &= !st && run("causal window of 64", &desc, &window, NULL, buf, window_allowed, NULL);
    if (st)
        fprintf(stderr, "%s: %s\n", kat_strerror(st), kat_last_error());

    free(qb), free(kb), free(keep);
    for (int i = 0; i < 9; i++)
        free(buf[i]);
    return ok ? 0 : 1;
}
