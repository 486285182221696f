/* The elu + 1 feature map of linear transformers (Katharopoulos et al. 2020, arXiv 2006.16236):
 * phi(x) = psi(x) = elu(x) + 1, i.e. x + 1 for x > 0 and e^x otherwise. Every feature is > 0,
 * so every kernel value phi(q) . psi(k) is > 0: normalised attention is safe by construction. */
#include <math.h>
#include "core/internal.h"
#include "kat/featmaps.h"

typedef struct {
    size_t d;
} elu_state;

static kat_status elu_apply(const void *state, kat_side side, size_t n, const double *x,
                            size_t ldx, double *f, size_t ldf)
{
    size_t d = ((const elu_state *)state)->d;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            double t = x[i * ldx + j];
            f[i * ldf + j] = t > 0.0 ? t + 1.0 : exp(t);
        }
    return KAT_OK;
}

static kat_status elu_apply_f32(const void *state, kat_side side, size_t n, const float *x,
                                size_t ldx, float *f, size_t ldf)
{
    size_t d = ((const elu_state *)state)->d;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            float t = x[i * ldx + j];
            f[i * ldf + j] = t > 0.0f ? t + 1.0f : expf(t);
        }
    return KAT_OK;
}

static kat_status elu_vjp(const void *state, kat_side side, size_t n, const double *x,
                          size_t ldx, const double *g, size_t ldg, double *dx, size_t lddx)
{
    size_t d = ((const elu_state *)state)->d;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            double t = x[i * ldx + j];
            dx[i * lddx + j] += g[i * ldg + j] * (t > 0.0 ? 1.0 : exp(t));
        }
    return KAT_OK;
}

static kat_status elu_vjp_f32(const void *state, kat_side side, size_t n, const float *x,
                              size_t ldx, const float *g, size_t ldg, float *dx, size_t lddx)
{
    size_t d = ((const elu_state *)state)->d;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            float t = x[i * ldx + j];
            dx[i * lddx + j] += g[i * ldg + j] * (t > 0.0f ? 1.0f : expf(t));
        }
    return KAT_OK;
}

static void elu_destroy(void *state) { kat_free(state); }

static const kat_featmap_ops elu_ops = {
    .name = "elu1",
    .apply = elu_apply,
    .apply_f32 = elu_apply_f32,
    .vjp = elu_vjp,
    .vjp_f32 = elu_vjp_f32,
    .destroy = elu_destroy,
};

kat_status kat_featmap_elu1_create(size_t d, kat_featmap **out)
{
    if (d == 0)
        return kat__fail(KAT_EINVAL, "featmap_elu1_create: d = 0, must be >= 1");
    if (!out)
        return kat__fail(KAT_EINVAL, "featmap_elu1_create: out is NULL");
    elu_state *s = kat_malloc(sizeof *s);
    if (!s)
        return KAT_ENOMEM;
    s->d = d;
    return kat_featmap_create(&elu_ops, s, d, d, KAT_FEATMAP_POSITIVE | KAT_FEATMAP_EXACT, out);
}
