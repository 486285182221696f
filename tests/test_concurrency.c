/* Concurrency: one plan (or layout, feature map, compiled function) executed from 8 threads at
 * once, each on its own data and workspace, gives the same bits as running the same calls one
 * after another. Covers the dense flash engine (forward, backward with and without the
 * logsumexp, caller-provided and library-allocated workspaces, every ISA's kernels), the
 * sparse layouts (QK-drop, hash, block mask), the linear engine, the rank probes (dense and
 * randomized), kat_fn_eval of a compiled expression, and the thread-local error sentence;
 * and every entry point that uses the BLAS beside every other one, with OpenBLAS at its
 * default thread count. tests/tsan.sh runs this suite under ThreadSanitizer. */
#include <cblas.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sparse_plan.h"
#include "testutil.h"

enum { NT = 8 };   /* threads that share one plan */

/* OpenBLAS's process-wide thread count: kat lowers it around its own parallel regions and
 * restores it; calls from several threads must not leave it changed. */
void openblas_set_num_threads(int n);
int openblas_get_num_threads(void);

static int rounds(void) { return tu_quick() ? 1 : 3; }

/* ---- running a job on NT threads at once ---------------------------------------------------- */

typedef struct {
    void (*fn)(int id, void *arg);
    void *arg;
    int id;
    pthread_barrier_t *barrier;
} worker;

static void *worker_main(void *p)
{
    worker *w = p;
    pthread_barrier_wait(w->barrier);   /* start together, for the most overlap */
    w->fn(w->id, w->arg);
    return NULL;
}

