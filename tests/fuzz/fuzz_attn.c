/* libFuzzer harness for the attention entry points: the dense flash engine (plan, forward,
 * backward with and without the logsumexp, caller's or allocated workspace, each ISA's
 * kernels), the unfused baseline, the sparse QK-drop layout on strided views, and the linear
 * engine. The input picks the shapes (grouped-query heads, N and M across tile boundaries,
 * empty ones), the memory layout (contiguous, [B, N, H, D], padded rows and heads), causality,
 * the scale and a seed for the data; a last mode corrupts one argument (NaN or Inf in an input,
 * a bad stride, an output overlapping an input, a mismatched shape, a misaligned workspace).
 *
 * Accepted calls must agree with the fp64 masked attention of tests/masked_attention.h within
 * its bound (twice the naive fp32 error plus the a-priori floor), and rows that see no key
 * must come out exactly 0 with lse = -inf. Refused calls must return an error with a message
 * and leave every output and input byte unchanged. Sparse patterns in depth are
 * fuzz_sparse.c's job. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../masked_attention.h"
#include "../sparse_plan.h"
#include "fuzz_bytes.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    kat_set_num_threads(1);   /* the input asks for 2 threads now and then */
    return 0;
}

/* ---- strided views over owned buffers --------------------------------------------------- */

typedef struct {
    kat_tensor t;
    size_t len;   /* floats in the buffer */
} view;

static view make_view(size_t B, size_t H, size_t N, size_t D, int layout, unsigned pad)
{
    view v;
    kat_tensor *t = &v.t;
    t->B = B, t->H = H, t->N = N, t->D = D;
    if (layout == 1) {   /* a [B, N, H, D] buffer */
        t->sn = H * D, t->sh = D, t->sb = N * H * D;
        v.len = B * N * H * D;
    } else if (layout == 2) {   /* padded rows and heads */
        t->sn = D + 1 + pad % 5, t->sh = N * t->sn + pad % 3, t->sb = H * t->sh + pad % 7;
        v.len = B * t->sb;
    } else {
        t->sn = D, t->sh = N * D, t->sb = H * N * D;
        v.len = B * H * N * D;
    }
    t->data = xcalloc(v.len + 1, sizeof(float));
    for (size_t i = 0; i <= v.len; i++)
        t->data[i] = -777.0f;   /* padding that must never leak or be written */
    return v;
}

static void gather(const kat_tensor *t, float *out)
{
    size_t i = 0;
    for (size_t b = 0; b < t->B; b++)
        for (size_t h = 0; h < t->H; h++)
            for (size_t n = 0; n < t->N; n++)
                for (size_t e = 0; e < t->D; e++)
                    out[i++] = kat_tensor_row(t, b, h, n)[e];
}

static void scatter(const float *in, kat_tensor *t)
{
    size_t i = 0;
    for (size_t b = 0; b < t->B; b++)
        for (size_t h = 0; h < t->H; h++)
            for (size_t n = 0; n < t->N; n++)
                for (size_t e = 0; e < t->D; e++)
                    kat_tensor_row(t, b, h, n)[e] = in[i++];
}

/* ---- one problem -------------------------------------------------------------------------- */

typedef struct {
    prob p;   /* contiguous copies and the mask */
    view q, k, v, dout, o, lse, dq, dk, dv;
} problem;

static void problem_free(problem *x)
{
    view *all[] = {&x->q, &x->k, &x->v, &x->dout, &x->o, &x->lse, &x->dq, &x->dk, &x->dv};
    for (int i = 0; i < 9; i++)
        free(all[i]->t.data);
    prob_free(&x->p);
}

