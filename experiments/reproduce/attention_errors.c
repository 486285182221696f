/* The report's accuracy table: every attention kernel's error against an fp64 reference on
 * the same seeded fp32 inputs (N off the tile grid). Dense flash against
 * kat_attn_reference_*, sliding-window sparse flash against the library's masked oracle
 * (kat_attn_reference_masked), Taylor-2 linear attention against kat_linear_reference. The error is
 * max |x - x_ref| / max |x_ref| over the whole output. */
#include <math.h>
#include <string.h>
#include "../attn_cli.h"
#include "kat/featmaps.h"
#include "kat/linear.h"
#include "kat/sparse.h"
#include "reproduce.h"

enum { ERR_H = 2, ERR_D = 64, ERR_WINDOW = 128 };

/* max |x - ref| / max |ref| over n values (x is a contiguous fp32 tensor). */
static double rel_err(const float *x, const double *ref, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)x[i] - ref[i]));
        den = fmax(den, fabs(ref[i]));
    }
    return den > 0.0 ? num / den : num;
}

/* Causal sliding-window softmax attention in fp64 from the library's oracle
 * (kat_attn_reference_masked): query i sees keys i - W < j <= i. */
static kat_status window_reference(const attn_tensors *t, size_t W, double *o)
{
    const kat_attn_desc *d = &t->desc;
    size_t N = d->N, M = d->M;
    uint8_t *allowed = kat_malloc(d->B * d->H * N * M + 1);
    if (!allowed)
        return KAT_ENOMEM;
    for (size_t bh = 0; bh < d->B * d->H; bh++)
        for (size_t i = 0; i < N; i++)
            for (size_t j = 0; j < M; j++)
                allowed[(bh * N + i) * M + j] = j <= i && i - j < W;
    kat_status st = kat_attn_reference_masked(d, allowed, 64, &t->q, &t->k, &t->v, NULL, o,
                                              NULL, NULL, NULL, NULL);
    kat_free(allowed);
    return st;
}

static kat_status dense_errors(attn_tensors *t, int causal, double err[5])
{
    const kat_attn_desc *d = &t->desc;
    size_t nq = d->B * d->H * d->N, nk = d->B * d->H_kv * d->M, D = d->D;
    kat_attn_desc dd = *d;
    dd.causal = causal;
    double *ref = kat_malloc((3 * nq * D + 2 * nk * D + nq) * sizeof *ref);
    if (!ref)
        return KAT_ENOMEM;
    double *ro = ref, *rlse = ro + nq * D, *rdq = rlse + nq, *rdk = rdq + nq * D,
           *rdv = rdk + nk * D;
    kat_status st = kat_attn_dense_forward(&t->q, &t->k, &t->v, &t->o, &t->lse, causal, 0.0);
    if (!st)
        st = kat_attn_dense_backward(&t->q, &t->k, &t->v, &t->o, &t->lse, &t->dout, &t->dq,
                                     &t->dk, &t->dv, causal, 0.0);
    if (!st)
        st = kat_attn_reference_forward(&dd, &t->q, &t->k, &t->v, ro, rlse);
    if (!st)
        st = kat_attn_reference_backward(&dd, &t->q, &t->k, &t->v, &t->dout, rdq, rdk, rdv);
    if (!st) {
        err[0] = rel_err(t->o.data, ro, nq * D);
        err[1] = rel_err(t->lse.data, rlse, nq);
        err[2] = rel_err(t->dq.data, rdq, nq * D);
        err[3] = rel_err(t->dk.data, rdk, nk * D);
        err[4] = rel_err(t->dv.data, rdv, nk * D);
    }
    kat_free(ref);
    return st;
}

static kat_status window_error(attn_tensors *t, double *err)
{
    const kat_attn_desc *d = &t->desc;
    size_t n = d->H * d->N * d->D;
    kat_attn_desc dd = *d;
    dd.causal = 1;
    kat_attn_pattern pat = {.kind = KAT_ATTN_WINDOW, .window = ERR_WINDOW, .block_q = 48,
                            .block_k = 48};
    kat_attn_plan *plan = NULL;
    double *ref = kat_malloc(n * sizeof *ref);
    kat_status st = ref ? KAT_OK : KAT_ENOMEM;
    if (!st)
        st = kat_attn_plan_create(&dd, &pat, &plan);
    if (!st)
        st = kat_attn_forward(plan, NULL, &t->q, &t->k, &t->v, &t->o, NULL, NULL);
    if (!st)
        st = window_reference(t, ERR_WINDOW, ref);
    if (!st)
        *err = rel_err(t->o.data, ref, n);
    kat_attn_plan_destroy(plan);
    kat_free(ref);
    return st;
}