static void run_concurrently(void (*fn)(int id, void *arg), void *arg)
{
    int blas_threads = openblas_get_num_threads();
    pthread_t th[NT];
    worker w[NT];
    pthread_barrier_t barrier;
    ck_assert_int_eq(pthread_barrier_init(&barrier, NULL, NT), 0);
    for (int i = 0; i < NT; i++) {
        w[i] = (worker){fn, arg, i, &barrier};
        ck_assert_int_eq(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < NT; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    pthread_barrier_destroy(&barrier);
    ck_assert_msg(openblas_get_num_threads() == blas_threads,
                  "concurrent calls changed OpenBLAS's thread count from %d to %d",
                  blas_threads, openblas_get_num_threads());
}

static void run_serially(void (*fn)(int id, void *arg), void *arg)
{
    for (int i = 0; i < NT; i++)
        fn(i, arg);
}

static void fill(float *x, size_t n, uint64_t seed, double sigma)
{
    kat_rng *rng;
    ck_assert(kat_rng_create(seed, &rng) == KAT_OK);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)kat_rng_gaussian(rng, sigma);
    kat_rng_destroy(rng);
}

static void *aligned(size_t bytes)
{
    void *p = aligned_alloc(64, ((bytes ? bytes : 1) + 63) / 64 * 64);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* ---- attention problems: NT data sets of one shape ------------------------------------------ */

typedef struct {
    size_t B, H, Hkv, N, M, D;
    size_t nq, nk, nl;   /* floats in q (and o, dout, dq), k (and v, dk, dv), lse */
    float *q[NT], *k[NT], *v[NT], *dout[NT];
    /* outputs of the current run, and the serial run's copies */
    float *o[NT], *lse[NT], *dq[NT], *dk[NT], *dv[NT];
    float *so[NT], *slse[NT], *sdq[NT], *sdk[NT], *sdv[NT];
    void *fwork[NT], *bwork[NT];
    kat_status st[NT];
    const kat_attn_plan *plan;
    const sp_handle *layout;
    int use_work, use_lse;
} attn_set;

static void attn_set_init(attn_set *s, size_t B, size_t H, size_t Hkv, size_t N, size_t M,
                          size_t D, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->B = B, s->H = H, s->Hkv = Hkv, s->N = N, s->M = M, s->D = D;
    s->nq = B * H * N * D, s->nk = B * Hkv * M * D, s->nl = B * H * N;
    for (int t = 0; t < NT; t++) {
        float **in[] = {&s->q[t], &s->dout[t], &s->k[t], &s->v[t]};
        size_t sz[] = {s->nq, s->nq, s->nk, s->nk};
        for (int a = 0; a < 4; a++) {
            *in[a] = malloc(sz[a] * sizeof(float));
            fill(*in[a], sz[a], seed + 10 * t + a, a == 0 ? 1.5 : 1.0);
        }
        float **out[] = {&s->o[t], &s->so[t], &s->dq[t], &s->sdq[t], &s->lse[t], &s->slse[t],
                         &s->dk[t], &s->sdk[t], &s->dv[t], &s->sdv[t]};
        size_t osz[] = {s->nq, s->nq, s->nq, s->nq, s->nl, s->nl, s->nk, s->nk, s->nk, s->nk};
        for (int a = 0; a < 10; a++)
            *out[a] = calloc(osz[a], sizeof(float));
    }
}

static void attn_set_free(attn_set *s)
{
    for (int t = 0; t < NT; t++) {
        free(s->q[t]), free(s->k[t]), free(s->v[t]), free(s->dout[t]);
        free(s->o[t]), free(s->lse[t]), free(s->dq[t]), free(s->dk[t]), free(s->dv[t]);
        free(s->so[t]), free(s->slse[t]), free(s->sdq[t]), free(s->sdk[t]), free(s->sdv[t]);
        free(s->fwork[t]), free(s->bwork[t]);
    }
}

typedef struct {
    kat_tensor q, k, v, o, lse, dout, dq, dk, dv;
} attn_views;

static attn_views views(const attn_set *s, int t)
{
    attn_views w;
    w.q = kat_tensor_view(s->q[t], s->B, s->H, s->N, s->D);
    w.k = kat_tensor_view(s->k[t], s->B, s->Hkv, s->M, s->D);
    w.v = kat_tensor_view(s->v[t], s->B, s->Hkv, s->M, s->D);
    w.o = kat_tensor_view(s->o[t], s->B, s->H, s->N, s->D);
    w.lse = kat_tensor_view(s->lse[t], s->B, s->H, s->N, 1);
    w.dout = kat_tensor_view(s->dout[t], s->B, s->H, s->N, s->D);
    w.dq = kat_tensor_view(s->dq[t], s->B, s->H, s->N, s->D);
    w.dk = kat_tensor_view(s->dk[t], s->B, s->Hkv, s->M, s->D);
    w.dv = kat_tensor_view(s->dv[t], s->B, s->Hkv, s->M, s->D);
    return w;
}

static void dense_forward_job(int t, void *arg)
{
    attn_set *s = arg;
    attn_views w = views(s, t);
    s->st[t] = kat_attn_forward(s->plan, NULL, &w.q, &w.k, &w.v, &w.o, &w.lse,
                                s->use_work ? s->fwork[t] : NULL);
}

/* The backward reads the forward's o and lse (the serial copies so[], slse[]). */
static void dense_backward_job(int t, void *arg)
{
    attn_set *s = arg;
    attn_views w = views(s, t);
    kat_tensor o = kat_tensor_view(s->so[t], s->B, s->H, s->N, s->D);
    kat_tensor lse = kat_tensor_view(s->slse[t], s->B, s->H, s->N, 1);
    s->st[t] = kat_attn_backward(s->plan, NULL, &w.q, &w.k, &w.v, &o, s->use_lse ? &lse : NULL,
                                 &w.dout, &w.dq, &w.dk, &w.dv, s->use_work ? s->bwork[t] : NULL);
}

static void sparse_forward_job(int t, void *arg)
{
    attn_set *s = arg;
    attn_views w = views(s, t);
    s->st[t] = sp_forward(s->layout, &w.q, &w.k, &w.v, &w.o, &w.lse,
                                  s->use_work ? s->fwork[t] : NULL);
}

static void sparse_backward_job(int t, void *arg)
{
    attn_set *s = arg;
    attn_views w = views(s, t);
    kat_tensor o = kat_tensor_view(s->so[t], s->B, s->H, s->N, s->D);
    kat_tensor lse = kat_tensor_view(s->slse[t], s->B, s->H, s->N, 1);
    s->st[t] = sp_backward(s->layout, &w.q, &w.k, &w.v, &o, &lse, &w.dout, &w.dq,
                                   &w.dk, &w.dv, s->use_work ? s->bwork[t] : NULL);
}

static void check_status(const attn_set *s, const char *what)
{
    for (int t = 0; t < NT; t++)
        ck_assert_msg(s->st[t] == KAT_OK, "%s, thread %d: %s", what, t, kat_strerror(s->st[t]));
}

static void save_forward(attn_set *s)
{
    for (int t = 0; t < NT; t++) {
        memcpy(s->so[t], s->o[t], s->nq * sizeof(float));
        memcpy(s->slse[t], s->lse[t], s->nl * sizeof(float));
    }
}

static void save_backward(attn_set *s)
{
    for (int t = 0; t < NT; t++) {
        memcpy(s->sdq[t], s->dq[t], s->nq * sizeof(float));
        memcpy(s->sdk[t], s->dk[t], s->nk * sizeof(float));
        memcpy(s->sdv[t], s->dv[t], s->nk * sizeof(float));
    }
}

static void poison_outputs(attn_set *s)
{
    for (int t = 0; t < NT; t++) {
        memset(s->o[t], 0x7f, s->nq * sizeof(float));
        memset(s->lse[t], 0x7f, s->nl * sizeof(float));
        memset(s->dq[t], 0x7f, s->nq * sizeof(float));
        memset(s->dk[t], 0x7f, s->nk * sizeof(float));
        memset(s->dv[t], 0x7f, s->nk * sizeof(float));
    }
}

static void expect_forward_bits(const attn_set *s, const char *what)
{
    for (int t = 0; t < NT; t++) {
        ck_assert_msg(memcmp(s->o[t], s->so[t], s->nq * sizeof(float)) == 0,
                      "%s: thread %d's o differs from the serial run", what, t);
        ck_assert_msg(memcmp(s->lse[t], s->slse[t], s->nl * sizeof(float)) == 0,
                      "%s: thread %d's lse differs from the serial run", what, t);
    }
}

static void expect_backward_bits(const attn_set *s, const char *what)
{
    for (int t = 0; t < NT; t++) {
        ck_assert_msg(memcmp(s->dq[t], s->sdq[t], s->nq * sizeof(float)) == 0,
                      "%s: thread %d's dq differs from the serial run", what, t);
        ck_assert_msg(memcmp(s->dk[t], s->sdk[t], s->nk * sizeof(float)) == 0,
                      "%s: thread %d's dk differs from the serial run", what, t);
        ck_assert_msg(memcmp(s->dv[t], s->sdv[t], s->nk * sizeof(float)) == 0,
                      "%s: thread %d's dv differs from the serial run", what, t);
    }
}

/* Serial reference, then concurrent rounds with and without caller workspaces. */
static void check_attention(attn_set *s, void (*fwd)(int, void *), void (*bwd)(int, void *),
                            size_t fbytes, size_t bbytes, int lse_variants, const char *what)
{
    for (int t = 0; t < NT; t++) {
        free(s->fwork[t]), free(s->bwork[t]);
        s->fwork[t] = aligned(fbytes);
        s->bwork[t] = aligned(bbytes);
    }
    char label[160];
    s->use_work = 1;
    run_serially(fwd, s);
    check_status(s, what);
    save_forward(s);
    for (int with_lse = 1; with_lse >= (lse_variants ? 0 : 1); with_lse--) {
        s->use_lse = with_lse;
        s->use_work = 1;
        run_serially(bwd, s);
        check_status(s, what);
        save_backward(s);
        for (int r = 0; r < rounds(); r++)
            for (int use_work = 1; use_work >= 0; use_work--) {
                s->use_work = use_work;
                snprintf(label, sizeof label, "%s (%s workspace%s, round %d)", what,
                         use_work ? "caller's" : "allocated", with_lse ? "" : ", no lse", r);
                poison_outputs(s);
                run_concurrently(fwd, s);
                check_status(s, label);
                expect_forward_bits(s, label);
                run_concurrently(bwd, s);
                check_status(s, label);
                expect_backward_bits(s, label);
            }
    }
}

START_TEST(test_dense_flash)
{
    /* Causal, grouped-query heads, N and M off the tile grid; shapes above the engine's
     * threading threshold, so that its own OpenMP team runs inside each caller's thread
     * (60 x 1100: three key chunks; N = 1 with two query heads per key head: the decode path's
     * key split); and every ISA's kernels. */
    const size_t shapes[][7] = {
        {1, 4, 2, 77, 90, 32, 1},
        {2, 2, 2, 1, tu_quick() ? 100 : 700, 64, 0},
        {1, 1, 1, 60, 1100, 64, 0},
        {1, 2, 1, 1, 700, 64, 0},
    };
    kat_arch initial = kat_arch_get();
    for (int a = 0; a < KAT_ARCH_COUNT; a++) {
        /* (quick runs: the reference kernels and the machine's own) */
        if (!kat_arch_supported((kat_arch)a) || (tu_quick() && a != 0 && a != (int)initial))
            continue;
        TU_OK(kat_arch_set((kat_arch)a));
        /* valgrind runs threads one at a time: the two threaded shapes (there for
         * ThreadSanitizer, which runs them) would triple this suite's time under it */
        size_t nshapes = getenv("KAT_VALGRIND") ? 2 : sizeof shapes / sizeof shapes[0];
        for (size_t sh = 0; sh < nshapes; sh++) {
            const size_t *x = shapes[sh];
            attn_set s;
            attn_set_init(&s, x[0], x[1], x[2], x[3], x[4], x[5], 100 + sh);
            kat_attn_desc d = {x[0], x[1], x[2], x[3], x[4], x[5], (int)x[6], 0, 0};
            kat_attn_plan *plan;
            TU_OK(kat_attn_plan_create(&d, NULL, &plan));
            s.plan = plan;
            char what[96];
            snprintf(what, sizeof what, "dense flash, %s kernels, shape %zu", kat_arch_name(), sh);
            check_attention(&s, dense_forward_job, dense_backward_job,
                            kat_attn_workspace_size(plan, KAT_ATTN_FORWARD),
                            kat_attn_workspace_size(plan, KAT_ATTN_BACKWARD), 1, what);
            kat_attn_plan_destroy(plan);
            attn_set_free(&s);
        }
    }
    TU_OK(kat_arch_set(initial));
}
END_TEST

START_TEST(test_sparse_layouts)
{
    enum { B = 1, H = 4, HKV = 2, D = 16 };
    const size_t N = tu_quick() ? 60 : 150, M = N;
    kat_attn_desc d = {B, H, HKV, N, M, D, 1, 0, 0};
    uint8_t qm[B * H * 150], km[B * HKV * 150];
    for (size_t i = 0; i < B * H * N; i++)
        qm[i] = (i * 7) % 3 != 0;
    for (size_t i = 0; i < B * HKV * M; i++)
        km[i] = (i * 5) % 4 != 1;
    kat_sparse_keep qk, kk;
    TU_OK(kat_sparse_keep_from_mask(qm, B, H, N, &qk));
    TU_OK(kat_sparse_keep_from_mask(km, B, HKV, M, &kk));
    int32_t qb[B * H * 150], kb[B * HKV * 150];
    for (size_t i = 0; i < B * H * N; i++)
        qb[i] = (int32_t)((i * 3) % 4);
    for (size_t i = 0; i < B * HKV * M; i++)
        kb[i] = (int32_t)((i * 5) % 4);
    kat_sparse_blockmask *bm;
    TU_OK(kat_sparse_blockmask_global(N, M, 4, 40, 1, 32, 32, &bm));
    sp_handle *layouts[3];
    TU_OK(sp_qk(&d, &qk, &kk, &layouts[0]));
    TU_OK(sp_hash(&d, 4, qb, kb, &layouts[1]));
    TU_OK(sp_block(&d, bm, &layouts[2]));
    const char *names[] = {"sparse QK-drop", "sparse hash", "sparse block mask"};
    for (int l = 0; l < 3; l++) {
        attn_set s;
        attn_set_init(&s, B, H, HKV, N, M, D, 200 + l);
        s.layout = layouts[l];
        check_attention(&s, sparse_forward_job, sparse_backward_job,
                        sp_workspace(layouts[l], KAT_ATTN_FORWARD),
                        sp_workspace(layouts[l], KAT_ATTN_BACKWARD), 0, names[l]);
        attn_set_free(&s);
        sp_handle_destroy(layouts[l]);
    }
    kat_sparse_blockmask_destroy(bm);
    kat_sparse_keep_free(&qk);
    kat_sparse_keep_free(&kk);
}
END_TEST

/* ---- the linear engine: one feature map, NT sequences -------------------------------------- */

typedef struct {
    const kat_featmap *fm;
    kat_linear_opts opts;
    size_t B, H, N, d, dv, Df;
    float *q[NT], *k[NT], *v[NT], *dout[NT], *o[NT], *so[NT], *st_out[NT], *sst[NT];
    float *dq[NT], *dk[NT], *dvv[NT], *sdq[NT], *sdk[NT], *sdv[NT];
    kat_status st[NT];
} lin_set;

static void lin_forward_job(int t, void *arg)
{
    lin_set *s = arg;
    kat_tensor q = kat_tensor_view(s->q[t], s->B, s->H, s->N, s->d);
    kat_tensor k = kat_tensor_view(s->k[t], s->B, s->H, s->N, s->d);
    kat_tensor v = kat_tensor_view(s->v[t], s->B, s->H, s->N, s->dv);
    kat_tensor o = kat_tensor_view(s->o[t], s->B, s->H, s->N, s->dv);
    kat_tensor so = kat_tensor_view(s->st_out[t], s->B, s->H, s->Df, s->dv + 1);
    s->st[t] = kat_linear_forward(s->fm, &s->opts, &q, &k, &v, &o, NULL, &so);
}

static void lin_backward_job(int t, void *arg)
{
    lin_set *s = arg;
    kat_tensor q = kat_tensor_view(s->q[t], s->B, s->H, s->N, s->d);
    kat_tensor k = kat_tensor_view(s->k[t], s->B, s->H, s->N, s->d);
    kat_tensor v = kat_tensor_view(s->v[t], s->B, s->H, s->N, s->dv);
    kat_tensor o = kat_tensor_view(s->so[t], s->B, s->H, s->N, s->dv);
    kat_tensor dout = kat_tensor_view(s->dout[t], s->B, s->H, s->N, s->dv);
    kat_tensor dq = kat_tensor_view(s->dq[t], s->B, s->H, s->N, s->d);
    kat_tensor dk = kat_tensor_view(s->dk[t], s->B, s->H, s->N, s->d);
    kat_tensor dv = kat_tensor_view(s->dvv[t], s->B, s->H, s->N, s->dv);
    s->st[t] = kat_linear_backward(s->fm, &s->opts, &q, &k, &v, &o, &dout, &dq, &dk, &dv, NULL,
                                   NULL);
}

START_TEST(test_linear_engine)
{
    kat_featmap *maps[2];
    TU_OK(kat_featmap_taylor_create(4, 2, 0, &maps[0]));
    TU_OK(kat_featmap_favor_create(4, 32, 0.5, KAT_FAVOR_ORTHOGONAL | KAT_FAVOR_STABLE, 3,
                                   &maps[1]));
    for (int m = 0; m < 2; m++)
        for (int causal = 0; causal <= 1; causal++) {
            lin_set s;
            memset(&s, 0, sizeof s);
            s.fm = maps[m];
            s.opts = (kat_linear_opts){causal, 0, 16, KAT_LINEAR_INTRA_AUTO};
            /* B*H = 1 also runs the chunks of one sequence in parallel. */
            s.B = 1, s.H = causal ? 1 : 3, s.N = tu_quick() ? 40 : 100, s.d = 4, s.dv = 8;
            s.Df = kat_featmap_out_dim(maps[m]);
            size_t nq = s.B * s.H * s.N * s.d, nv = s.B * s.H * s.N * s.dv;
            size_t ns = s.B * s.H * s.Df * (s.dv + 1);
            for (int t = 0; t < NT; t++) {
                s.q[t] = malloc(nq * 4), s.k[t] = malloc(nq * 4), s.v[t] = malloc(nv * 4);
                s.dout[t] = malloc(nv * 4), s.o[t] = malloc(nv * 4), s.so[t] = malloc(nv * 4);
                s.st_out[t] = malloc(ns * 4), s.sst[t] = malloc(ns * 4);
                s.dq[t] = malloc(nq * 4), s.dk[t] = malloc(nq * 4), s.dvv[t] = malloc(nv * 4);
                s.sdq[t] = malloc(nq * 4), s.sdk[t] = malloc(nq * 4), s.sdv[t] = malloc(nv * 4);
                fill(s.q[t], nq, 300 + 4 * t, 0.5);
                fill(s.k[t], nq, 301 + 4 * t, 0.5);
                fill(s.v[t], nv, 302 + 4 * t, 1.0);
                fill(s.dout[t], nv, 303 + 4 * t, 1.0);
            }
            run_serially(lin_forward_job, &s);
            for (int t = 0; t < NT; t++) {
                ck_assert_msg(s.st[t] == KAT_OK, "linear forward: %s", kat_strerror(s.st[t]));
                memcpy(s.so[t], s.o[t], nv * 4);
                memcpy(s.sst[t], s.st_out[t], ns * 4);
            }
            run_serially(lin_backward_job, &s);
            for (int t = 0; t < NT; t++) {
                ck_assert_msg(s.st[t] == KAT_OK, "linear backward: %s", kat_strerror(s.st[t]));
                memcpy(s.sdq[t], s.dq[t], nq * 4);
                memcpy(s.sdk[t], s.dk[t], nq * 4);
                memcpy(s.sdv[t], s.dvv[t], nv * 4);
            }
            for (int r = 0; r < rounds(); r++) {
                for (int t = 0; t < NT; t++) {
                    memset(s.o[t], 0x7f, nv * 4), memset(s.st_out[t], 0x7f, ns * 4);
                    memset(s.dq[t], 0x7f, nq * 4), memset(s.dk[t], 0x7f, nq * 4);
                    memset(s.dvv[t], 0x7f, nv * 4);
                }
                run_concurrently(lin_forward_job, &s);
                run_concurrently(lin_backward_job, &s);
                for (int t = 0; t < NT; t++) {
                    ck_assert_msg(s.st[t] == KAT_OK, "linear: thread %d: %s", t,
                                  kat_strerror(s.st[t]));
                    ck_assert_msg(memcmp(s.o[t], s.so[t], nv * 4) == 0 &&
                                      memcmp(s.st_out[t], s.sst[t], ns * 4) == 0,
                                  "linear forward (%s, causal %d): thread %d differs from the "
                                  "serial run", kat_featmap_name(s.fm), causal, t);
                    ck_assert_msg(memcmp(s.dq[t], s.sdq[t], nq * 4) == 0 &&
                                      memcmp(s.dk[t], s.sdk[t], nq * 4) == 0 &&
                                      memcmp(s.dvv[t], s.sdv[t], nv * 4) == 0,
                                  "linear backward (%s, causal %d): thread %d differs from the "
                                  "serial run", kat_featmap_name(s.fm), causal, t);
                }
            }
            for (int t = 0; t < NT; t++) {
                free(s.q[t]), free(s.k[t]), free(s.v[t]), free(s.dout[t]), free(s.o[t]);
                free(s.so[t]), free(s.st_out[t]), free(s.sst[t]), free(s.dq[t]), free(s.dk[t]);
                free(s.dvv[t]), free(s.sdq[t]), free(s.sdk[t]), free(s.sdv[t]);
            }
        }
    kat_featmap_destroy(maps[0]);
    kat_featmap_destroy(maps[1]);
}
END_TEST

/* ---- rank probes: one compiled function, NT point sets -------------------------------------- */

enum { RN = 60, RM = 45, RD = 4 };
typedef struct {
    const kat_fn *f;
    kat_rank_opts opts;
    double q[NT][RN * RD], k[NT][RM * RD];
    kat_rank_result res[NT];
    kat_status st[NT];
} rank_set;

static void rank_job(int t, void *arg)
{
    rank_set *s = arg;
    kat_dmat Q = {RN, RD, RD, s->q[t]}, K = {RM, RD, RD, s->k[t]};
    s->st[t] = kat_rank_probe(s->f, &Q, &K, &s->opts, &s->res[t]);
}

static int same_result(const kat_rank_result *a, const kat_rank_result *b)
{
    return a->rank == b->rank && a->nsv == b->nsv && a->passes == b->passes &&
           a->predicted_rank == b->predicted_rank &&
           a->eps_rank_spectral == b->eps_rank_spectral &&
           memcmp(&a->tol, &b->tol, sizeof a->tol) == 0 &&
           memcmp(&a->fro_norm, &b->fro_norm, sizeof a->fro_norm) == 0 &&
           memcmp(a->sv, b->sv, a->nsv * sizeof(double)) == 0;
}

START_TEST(test_rank_probes)
{
    rank_set *s = calloc(1, sizeof *s);
    kat_fn *f;
    TU_OK(kat_fn_parse("exp(x/2) + 0.1*relu(x - 0.3)", &f, NULL));
    s->f = f;
    kat_rng *rng;
    TU_OK(kat_rng_create(400, &rng));
    for (int t = 0; t < NT; t++) {
        for (int i = 0; i < RN * RD; i++)
            s->q[t][i] = kat_rng_gaussian(rng, 0.7);
        for (int i = 0; i < RM * RD; i++)
            s->k[t][i] = kat_rng_gaussian(rng, 0.7);
    }
    kat_rng_destroy(rng);
    for (int method = 0; method < 2; method++) {
        kat_rank_opts_init(&s->opts);
        s->opts.eps = 1e-4;
        s->opts.form = method ? KAT_RANK_L2SQ : KAT_RANK_INNER;
        if (method) {
            s->opts.method = KAT_RANK_RANDOMIZED;
            s->opts.block = 4, s->opts.oversample = 4, s->opts.tile_rows = 16;
            s->opts.power_iters = 1;
        }
        kat_rank_result serial[NT];
        run_serially(rank_job, s);
        for (int t = 0; t < NT; t++) {
            ck_assert_msg(s->st[t] == KAT_OK, "rank probe: %s", kat_strerror(s->st[t]));
            serial[t] = s->res[t];
        }
        for (int r = 0; r < rounds(); r++) {
            run_concurrently(rank_job, s);
            for (int t = 0; t < NT; t++) {
                ck_assert_msg(s->st[t] == KAT_OK, "rank probe thread %d: %s", t,
                              kat_strerror(s->st[t]));
                ck_assert_msg(same_result(&s->res[t], &serial[t]),
                              "rank probe (%s): thread %d differs from the serial run",
                              method ? "randomized" : "dense", t);
                kat_rank_result_free(&s->res[t]);
            }
        }
        for (int t = 0; t < NT; t++)
            kat_rank_result_free(&serial[t]);
    }
    kat_fn_destroy(f);
    free(s);
}
END_TEST

/* OpenBLAS's thread count is process-wide; kat sets it for each call that uses the BLAS (one
 * process-wide hold, lib/core/blas_hold.c) and puts it back. The test environment sets it to
 * 1, so this case sets 2 and runs the probes concurrently: a save/restore that is not safe
 * across threads leaves the count changed for the whole process (and the user's later BLAS
 * calls single-threaded). The race needs an unlucky interleaving, so it runs several rounds. */
START_TEST(test_blas_thread_count)
{
    int saved = openblas_get_num_threads();
    openblas_set_num_threads(2);
    rank_set *s = calloc(1, sizeof *s);
    kat_fn *f;
    TU_OK(kat_fn_parse("exp(x/2)", &f, NULL));
    s->f = f;
    for (int t = 0; t < NT; t++) {
        for (int i = 0; i < RN * RD; i++)
            s->q[t][i] = 0.01 * ((i * 7 + t) % 13);
        for (int i = 0; i < RM * RD; i++)
            s->k[t][i] = 0.01 * ((i * 5 + t) % 11);
    }
    kat_rank_opts_init(&s->opts);
    int changed = 0;
    for (int r = 0; r < (tu_quick() ? 4 : 10) && !changed; r++) {
        openblas_set_num_threads(2);
        pthread_t th[NT];
        worker w[NT];
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, NT);
        for (int i = 0; i < NT; i++) {
            w[i] = (worker){rank_job, s, i, &barrier};
            pthread_create(&th[i], NULL, worker_main, &w[i]);
        }
        for (int i = 0; i < NT; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&barrier);
        for (int t = 0; t < NT; t++) {
            ck_assert_msg(s->st[t] == KAT_OK, "rank probe: %s", kat_strerror(s->st[t]));
            kat_rank_result_free(&s->res[t]);
        }
        changed = openblas_get_num_threads() != 2;
    }
    int now = openblas_get_num_threads();
    openblas_set_num_threads(saved);
    kat_fn_destroy(f);
    free(s);
    ck_assert_msg(!changed, "concurrent kat_rank_probe calls changed OpenBLAS's process-wide "
                  "thread count from 2 to %d", now);
}
END_TEST

/* ---- every BLAS-using entry point beside every other one ------------------------------------
 * OpenBLAS's thread count is process-wide and a BLAS result's bits depend on it. Each entry
 * point below (rank dense and randomized, unfused, LSH buckets, linear, dense flash, sparse
 * flash) runs in one thread while another entry point, the same one, or the caller's own
 * cblas_sgemm (outside any hold, at whatever count OpenBLAS has) runs in a second, with
 * OpenBLAS at its default count (one per CPU, at least 2: the test environment sets 1, where
 * nothing would be seen); every kat result must have the bits of its serial run, and
 * OpenBLAS's count must be the same after the calls as before. The serial runs are made with
 * OpenBLAS at 1: what kat computes depends on kat's thread count only. */

enum { PR_N = 200, PR_D = 6, PA_H = 4, PA_N = 256, PA_D = 32, PL_H = 2, PL_N = 200, PL_D = 4,
       PL_DV = 32, N_ENTRIES = 7, CALLER_BLAS = N_ENTRIES, N_NEIGHBOURS = N_ENTRIES + 1,
       CB_N = 512 };

typedef struct {
    const kat_fn *f;
    double q[PR_N * PR_D], k[PR_N * PR_D];
    float *aq, *ak, *av, *lq, *lk, *lv;
    int32_t *qb, *kb;
    kat_attn_desc desc;
    kat_attn_plan *plan;
    kat_attn_plan *hash_plan;
    kat_attn_args hash_args;
    kat_featmap *fm;
} pair_data;

static size_t entry_bytes(int e)
{
    size_t nq = (size_t)PA_H * PA_N * PA_D, nl = (size_t)PA_H * PA_N;
    switch (e) {
    case 0: case 1: return (PR_N + 3) * sizeof(double);   /* rank: sv, fro, rank, nsv */
    case 3: return nl * sizeof(int32_t);                   /* LSH buckets */
    case 4: return (size_t)PL_H * PL_N * PL_DV * sizeof(float);   /* linear o */
    case CALLER_BLAS: return (size_t)CB_N * CB_N * sizeof(float);
    default: return (nq + nl) * sizeof(float);             /* o and lse */
    }
}

static const char *const entry_names[N_NEIGHBOURS] = {
    "rank dense", "rank randomized", "unfused", "LSH buckets", "linear", "dense flash",
    "sparse flash", "the caller's cblas_sgemm"};

/* One call of entry e; its result's bytes in out. */
static kat_status entry_call(const pair_data *p, int e, unsigned char *out)
{
    kat_tensor q = kat_tensor_view(p->aq, 1, PA_H, PA_N, PA_D);
    kat_tensor k = kat_tensor_view(p->ak, 1, PA_H, PA_N, PA_D);
    kat_tensor v = kat_tensor_view(p->av, 1, PA_H, PA_N, PA_D);
    float *of = (float *)out;
    kat_tensor o = kat_tensor_view(of, 1, PA_H, PA_N, PA_D);
    kat_tensor lse = kat_tensor_view(of + (size_t)PA_H * PA_N * PA_D, 1, PA_H, PA_N, 1);
    kat_status st;
    if (e <= 1) {
        kat_rank_opts o2;
        kat_rank_opts_init(&o2);
        o2.eps = 1e-6;
        if (e == 1)
            o2.method = KAT_RANK_RANDOMIZED, o2.block = 8, o2.oversample = 8;
        kat_dmat Q = {PR_N, PR_D, PR_D, (double *)p->q}, K = {PR_N, PR_D, PR_D, (double *)p->k};
        kat_rank_result r;
        if ((st = kat_rank_probe(p->f, &Q, &K, &o2, &r)))
            return st;
        double *d = (double *)out;
        memset(d, 0, entry_bytes(e));
        memcpy(d, r.sv, r.nsv * sizeof(double));
        d[PR_N] = r.fro_norm, d[PR_N + 1] = (double)r.rank, d[PR_N + 2] = (double)r.nsv;
        kat_rank_result_free(&r);
        return KAT_OK;
    }
    switch (e) {
    case 2: return kat_attn_unfused_forward(&p->desc, &q, &k, &v, &o, &lse);
    case 3: return kat_sparse_lsh_buckets(&q, 1, 8, 17, (int32_t *)out);
    case 4: {
        kat_tensor lq = kat_tensor_view(p->lq, 1, PL_H, PL_N, PL_D);
        kat_tensor lk = kat_tensor_view(p->lk, 1, PL_H, PL_N, PL_D);
        kat_tensor lv = kat_tensor_view(p->lv, 1, PL_H, PL_N, PL_DV);
        kat_tensor lo = kat_tensor_view(of, 1, PL_H, PL_N, PL_DV);
        kat_linear_opts lo2 = {1, 0, 16, KAT_LINEAR_INTRA_AUTO};
        return kat_linear_forward(p->fm, &lo2, &lq, &lk, &lv, &lo, NULL, NULL);
    }
    case 5: return kat_attn_forward(p->plan, NULL, &q, &k, &v, &o, &lse, NULL);
    case 6: return kat_attn_forward(p->hash_plan, &p->hash_args, &q, &k, &v, &o, &lse, NULL);
    default:   /* q's first CB_N rows times k's, D = 32: an unheld BLAS call of the caller */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, CB_N, CB_N, PA_D, 1.0f, p->aq, PA_D,
                    p->ak, PA_D, 0.0f, of, CB_N);
        return KAT_OK;
    }
}