static void read_problem(bytes *in, problem *x, int allow_strict)
{
    size_t B = 1 + take(in) % 2, Hkv = 1 + take(in) % 3, H = Hkv * (1 + take(in) % 3);
    /* Tiles are 16 (AVX-512) or 8 rows: sizes up to 47 cross several tile edges. */
    size_t N = take(in) % 48, M = take(in) % 48;
    unsigned dsel = take(in);
    size_t D = dsel == 255 ? 256 : 1 + dsel % 24;
    int causal = (int)(take(in) % (allow_strict ? 3 : 2));
    unsigned ssel = take(in);
    double scale = ssel % 4 == 0 ? 0.0 : ssel % 4 == 1 ? (1.0 + ssel / 64.0) / sqrt((double)D)
                                       : ssel % 4 == 2 ? -0.3 : 2.0;
    prob_init(&x->p, B, H, Hkv, N, M, D, causal, scale);
    int layout = (int)(take(in) % 3);
    unsigned pad = take(in);
    x->q = make_view(B, H, N, D, layout, pad);
    x->k = make_view(B, Hkv, M, D, layout, pad + 1);
    x->v = make_view(B, Hkv, M, D, (layout + 1) % 3, pad + 2);
    x->dout = make_view(B, H, N, D, layout, pad + 3);
    x->o = make_view(B, H, N, D, (layout + 2) % 3, pad + 4);
    x->lse = make_view(B, H, N, 1, layout, pad + 5);
    x->dq = make_view(B, H, N, D, layout, pad + 6);
    x->dk = make_view(B, Hkv, M, D, layout, pad + 7);
    x->dv = make_view(B, Hkv, M, D, (layout + 1) % 3, pad + 8);
    /* Data from a seed: bounded Gaussians, q's spread sets how peaked the softmax is. */
    kat_rng *rng;
    uint64_t seed = (uint64_t)take16(in) << 16 | take16(in);
    if (kat_rng_create(seed, &rng) != KAT_OK)
        abort();
    const double spread[4] = {0.5, 1.0, 2.0, 4.0};
    double sq = spread[take(in) % 4];
    for (size_t i = 0; i < nq_(&x->p); i++)
        x->p.q[i] = (float)kat_rng_gaussian(rng, sq), x->p.dout[i] = (float)kat_rng_gaussian(rng, 1);
    for (size_t i = 0; i < nk_(&x->p); i++)
        x->p.k[i] = (float)kat_rng_gaussian(rng, 1), x->p.v[i] = (float)kat_rng_gaussian(rng, 1);
    kat_rng_destroy(rng);
    scatter(x->p.q, &x->q.t), scatter(x->p.k, &x->k.t), scatter(x->p.v, &x->v.t);
    scatter(x->p.dout, &x->dout.t);
}

/* Copies of every buffer, to prove a refused call wrote nothing. */
typedef struct {
    float *copy[9];
} backup;

static void backup_take(backup *bk, problem *x)
{
    view *all[] = {&x->q, &x->k, &x->v, &x->dout, &x->o, &x->lse, &x->dq, &x->dk, &x->dv};
    for (int i = 0; i < 9; i++) {
        bk->copy[i] = xcalloc(all[i]->len + 1, sizeof(float));
        memcpy(bk->copy[i], all[i]->t.data, (all[i]->len + 1) * sizeof(float));
    }
}

static void backup_expect_same(backup *bk, problem *x)
{
    view *all[] = {&x->q, &x->k, &x->v, &x->dout, &x->o, &x->lse, &x->dq, &x->dk, &x->dv};
    for (int i = 0; i < 9; i++) {
        CHECK(memcmp(bk->copy[i], all[i]->t.data, (all[i]->len + 1) * sizeof(float)) == 0);
        free(bk->copy[i]);
    }
}

static kat_attn_desc desc_of(const prob *p)
{
    return (kat_attn_desc){p->B, p->H, p->Hkv, p->N, p->M, p->D, p->causal, p->scale, 0};
}

static void *aligned_work(size_t bytes)
{
    void *w = aligned_alloc(64, (bytes + 64) / 64 * 64);
    if (!w)
        abort();
    return w;
}