static kat_status linear_error(attn_tensors *t, double *err)
{
    size_t n = t->desc.H * t->desc.N * t->desc.D;
    kat_featmap *fm = NULL;
    kat_featmap_spec spec;
    kat_linear_opts lo = {.causal = 1};
    double *ref = kat_malloc(n * sizeof *ref);
    kat_status st = ref ? kat_featmap_spec_parse("taylor2", &spec) : KAT_ENOMEM;
    spec.norm = 1;   /* FAST's Fastmax, as `kat attn --mode linear --params map=taylor2` */
    if (!st)
        st = kat_featmap_spec_create(&spec, t->desc.D, 0, &fm);
    if (!st)
        st = kat_linear_forward(fm, &lo, &t->q, &t->k, &t->v, &t->o, NULL, NULL);
    if (!st)
        st = kat_linear_reference(fm, &lo, 0, 64, &t->q, &t->k, &t->v, NULL, ref);
    if (!st)
        *err = rel_err(t->o.data, ref, n);
    kat_featmap_destroy(fm);
    kat_free(ref);
    return st;
}

int repro_attention_errors(repro *R)
{
    const size_t N = R->quick ? 500 : 1000;
    attn_opts o;
    memset(&o, 0, sizeof o);
    o.B = 1, o.H = ERR_H, o.N = N, o.M = N, o.D = ERR_D, o.seed = R->seed;
    attn_tensors t;
    kat_status st = attn_tensors_random(&o, 1, &t);
    int have_tensors = st == KAT_OK;
    double dn[5] = {0}, dc[5] = {0}, win = 0.0, lin = 0.0;
    repro_progress(R, 0.0, "dense flash");
    if (!st)
        st = dense_errors(&t, 0, dn);
    repro_progress(R, 0.4, "dense flash, causal");
    if (!st)
        st = dense_errors(&t, 1, dc);
    repro_progress(R, 0.8, "sparse window");
    if (!st)
        st = window_error(&t, &win);
    repro_progress(R, 0.9, "linear Taylor-2");
    if (!st)
        st = linear_error(&t, &lin);
    if (have_tensors)
        attn_tensors_free(&t);
    if (st) {
        report_printf(&R->rep, "## Accuracy against fp64\n\n**Failed:** %s: %s\n\n",
                      kat_strerror(st), kat_last_error());
        repro_note(R, "accuracy failed: %s: %s", kat_strerror(st), kat_last_error());
        R->failures++;
        return -1;
    }
    report_printf(&R->rep,
                  "## Accuracy against fp64\n\n"
                  "B = 1, H = %d, N = M = %zu (not a multiple of the tiles), D = %d, fp32 "
                  "inputs with unit-variance entries, ISA %s. Error: max |x − x_ref| / "
                  "max |x_ref| over the whole output, against a reference computed in fp64 "
                  "from the same inputs (dense: `kat_attn_reference_*`; window: the masked "
                  "oracle `kat_attn_reference_masked`; linear: `kat_linear_reference`, the same kernel summed "
                  "quadratically).\n\n",
                  ERR_H, N, ERR_D, kat_arch_name());
    report_table_header(&R->rep, "kernel|output|relative error");
    const char *names[5] = {"o", "lse", "dq", "dk", "dv"};
    for (int i = 0; i < 5; i++)
        report_table_row(&R->rep, "dense flash|%s|%.2e", names[i], dn[i]);
    for (int i = 0; i < 5; i++)
        report_table_row(&R->rep, "dense flash, causal|%s|%.2e", names[i], dc[i]);
    report_table_row(&R->rep, "sparse flash, causal window %d|o|%.2e", ERR_WINDOW, win);
    report_table_row(&R->rep, "linear, Taylor-2 causal|o|%.2e", lin);
    report_printf(&R->rep, "\n");
    double worst = fmax(fmax(dn[0], dc[0]), fmax(win, lin));
    repro_note(R, "accuracy: worst relative error of o against fp64 %.1e (dense, causal, "
               "window, Taylor-2)", worst);
    /* fp32 attention of unit-variance inputs lands near 1e-6; 1e-4 would mean a wrong kernel */
    double all[] = {dn[0], dn[1], dn[2], dn[3], dn[4], dc[0], dc[1], dc[2], dc[3], dc[4], win,
                    lin};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!(all[i] < 1e-4)) {
            report_printf(&R->rep, "**An error above 1e-4:** a kernel disagrees with its "
                          "fp64 reference.\n\n");
            R->failures++;
            break;
        }
    return 0;
}