typedef struct {
    const pair_data *p;
    int e, reps, mismatches, blas_changed;
    kat_status st;
    const unsigned char *ref;
    unsigned char *out;
    pthread_barrier_t *barrier;
} pair_worker;

static void *pair_main(void *arg)
{
    pair_worker *w = arg;
    pthread_barrier_wait(w->barrier);
    for (int r = 0; r < w->reps && !w->st; r++) {
        memset(w->out, 0x7f, entry_bytes(w->e));
        w->st = entry_call(w->p, w->e, w->out);
        w->mismatches += !w->st && w->ref && memcmp(w->out, w->ref, entry_bytes(w->e)) != 0;
    }
    return NULL;
}

static void pair_data_init(pair_data *p)
{
    memset(p, 0, sizeof *p);
    kat_fn *f;
    TU_OK(kat_fn_parse("exp(x/2)", &f, NULL));
    p->f = f;
    kat_rng *rng;
    TU_OK(kat_rng_create(500, &rng));
    for (int i = 0; i < PR_N * PR_D; i++)
        p->q[i] = kat_rng_gaussian(rng, 0.6), p->k[i] = kat_rng_gaussian(rng, 0.6);
    kat_rng_destroy(rng);
    size_t na = (size_t)PA_H * PA_N * PA_D, nl = (size_t)PL_H * PL_N;
    float **a[] = {&p->aq, &p->ak, &p->av};
    for (int i = 0; i < 3; i++) {
        *a[i] = aligned(na * sizeof(float));
        fill(*a[i], na, 510 + i, 1.0);
    }
    p->lq = aligned(nl * PL_D * 4), p->lk = aligned(nl * PL_D * 4), p->lv = aligned(nl * PL_DV * 4);
    fill(p->lq, nl * PL_D, 520, 0.5), fill(p->lk, nl * PL_D, 521, 0.5);
    fill(p->lv, nl * PL_DV, 522, 1.0);
    p->desc = (kat_attn_desc){1, PA_H, PA_H, PA_N, PA_N, PA_D, 1, 0, 0};
    TU_OK(kat_attn_plan_create(&p->desc, NULL, &p->plan));
    p->qb = malloc((size_t)PA_H * PA_N * sizeof(int32_t));
    p->kb = malloc((size_t)PA_H * PA_N * sizeof(int32_t));
    for (size_t i = 0; i < (size_t)PA_H * PA_N; i++)
        p->qb[i] = (int32_t)((i * 3) % 4), p->kb[i] = (int32_t)((i * 5) % 4);
    kat_attn_pattern hash = {.kind = KAT_ATTN_HASH, .buckets = 4};
    TU_OK(kat_attn_plan_create(&p->desc, &hash, &p->hash_plan));
    p->hash_args = (kat_attn_args){.q_buckets = p->qb, .k_buckets = p->kb};
    TU_OK(kat_featmap_taylor_create(PL_D, 2, 0, &p->fm));
}