/* Gather the outputs and compare them with the reference. */
static void check_outputs(problem *x, int with_lse, int with_grads)
{
    float *o = xcalloc(nq_(&x->p), 4), *lse = xcalloc(nl_(&x->p), 4);
    float *dq = xcalloc(nq_(&x->p), 4), *dk = xcalloc(nk_(&x->p), 4), *dv = xcalloc(nk_(&x->p), 4);
    gather(&x->o.t, o), gather(&x->lse.t, lse);
    gather(&x->dq.t, dq), gather(&x->dk.t, dk), gather(&x->dv.t, dv);
    ma_expect_all(&x->p, o, with_lse ? lse : NULL, with_grads ? dq : NULL, dk, dv, "fuzz_attn");
    free(o), free(lse), free(dq), free(dk), free(dv);
}

static void run_dense(bytes *in)
{
    problem x;
    read_problem(in, &x, 0);
    kat_arch initial = kat_arch_get(), arch = (kat_arch)(take(in) % KAT_ARCH_COUNT);
    if (kat_arch_supported(arch))
        kat_arch_set(arch);
    int use_work = take(in) & 1, bwd_lse = take(in) & 1;
    kat_attn_desc d = desc_of(&x.p);
    kat_attn_plan *plan;
    kat_status st = kat_attn_plan_create(&d, NULL, &plan);
    CHECK(st == KAT_OK);
    void *fw = use_work ? aligned_work(kat_attn_workspace_size(plan, KAT_ATTN_FORWARD)) : NULL;
    void *bw = use_work ? aligned_work(kat_attn_workspace_size(plan, KAT_ATTN_BACKWARD)) : NULL;
    CHECK(kat_attn_forward(plan, NULL, &x.q.t, &x.k.t, &x.v.t, &x.o.t, &x.lse.t, fw) == KAT_OK);
    CHECK(kat_attn_backward(plan, NULL, &x.q.t, &x.k.t, &x.v.t, &x.o.t, bwd_lse ? &x.lse.t : NULL,
                            &x.dout.t, &x.dq.t, &x.dk.t, &x.dv.t, bw) == KAT_OK);
    check_outputs(&x, 1, 1);
    free(fw), free(bw);
    kat_attn_plan_destroy(plan);
    kat_arch_set(initial);
    problem_free(&x);
}

static void run_unfused(bytes *in)
{
    problem x;
    read_problem(in, &x, 0);
    kat_attn_desc d = desc_of(&x.p);
    CHECK(kat_attn_unfused_forward(&d, &x.q.t, &x.k.t, &x.v.t, &x.o.t, &x.lse.t) == KAT_OK);
    CHECK(kat_attn_unfused_backward(&d, &x.q.t, &x.k.t, &x.v.t, &x.o.t, &x.dout.t, &x.dq.t,
                                    &x.dk.t, &x.dv.t) == KAT_OK);
    check_outputs(&x, 1, 1);
    problem_free(&x);
}

/* QK-drop on strided views: keep masks from the input bytes. */
static void run_sparse_qk(bytes *in)
{
    problem x;
    read_problem(in, &x, 1);
    prob *p = &x.p;
    uint8_t *qm = xcalloc(nl_(p), 1), *km = xcalloc(p->B * p->Hkv * p->M, 1);
    unsigned density = take(in);
    for (size_t i = 0; i < nl_(p); i++)
        qm[i] = (take(in) ^ (unsigned)i) % 256 >= density / 2;
    for (size_t i = 0; i < p->B * p->Hkv * p->M; i++)
        km[i] = (take(in) ^ (unsigned)(3 * i)) % 256 >= density / 2;
    size_t g = p->H / p->Hkv;
    for (size_t b = 0; b < p->B; b++)
        for (size_t h = 0; h < p->H; h++)
            for (size_t i = 0; i < p->N; i++)
                for (size_t j = 0; j < p->M; j++) {
                    uint8_t *a = &p->allowed[((b * p->H + h) * p->N + i) * p->M + j];
                    *a = *a && qm[(b * p->H + h) * p->N + i] && km[(b * p->Hkv + h / g) * p->M + j];
                }
    kat_sparse_keep qk, kk;
    CHECK(kat_sparse_keep_from_mask(qm, p->B, p->H, p->N, &qk) == KAT_OK);
    CHECK(kat_sparse_keep_from_mask(km, p->B, p->Hkv, p->M, &kk) == KAT_OK);
    kat_attn_desc d = desc_of(p);
    sp_handle *L;
    CHECK(sp_qk(&d, &qk, &kk, &L) == KAT_OK);
    CHECK(sp_forward(L, &x.q.t, &x.k.t, &x.v.t, &x.o.t, &x.lse.t, NULL) == KAT_OK);
    CHECK(sp_backward(L, &x.q.t, &x.k.t, &x.v.t, &x.o.t, &x.lse.t, &x.dout.t, &x.dq.t,
                              &x.dk.t, &x.dv.t, NULL) == KAT_OK);
    check_outputs(&x, 1, 1);
    sp_handle_destroy(L);
    kat_sparse_keep_free(&qk), kat_sparse_keep_free(&kk);
    free(qm), free(km);
    problem_free(&x);
}

/* One corrupted argument: the call must refuse it and write nothing. */
static void run_refused(bytes *in)
{
    problem x;
    read_problem(in, &x, 0);
    prob *p = &x.p;
    kat_attn_desc d = desc_of(p);
    kat_attn_plan *plan;
    CHECK(kat_attn_plan_create(&d, NULL, &plan) == KAT_OK);
    unsigned what = take(in), where = take16(in);
    static const float bad[3] = {NAN, INFINITY, -INFINITY};
    kat_tensor q = x.q.t, k = x.k.t, v = x.v.t, o = x.o.t, dout = x.dout.t;
    void *work = NULL;
    switch (what % 8) {
    case 0: case 1: case 2: {   /* a non-finite value in q, k or v */
        kat_tensor *t = what % 8 == 0 ? &q : what % 8 == 1 ? &k : &v;
        size_t numel = kat_tensor_numel(t);
        if (numel == 0)
            goto done;
        size_t e = where % numel, row = e / t->D;
        size_t n = row % t->N, h = row / t->N % t->H, b = row / t->N / t->H;
        kat_tensor_row(t, b, h, n)[e % t->D] = bad[what / 8 % 3];
        break;
    }
    case 3:   /* rows overlapping in memory: a stride below D */
        if (q.D < 2 || q.N < 2)
            goto done;
        q.sn = q.D - 1;
        break;
    case 4:   /* the output on top of an input */
        if (kat_tensor_numel(&q) == 0)
            goto done;
        o.data = q.data, o.sn = q.sn, o.sh = q.sh, o.sb = q.sb;
        break;
    case 5:   /* a shape that does not match the plan */
        o.N += 1 + where % 3;
        break;
    case 6:   /* a misaligned workspace */
        work = (char *)aligned_work(kat_attn_workspace_size(plan, KAT_ATTN_FORWARD) + 64) + 4;
        break;
    default:   /* a NaN in dout, for the backward */
        if (kat_tensor_numel(&dout) == 0)
            goto done;
        dout.data[0] = NAN;   /* element (0, 0, 0, 0) */
        break;
    }
    backup bk;
    backup_take(&bk, &x);
    kat_clear_error();
    kat_status st = what % 8 == 7
                        ? kat_attn_backward(plan, NULL, &q, &k, &v, &x.o.t, NULL, &dout, &x.dq.t,
                                            &x.dk.t, &x.dv.t, NULL)
                        : kat_attn_forward(plan, NULL, &q, &k, &v, &o, &x.lse.t, work);
    CHECK(st != KAT_OK);
    CHECK(kat_last_error()[0] != '\0');
    CHECK(st == KAT_EINVAL || st == KAT_EDOM || st == KAT_ERANGE);
    backup_expect_same(&bk, &x);
    if (work)
        free((char *)work - 4);
done:
    kat_attn_plan_destroy(plan);
    problem_free(&x);
}