static void pair_data_free(pair_data *p)
{
    kat_fn_destroy((kat_fn *)p->f);
    free(p->aq), free(p->ak), free(p->av), free(p->lq), free(p->lk), free(p->lv);
    free(p->qb), free(p->kb);
    kat_attn_plan_destroy(p->plan);
    kat_attn_plan_destroy(p->hash_plan);
    kat_featmap_destroy(p->fm);
}

START_TEST(test_entry_points_pairwise)
{
    /* valgrind runs one thread at a time, so nothing would run beside anything; the native
     * run and ThreadSanitizer run this case */
    if (getenv("KAT_VALGRIND"))
        return;
    pair_data *p = malloc(sizeof *p);
    pair_data_init(p);
    int saved = openblas_get_num_threads();
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int blas_default = cpus > 2 ? (int)cpus : 2;
    unsigned char *ref[N_NEIGHBOURS] = {NULL}, *out[2];
    size_t most = entry_bytes(CALLER_BLAS);
    openblas_set_num_threads(1);
    for (int e = 0; e < N_ENTRIES; e++) {
        ref[e] = aligned(entry_bytes(e));
        memset(ref[e], 0x7f, entry_bytes(e));
        kat_status st = entry_call(p, e, ref[e]);
        ck_assert_msg(st == KAT_OK, "%s (serial): %s", entry_names[e], kat_last_error());
        most = entry_bytes(e) > most ? entry_bytes(e) : most;
    }
    out[0] = aligned(most), out[1] = aligned(most);
    openblas_set_num_threads(blas_default);
    int reps = tu_quick() ? 1 : 3, failures = 0;
    char report[2048] = "";
    for (int a = 0; a < N_ENTRIES; a++)
        for (int b = a; b < N_NEIGHBOURS; b++) {
            pthread_barrier_t barrier;
            pthread_barrier_init(&barrier, NULL, 2);
            pair_worker w[2] = {{p, a, reps, 0, 0, KAT_OK, ref[a], out[0], &barrier},
                                {p, b, reps, 0, 0, KAT_OK, ref[b], out[1], &barrier}};
            pthread_t th[2];
            for (int i = 0; i < 2; i++)
                ck_assert_int_eq(pthread_create(&th[i], NULL, pair_main, &w[i]), 0);
            for (int i = 0; i < 2; i++)
                pthread_join(th[i], NULL);
            pthread_barrier_destroy(&barrier);
            int now = openblas_get_num_threads();
            for (int i = 0; i < 2; i++) {
                ck_assert_msg(w[i].st == KAT_OK, "%s beside %s: %s", entry_names[w[i].e],
                              entry_names[w[1 - i].e], kat_strerror(w[i].st));
                if (w[i].mismatches && strlen(report) < sizeof report - 100)
                    snprintf(report + strlen(report), sizeof report - strlen(report),
                             "; %s beside %s: %d of %d differ", entry_names[w[i].e],
                             entry_names[w[1 - i].e], w[i].mismatches, reps);
                failures += w[i].mismatches;
            }
            if (now != blas_default) {
                snprintf(report + strlen(report), sizeof report - strlen(report),
                         "; %s beside %s left OpenBLAS at %d threads", entry_names[a],
                         entry_names[b], now);
                failures++;
                openblas_set_num_threads(blas_default);
            }
        }
    openblas_set_num_threads(saved);
    for (int e = 0; e < N_ENTRIES; e++)
        free(ref[e]);
    free(out[0]), free(out[1]);
    pair_data_free(p);
    free(p);
    ck_assert_msg(failures == 0, "results differ from the serial runs%s", report);
}
END_TEST

/* ---- kat_fn_eval of one compiled expression ------------------------------------------------ */

enum { FN_N = 3000 };
typedef struct {
    const kat_fn *f;
    double x[NT][FN_N], y[NT][FN_N], serial[NT][FN_N];
    kat_status st[NT];
} fn_set;

static void fn_job(int t, void *arg)
{
    fn_set *s = arg;
    for (int rep = 0; rep < 5; rep++)
        s->st[t] = kat_fn_eval(s->f, s->x[t], s->y[t], FN_N);
}

START_TEST(test_fn_eval)
{
    fn_set *s = calloc(1, sizeof *s);
    const char *exprs[] = {"gelu(x) * (1 + x/8)^4 - max(x, 0.25) + erf(x)", "(1 + 2*x)^3 - x/4",
                           "sigmoid(3*x) + log1p(abs(x)) * (x > 0)"};
    for (size_t e = 0; e < 3; e++) {
        kat_fn *f;
        TU_OK(kat_fn_parse(exprs[e], &f, NULL));
        s->f = f;
        for (int t = 0; t < NT; t++)
            for (int i = 0; i < FN_N; i++)
                s->x[t][i] = (double)(i - FN_N / 2) / 300.0 + 0.01 * t;
        run_serially(fn_job, s);
        memcpy(s->serial, s->y, sizeof s->y);
        for (int r = 0; r < rounds(); r++) {
            memset(s->y, 0, sizeof s->y);
            run_concurrently(fn_job, s);
            for (int t = 0; t < NT; t++) {
                ck_assert_msg(s->st[t] == KAT_OK, "kat_fn_eval thread %d: %s", t,
                              kat_strerror(s->st[t]));
                ck_assert_msg(memcmp(s->y[t], s->serial[t], sizeof s->y[t]) == 0,
                              "kat_fn_eval(%s): thread %d differs from the serial run",
                              exprs[e], t);
            }
        }
        kat_fn_destroy(f);
    }
    free(s);
}
END_TEST