/* The linear engine against its fp64 reference (a positive map: o is a weighted mean of v). */
static void run_linear(bytes *in)
{
    size_t B = 1 + take(in) % 2, H = 1 + take(in) % 3, N = take(in) % 70, d = 1 + take(in) % 4;
    size_t dv = 1 + take(in) % 6;
    unsigned msel = take(in);
    kat_linear_opts opts = {(int)(take(in) & 1), 0, take(in) % 70,
                            (kat_linear_intra)(take(in) % 2)};
    size_t Nk = opts.causal ? N : take(in) % 70;
    kat_featmap *fm;
    kat_status st = msel % 3 == 0   ? kat_featmap_elu1_create(d, &fm)
                    : msel % 3 == 1 ? kat_featmap_taylor_create(d, 2, 0, &fm)
                                    : kat_featmap_favor_create(d, 8 + msel % 24, 0.5,
                                                               KAT_FAVOR_STABLE, msel, &fm);
    CHECK(st == KAT_OK);
    kat_rng *rng;
    if (kat_rng_create(take16(in), &rng) != KAT_OK)
        abort();
    float *q = xcalloc(B * H * N * d, 4), *k = xcalloc(B * H * Nk * d, 4);
    float *v = xcalloc(B * H * Nk * dv, 4), *o = xcalloc(B * H * N * dv, 4);
    double *ref = xcalloc(B * H * N * dv, sizeof(double)), vmax = 0;
    for (size_t i = 0; i < B * H * N * d; i++)
        q[i] = (float)kat_rng_gaussian(rng, 0.7);
    for (size_t i = 0; i < B * H * Nk * d; i++)
        k[i] = (float)kat_rng_gaussian(rng, 0.7);
    for (size_t i = 0; i < B * H * Nk * dv; i++)
        v[i] = (float)kat_rng_gaussian(rng, 1.0), vmax = fmax(vmax, fabs((double)v[i]));
    kat_rng_destroy(rng);
    kat_tensor Q = kat_tensor_view(q, B, H, N, d), K = kat_tensor_view(k, B, H, Nk, d);
    kat_tensor V = kat_tensor_view(v, B, H, Nk, dv), O = kat_tensor_view(o, B, H, N, dv);
    st = kat_linear_forward(fm, &opts, &Q, &K, &V, &O, NULL, NULL);
    if (opts.chunk > KAT_LINEAR_MAX_CHUNK) {
        CHECK(st == KAT_EINVAL);
    } else {
        CHECK(st == KAT_OK);
        CHECK(kat_linear_reference(fm, &opts, 0, 64, &Q, &K, &V, NULL, ref) == KAT_OK);
        double Df = (double)kat_featmap_out_dim(fm);
        double bound = (Df + (double)Nk + 16.0) * (4.0 * EPS32 * vmax + 2.0 * FLT_TRUE_MIN);
        for (size_t i = 0; i < B * H * N * dv; i++)
            if (!(fabs((double)o[i] - ref[i]) <= bound)) {
                fprintf(stderr, "fuzz_attn: linear %s o[%zu] = %.9g, reference %.9g\n",
                        kat_featmap_name(fm), i, (double)o[i], ref[i]);
                abort();
            }
    }
    free(q), free(k), free(v), free(o), free(ref);
    kat_featmap_destroy(fm);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bytes in = {data, size};
    unsigned mode = take(&in);
    /* Two threads for one input in four: the parallel paths (the decode split among them)
     * without paying thread wake-ups on every run. */
    kat_set_num_threads(mode & 0x80 && mode & 0x40 ? 2 : 1);
    switch (mode % 8) {
    case 0: case 1: case 2:
        run_dense(&in);
        break;
    case 3:
        run_unfused(&in);
        break;
    case 4:
        run_sparse_qk(&in);
        break;
    case 5:
        run_linear(&in);
        break;
    default:
        run_refused(&in);
        break;
    }
    return 0;
}