/* ---- the error sentence is per thread -------------------------------------------------------- */

typedef struct {
    int ok[NT];
} err_set;

static void err_job(int t, void *arg)
{
    err_set *s = arg;
    char expr[64], needle[32];
    snprintf(expr, sizeof expr, "x + %d +", 1000 + t);   /* syntax error at the end */
    snprintf(needle, sizeof needle, "column %zu", strlen(expr) + 1);
    s->ok[t] = 1;
    for (int rep = 0; rep < 200; rep++) {
        kat_fn *f = NULL;
        size_t pos = 0;
        if (kat_fn_parse(expr, &f, &pos) != KAT_EPARSE || f != NULL ||
            strncmp(kat_last_error(), needle, strlen(needle)) != 0)
            s->ok[t] = 0;
    }
}

START_TEST(test_thread_local_errors)
{
    err_set s;
    run_concurrently(err_job, &s);
    for (int t = 0; t < NT; t++)
        ck_assert_msg(s.ok[t], "thread %d saw another thread's error sentence", t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("concurrency");
    TCase *tc = tcase_create("concurrency");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_dense_flash);
    tcase_add_test(tc, test_sparse_layouts);
    tcase_add_test(tc, test_linear_engine);
    tcase_add_test(tc, test_rank_probes);
    tcase_add_test(tc, test_blas_thread_count);
    tcase_add_test(tc, test_entry_points_pairwise);
    tcase_add_test(tc, test_fn_eval);
    tcase_add_test(tc, test_thread_local_errors);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
