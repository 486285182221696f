/* Random feature maps: random Fourier features for the Gaussian and Laplace kernels
 * (Rahimi and Recht, NIPS 2007) and positive random features for exp(s q.k) (FAVOR+,
 * Choromanski et al., arXiv 2009.14794), optionally with orthogonal blocks.
 *
 * Every map is z = W x (one GEMM over a block of rows, OpenBLAS) followed by an entrywise
 * function of z; the gradient is dx = W^T h with h the entrywise derivative times the incoming
 * gradient (a second GEMM), plus the FAVOR+ norm term. */
#include <cblas.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include "core/internal.h"
#include "kat/featmaps.h"
#include "kernels/vmath.h"

typedef enum { RF_RFF, RF_FAVOR } rf_family;

typedef struct {
    rf_family family;
    kat_rff_kernel kernel;    /* RFF */
    kat_rff_form form;        /* RFF */
    unsigned flags;           /* FAVOR */
    size_t d, M;
    double sigma;             /* RFF bandwidth */
    double s;                 /* FAVOR scale */
    double c;                 /* output normalisation: sqrt(2/M), sqrt(1/M) or 1/sqrt(M) */
    double *W;                /* M x d frequencies as drawn (what random_frequencies shows) */
    double *Wz;               /* M x d, the matrix of z = Wz x: sqrt(s) W for FAVOR, else W */
    float *Wz32;
    double *b;                /* M phases (phase form), else NULL */
    float *b32;
} rf_map;

static void rf_free(void *state)
{
    rf_map *m = state;
    if (!m)
        return;
    if (m->Wz != m->W)
        kat_free(m->Wz);
    kat_free(m->W);
    kat_free(m->Wz32);
    kat_free(m->b);
    kat_free(m->b32);
    kat_free(m);
}

/* Rows per GEMM in the gradient (bounds its scratch). */
enum { RF_BLOCK = 256 };

static int fits_int(size_t n) { return n <= (size_t)INT_MAX; }

/* ---- fp32 elementwise helpers the compiler can vectorise (the fp64 path uses libm) ------------ */

/* pi/2 split for Cody-Waite reduction: P1 and P2 have 12 significant bits, so k*P1 and k*P2
 * are exact for |k| < 2^12, and P1 + P2 + P3 = pi/2 to 1.7e-15. */
#define RF_PIO2_1 0x1.92p+0f
#define RF_PIO2_2 0x1.fb4p-12f
#define RF_PIO2_3 0x1.4442d2p-24f
#define RF_2OPI 0x1.45f306p-1f
/* Above this |t| the reduction loses bits (|k| >= 2^12): such rows go through libm. */
#define RF_SINCOS_MAX 6000.0f

/* co[j] = c cos t[j], si[j] = c sin t[j] for |t[j]| <= RF_SINCOS_MAX. t is reduced to r in
 * [-pi/4, pi/4] with t = r + k pi/2; sin r and cos r are their Taylor series to degree 9 and 10,
 * whose remainders (r^11/11! < 2e-9, r^12/12! < 1.2e-10) are below half an ulp; the quadrant
 * k mod 4 then picks and signs them. Rounding k uses the 1.5 * 2^23 trick (no SSE4.1 needed).
 * Error: about 2 ulp of 1 plus the rounding of t. Distinct (restrict) arrays: it vectorises. */
static void rf_sincos_block(size_t n, const float *restrict t, float c, float *restrict co,
                            float *restrict si)
{
    const float shifter = 12582912.0f;   /* 1.5 * 2^23 */
    for (size_t j = 0; j < n; j++) {
        float k = (t[j] * RF_2OPI + shifter) - shifter;
        float r = ((t[j] - k * RF_PIO2_1) - k * RF_PIO2_2) - k * RF_PIO2_3;
        float r2 = r * r;
        float sr = r + r * r2 * (-1.0f / 6 + r2 * (1.0f / 120 + r2 * (-1.0f / 5040 +
                                                                        r2 * (1.0f / 362880))));
        float cr = 1.0f + r2 * (-0.5f + r2 * (1.0f / 24 + r2 * (-1.0f / 720 +
                   r2 * (1.0f / 40320 + r2 * (-1.0f / 3628800)))));
        int q = (int)k;
        float cv = (q & 1) ? sr : cr, sv = (q & 1) ? cr : sr;
        co[j] = c * (((q + 1) & 2) ? -cv : cv);
        si[j] = c * ((q & 2) ? -sv : sv);
    }
}

enum { RF_CHUNK = 64 };

/* For t[j] = z[j] + (b ? b[j] : 0): z[j] <- c cos t[j] and, when other != NULL,
 * other[j] <- c sin t[j] (sin_in_place swaps the two). Works in chunks through local arrays so
 * the in-place update does not stop vectorisation; rows with a huge or non-finite argument go
 * through libm. */
static void rf_sincos_f32(size_t n, float *z, const float *b, float c, int sin_in_place,
                          float *other)
{
    int big = 0;
    for (size_t j = 0; j < n; j++)
        big |= !(fabsf(z[j]) <= RF_SINCOS_MAX - 7.0f);   /* b < 2 pi; NaN counts as big */
    if (big) {
        for (size_t j = 0; j < n; j++) {
            float t = z[j] + (b ? b[j] : 0.0f), cv = c * cosf(t), sv = c * sinf(t);
            if (other)
                other[j] = sin_in_place ? cv : sv;
            z[j] = sin_in_place ? sv : cv;
        }
        return;
    }
    float t[RF_CHUNK], co[RF_CHUNK], si[RF_CHUNK];
    for (size_t j0 = 0; j0 < n; j0 += RF_CHUNK) {
        size_t nb = n - j0 < RF_CHUNK ? n - j0 : RF_CHUNK;
        memcpy(t, z + j0, nb * sizeof(float));
        if (b)
            for (size_t j = 0; j < nb; j++)
                t[j] += b[j0 + j];
        rf_sincos_block(nb, t, c, co, si);
        memcpy(z + j0, sin_in_place ? si : co, nb * sizeof(float));
        if (other)
            memcpy(other + j0, sin_in_place ? co : si, nb * sizeof(float));
    }
}

/* y[j] = c * exp(z[j] - shift), through the dispatched vector 2^x (lib/kernels, <= 1 ulp):
 * exp(u) = 2^(u log2 e), one extra rounding of the argument. y may alias z. */
static void rf_exp_f32(size_t n, const float *z, float shift, float c, float *y)
{
    const float log2e = 0x1.715476p+0f;
    for (size_t j = 0; j < n; j++)
        y[j] = (z[j] - shift) * log2e;
    kat__kernels_exp2(n, y, y);
    for (size_t j = 0; j < n; j++)
        y[j] *= c;
}

/* Z (n x M, row stride ldz) = X Wz^T. Falls back to one GEMV per row when a stride does not
 * fit BLAS's int. */
#define RF_PROJECT(T, NAME, GEMM, GEMV, WZ)                                                     \
    static void NAME(const rf_map *m, size_t n, const T *x, size_t ldx, T *z, size_t ldz)       \
    {                                                                                           \
        int M = (int)m->M, d = (int)m->d;                                                       \
        if (fits_int(n) && fits_int(ldx) && fits_int(ldz)) {                                    \
            GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, M, d, 1, x, (int)ldx, m->WZ,  \
                 d, 0, z, (int)ldz);                                                            \
            return;                                                                             \
        }                                                                                       \
        for (size_t i = 0; i < n; i++)                                                          \
            GEMV(CblasRowMajor, CblasNoTrans, M, d, 1, m->WZ, d, x + i * ldx, 1, 0, z + i * ldz, \
                 1);                                                                            \
    }
RF_PROJECT(double, rf_project, cblas_dgemm, cblas_dgemv, Wz)
RF_PROJECT(float, rf_project_f32, cblas_sgemm, cblas_sgemv, Wz32)

/* The entrywise part, in place on one row f whose first M entries hold z: fp64 with libm. */
static void rf_finish(const rf_map *m, kat_side side, const double *x, double *f)
{
    const size_t M = m->M, d = m->d;
    const double c = m->c;
    if (m->family == RF_RFF) {
        if (m->form == KAT_RFF_PHASE) {
            for (size_t j = 0; j < M; j++)
                f[j] = c * cos(f[j] + m->b[j]);
        } else {
            for (size_t j = 0; j < M; j++) {
                f[M + j] = c * sin(f[j]);
                f[j] = c * cos(f[j]);
            }
        }
        return;
    }
    double shift;
    if (side == KAT_SIDE_QUERY && (m->flags & KAT_FAVOR_STABLE)) {
        shift = f[0];
        for (size_t j = 1; j < M; j++)
            shift = f[j] > shift ? f[j] : shift;
    } else {
        double nx = 0;
        for (size_t j = 0; j < d; j++)
            nx += x[j] * x[j];
        shift = 0.5 * m->s * nx;
    }
    for (size_t j = 0; j < M; j++)
        f[j] = c * exp(f[j] - shift);
}

/* The same in fp32 with the vectorisable helpers. */
static float rf_shift_f32(const rf_map *m, int stable, const float *x, const float *z,
                          size_t *argmax)
{
    if (stable) {
        size_t jm = 0;
        for (size_t j = 1; j < m->M; j++)
            jm = z[j] > z[jm] ? j : jm;
        if (argmax)
            *argmax = jm;
        return z[jm];
    }
    float nx = 0;
    for (size_t j = 0; j < m->d; j++)
        nx += x[j] * x[j];
    return (float)(0.5 * m->s) * nx;
}

static void rf_finish_f32(const rf_map *m, kat_side side, const float *x, float *f)
{
    const size_t M = m->M;
    if (m->family == RF_RFF) {
        rf_sincos_f32(M, f, m->form == KAT_RFF_PHASE ? m->b32 : NULL, (float)m->c, 0,
                      m->form == KAT_RFF_PAIR ? f + M : NULL);
        return;
    }
    int stable = side == KAT_SIDE_QUERY && (m->flags & KAT_FAVOR_STABLE);
    rf_exp_f32(M, f, rf_shift_f32(m, stable, x, f, NULL), (float)m->c, f);
}

#define RF_APPLY(T, NAME, PROJECT, FINISH)                                                      \
    static kat_status NAME(const void *state, kat_side side, size_t n, const T *x, size_t ldx,  \
                           T *f, size_t ldf)                                                    \
    {                                                                                           \
        const rf_map *m = state;                                                                \
        if (n == 0)                                                                             \
            return KAT_OK;                                                                      \
        PROJECT(m, n, x, ldx, f, ldf);                                                          \
        for (size_t i = 0; i < n; i++)                                                          \
            FINISH(m, side, x + i * ldx, f + i * ldf);                                          \
        return KAT_OK;                                                                          \
    }
RF_APPLY(double, rf_apply, rf_project, rf_finish)
RF_APPLY(float, rf_apply_f32, rf_project_f32, rf_finish_f32)

/* Per-row derivative step of the gradient: on entry h = z = Wz x, on exit h = (d feature/dz)^T g;
 * the FAVOR+ terms that do not go through W are added to dx here: -s x sum(h) for
 * exp(z - s|x|^2/2), or -w_{argmax} sum(h) for the stable query side (the derivative of the
 * max, taken at its argmax). fp64 with libm. */
static void rf_deriv(const rf_map *m, kat_side side, const double *x, const double *g, double *h,
                     double *tmp, double *dx)
{
    const size_t M = m->M, d = m->d;
    const double c = m->c;
    (void)tmp;
    if (m->family == RF_RFF) {
        if (m->form == KAT_RFF_PHASE)
            for (size_t j = 0; j < M; j++)
                h[j] = -c * g[j] * sin(h[j] + m->b[j]);
        else
            for (size_t j = 0; j < M; j++)
                h[j] = c * (g[M + j] * cos(h[j]) - g[j] * sin(h[j]));
        return;
    }
    const int stable = side == KAT_SIDE_QUERY && (m->flags & KAT_FAVOR_STABLE);
    size_t jmax = 0;
    double shift, sum = 0.0;
    if (stable) {
        for (size_t j = 1; j < M; j++)
            jmax = h[j] > h[jmax] ? j : jmax;
        shift = h[jmax];
    } else {
        double nx = 0;
        for (size_t j = 0; j < d; j++)
            nx += x[j] * x[j];
        shift = 0.5 * m->s * nx;
    }
    for (size_t j = 0; j < M; j++) {
        h[j] = g[j] * c * exp(h[j] - shift);
        sum += h[j];
    }
    if (stable)
        for (size_t j = 0; j < d; j++)
            dx[j] -= sum * m->Wz[jmax * d + j];
    else
        for (size_t j = 0; j < d; j++)
            dx[j] -= m->s * sum * x[j];
}

/* The same in fp32 with the vectorisable helpers; tmp holds M floats. */
static void rf_deriv_f32(const rf_map *m, kat_side side, const float *x, const float *g, float *h,
                         float *tmp, float *dx)
{
    const size_t M = m->M, d = m->d;
    const float c = (float)m->c;
    if (m->family == RF_RFF) {
        if (m->form == KAT_RFF_PHASE) {
            rf_sincos_f32(M, h, m->b32, 1.0f, 1, NULL);   /* h = sin(z + b) */
            for (size_t j = 0; j < M; j++)
                h[j] = -c * g[j] * h[j];
        } else {
            rf_sincos_f32(M, h, NULL, 1.0f, 0, tmp);      /* h = cos z, tmp = sin z */
            for (size_t j = 0; j < M; j++)
                h[j] = c * (g[M + j] * h[j] - g[j] * tmp[j]);
        }
        return;
    }
    const int stable = side == KAT_SIDE_QUERY && (m->flags & KAT_FAVOR_STABLE);
    size_t jmax = 0;
    rf_exp_f32(M, h, rf_shift_f32(m, stable, x, h, &jmax), c, h);
    float sum = 0.0f;
    for (size_t j = 0; j < M; j++) {
        h[j] *= g[j];
        sum += h[j];
    }
    if (stable)
        for (size_t j = 0; j < d; j++)
            dx[j] -= sum * m->Wz32[jmax * d + j];
    else
        for (size_t j = 0; j < d; j++)
            dx[j] -= (float)m->s * sum * x[j];
}

/* Gradient over blocks of rows: z = Wz x (one GEMM), the derivative step per row, then
 * dx += Wz^T h (a GEMM with beta = 1). */
#define RF_VJP(T, NAME, PROJECT, DERIV, GEMM, WZ)                                               \
    static kat_status NAME(const void *state, kat_side side, size_t n, const T *x, size_t ldx,  \
                           const T *g, size_t ldg, T *dx, size_t lddx)                          \
    {                                                                                           \
        const rf_map *m = state;                                                                \
        const size_t M = m->M, d = m->d;                                                        \
        if (n == 0)                                                                             \
            return KAT_OK;                                                                      \
        T *h = kat__alloc_array((size_t)RF_BLOCK + 1, M * sizeof(T),                             \
                               "random features vjp scratch");                                  \
        if (!h)                                                                                 \
            return KAT_ENOMEM;                                                                  \
        T *tmp = h + (size_t)RF_BLOCK * M;                                                      \
        for (size_t i0 = 0; i0 < n; i0 += RF_BLOCK) {                                           \
            size_t nb = n - i0 < RF_BLOCK ? n - i0 : RF_BLOCK;                                  \
            PROJECT(m, nb, x + i0 * ldx, ldx, h, M);                                            \
            for (size_t i = 0; i < nb; i++)                                                     \
                DERIV(m, side, x + (i0 + i) * ldx, g + (i0 + i) * ldg, h + i * M, tmp,          \
                      dx + (i0 + i) * lddx);                                                    \
            if (fits_int(lddx)) {                                                               \
                GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb, (int)d, (int)M, 1, h,  \
                     (int)M, m->WZ, (int)d, 1, dx + i0 * lddx, (int)lddx);                      \
            } else {                                                                            \
                for (size_t i = 0; i < nb; i++)                                                 \
                    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, (int)d, (int)M, 1,       \
                         h + i * M, (int)M, m->WZ, (int)d, 1, dx + (i0 + i) * lddx, (int)d);    \
            }                                                                                   \
        }                                                                                       \
        kat_free(h);                                                                            \
        return KAT_OK;                                                                          \
    }
RF_VJP(double, rf_vjp, rf_project, rf_deriv, cblas_dgemm, Wz)
RF_VJP(float, rf_vjp_f32, rf_project_f32, rf_deriv_f32, cblas_sgemm, Wz32)

static double rff_score(const void *state, const double *q, const double *k)
{
    const rf_map *m = state;
    double s = 0.0;
    if (m->kernel == KAT_RFF_GAUSSIAN) {
        for (size_t j = 0; j < m->d; j++)
            s += (q[j] - k[j]) * (q[j] - k[j]);
        return exp(-s / (2.0 * m->sigma * m->sigma));
    }
    for (size_t j = 0; j < m->d; j++)
        s += fabs(q[j] - k[j]);
    return exp(-s / m->sigma);
}

static double favor_score(const void *state, const double *q, const double *k)
{
    const rf_map *m = state;
    double s = 0.0;
    for (size_t j = 0; j < m->d; j++)
        s += q[j] * k[j];
    return exp(m->s * s);
}

static const kat_featmap_ops rff_gaussian_ops = {
    .name = "rff-gaussian",
    .apply = rf_apply,
    .apply_f32 = rf_apply_f32,
    .score = rff_score,
    .vjp = rf_vjp,
    .vjp_f32 = rf_vjp_f32,
    .destroy = rf_free,
};

static const kat_featmap_ops rff_laplace_ops = {
    .name = "rff-laplace",
    .apply = rf_apply,
    .apply_f32 = rf_apply_f32,
    .score = rff_score,
    .vjp = rf_vjp,
    .vjp_f32 = rf_vjp_f32,
    .destroy = rf_free,
};

static const kat_featmap_ops favor_ops = {
    .name = "favor",
    .apply = rf_apply,
    .apply_f32 = rf_apply_f32,
    .score = favor_score,
    .vjp = rf_vjp,
    .vjp_f32 = rf_vjp_f32,
    .destroy = rf_free,
};

/* Shared checks and allocation; the caller draws W (and b). */
static kat_status rf_alloc(const char *who, size_t d, size_t M, size_t out_dim, int phases,
                           rf_map **out)
{
    if (d == 0)
        return kat__fail(KAT_EINVAL, "%s: the input dimension d must be >= 1 (got 0)", who);
    if (M == 0)
        return kat__fail(KAT_EINVAL, "%s: the number of random features M must be >= 1 (got 0)",
                        who);
    if (d > KAT_FEATMAP_MAX_DIM || M > KAT_FEATMAP_MAX_DIM || out_dim > KAT_FEATMAP_MAX_DIM ||
        out_dim < M)
        return kat__fail(KAT_ERANGE, "%s: d = %zu and M = %zu give a feature dimension beyond the "
                                    "limit %zu", who, d, M, KAT_FEATMAP_MAX_DIM);
    rf_map *m = kat_calloc(1, sizeof *m);
    if (!m)
        return KAT_ENOMEM;
    m->d = d;
    m->M = M;
    size_t md;
    if (kat_mul_overflow(M, d, &md)) {
        kat_free(m);
        return kat__fail(KAT_ERANGE, "%s: the frequency matrix of M x d = %zu x %zu entries "
                                    "overflows", who, M, d);
    }
    m->W = kat__alloc_array(md, sizeof(double), "random feature frequencies");
    m->Wz32 = kat__alloc_array(md, sizeof(float), "random feature frequencies (fp32)");
    if (phases) {
        m->b = kat__alloc_array(M, sizeof(double), "random feature phases");
        m->b32 = kat__alloc_array(M, sizeof(float), "random feature phases (fp32)");
    }
    if (!m->W || !m->Wz32 || (phases && (!m->b || !m->b32))) {
        rf_free(m);
        return KAT_ENOMEM;
    }
    m->Wz = m->W;
    *out = m;
    return KAT_OK;
}

kat_status kat_featmap_rff_create(kat_rff_kernel kernel, kat_rff_form form, size_t d, size_t M,
                                  double sigma, uint64_t seed, kat_featmap **out)
{
    const char *who = "featmap_rff_create";
    if (kernel != KAT_RFF_GAUSSIAN && kernel != KAT_RFF_LAPLACE)
        return kat__fail(KAT_EINVAL, "%s: kernel = %d is not GAUSSIAN or LAPLACE", who, (int)kernel);
    if (form != KAT_RFF_PHASE && form != KAT_RFF_PAIR)
        return kat__fail(KAT_EINVAL, "%s: form = %d is not PHASE or PAIR", who, (int)form);
    if (!(sigma > 0.0) || !isfinite(sigma))
        return kat__fail(KAT_EINVAL, "%s: the bandwidth sigma = %g must be finite and > 0", who,
                        sigma);
    if (!out)
        return kat__fail(KAT_EINVAL, "%s: out is NULL", who);
    size_t out_dim = form == KAT_RFF_PAIR ? 2 * M : M;
    if (form == KAT_RFF_PAIR && M > SIZE_MAX / 2)
        out_dim = 0;   /* reported as a range error below */
    rf_map *m;
    kat_status st = rf_alloc(who, d, M, out_dim, form == KAT_RFF_PHASE, &m);
    if (st)
        return st;
    m->family = RF_RFF;
    m->kernel = kernel;
    m->form = form;
    m->sigma = sigma;
    m->c = form == KAT_RFF_PHASE ? sqrt(2.0 / (double)M) : sqrt(1.0 / (double)M);
    kat_rng *rng;
    if ((st = kat_rng_create(seed, &rng))) {
        rf_free(m);
        return st;
    }
    /* The spectral densities: N(0, I/sigma^2) for the Gaussian kernel; for the Laplace kernel
     * a product of Cauchy(0, 1/sigma), whose characteristic function is exp(-|t|/sigma). */
    for (size_t i = 0; i < M * d; i++)
        m->W[i] = kernel == KAT_RFF_GAUSSIAN ? kat_rng_gaussian(rng, 1.0 / sigma)
                                             : kat_rng_cauchy(rng, 1.0 / sigma);
    if (m->b)
        for (size_t j = 0; j < M; j++) {
            m->b[j] = 2.0 * M_PI * kat_rng_uniform(rng);
            m->b32[j] = (float)m->b[j];
        }
    kat_rng_destroy(rng);
    for (size_t i = 0; i < M * d; i++)
        m->Wz32[i] = (float)m->W[i];
    return kat_featmap_create(kernel == KAT_RFF_GAUSSIAN ? &rff_gaussian_ops : &rff_laplace_ops,
                              m, d, out_dim, 0u, out);
}

/* Orthogonal blocks: for each block of up to d rows, the Q of a d x d Gaussian matrix
 * (Householder QR, columns multiplied by sign(R_jj) so Q is Haar distributed), each used
 * column scaled by an independent chi_d length so every row is marginally N(0, I). */
static kat_status draw_orthogonal(rf_map *m, kat_rng *rng)
{
    const size_t d = m->d, M = m->M;
    lapack_int n = (lapack_int)d;
    double query[2];
    lapack_int i1 = LAPACKE_dgeqrf_work(LAPACK_COL_MAJOR, n, n, NULL, n, NULL, query, -1);
    lapack_int i2 = LAPACKE_dorgqr_work(LAPACK_COL_MAJOR, n, n, n, NULL, n, NULL, query + 1, -1);
    if (i1 || i2)
        return kat__fail(KAT_ELAPACK, "favor: LAPACK workspace query failed (info %d, %d)",
                        (int)i1, (int)i2);
    size_t lwork = (size_t)fmax(fmax(query[0], query[1]), (double)d);
    size_t dd;
    if (kat_mul_overflow(d, d, &dd) || kat_add_overflow(dd, 2 * d + lwork, &dd))
        return kat__fail(KAT_ERANGE, "favor: d = %zu is too large for orthogonal blocks", d);
    double *A = kat__alloc_array(dd, sizeof(double), "favor orthogonal block");
    if (!A)
        return KAT_ENOMEM;
    double *tau = A + d * d, *rdiag = tau + d, *work = rdiag + d;
    kat_status st = KAT_OK;
    for (size_t row0 = 0; row0 < M && st == KAT_OK; row0 += d) {
        for (size_t i = 0; i < d * d; i++)
            A[i] = kat_rng_gaussian(rng, 1.0);
        lapack_int info = LAPACKE_dgeqrf_work(LAPACK_COL_MAJOR, n, n, A, n, tau, work,
                                              (lapack_int)lwork);
        for (size_t j = 0; j < d && info == 0; j++)
            rdiag[j] = A[j + j * d];
        if (info == 0)
            info = LAPACKE_dorgqr_work(LAPACK_COL_MAJOR, n, n, n, A, n, tau, work,
                                       (lapack_int)lwork);
        if (info) {
            st = kat__fail(KAT_ELAPACK, "favor: QR of a %zu x %zu Gaussian block failed (info %d)",
                          d, d, (int)info);
            break;
        }
        size_t rows = M - row0 < d ? M - row0 : d;
        for (size_t r = 0; r < rows; r++) {
            double chi2 = 0.0;
            for (size_t j = 0; j < d; j++) {
                double gj = kat_rng_gaussian(rng, 1.0);
                chi2 += gj * gj;
            }
            double len = sqrt(chi2) * (rdiag[r] < 0.0 ? -1.0 : 1.0);
            const double *col = A + r * d;   /* column r of Q, unit length */
            for (size_t j = 0; j < d; j++)
                m->W[(row0 + r) * d + j] = len * col[j];
        }
    }
    kat_free(A);
    return st;
}

kat_status kat_featmap_favor_create(size_t d, size_t M, double scale, unsigned flags,
                                    uint64_t seed, kat_featmap **out)
{
    const char *who = "featmap_favor_create";
    if (!(scale > 0.0) || !isfinite(scale))
        return kat__fail(KAT_EINVAL, "%s: scale = %g must be finite and > 0", who, scale);
    if (flags & ~(unsigned)(KAT_FAVOR_ORTHOGONAL | KAT_FAVOR_STABLE))
        return kat__fail(KAT_EINVAL, "%s: flags = %#x has unknown bits", who, flags);
    if (!out)
        return kat__fail(KAT_EINVAL, "%s: out is NULL", who);
    if ((flags & KAT_FAVOR_ORTHOGONAL) && d > (size_t)INT_MAX)
        return kat__fail(KAT_ERANGE, "%s: d = %zu is too large for LAPACK", who, d);
    rf_map *m;
    kat_status st = rf_alloc(who, d, M, M, 0, &m);
    if (st)
        return st;
    m->family = RF_FAVOR;
    m->flags = flags;
    m->s = scale;
    m->c = 1.0 / sqrt((double)M);
    m->Wz = kat__alloc_array(M * d, sizeof(double), "favor scaled frequencies");
    kat_rng *rng = NULL;
    if (!m->Wz || (st = kat_rng_create(seed, &rng))) {
        if (m->Wz == NULL)
            m->Wz = m->W;   /* rf_free must not free W twice */
        rf_free(m);
        return st ? st : KAT_ENOMEM;
    }
    if (flags & KAT_FAVOR_ORTHOGONAL) {
        st = draw_orthogonal(m, rng);
    } else {
        for (size_t i = 0; i < M * d; i++)
            m->W[i] = kat_rng_gaussian(rng, 1.0);
    }
    kat_rng_destroy(rng);
    if (st) {
        rf_free(m);
        return st;
    }
    double rs = sqrt(scale);
    for (size_t i = 0; i < M * d; i++) {
        m->Wz[i] = rs * m->W[i];
        m->Wz32[i] = (float)m->Wz[i];
    }
    return kat_featmap_create(&favor_ops, m, d, M, KAT_FEATMAP_POSITIVE, out);
}

kat_status kat_featmap_random_frequencies(const kat_featmap *fm, kat_dmat *W)
{
    if (!fm || !W)
        return kat__fail(KAT_EINVAL, "featmap_random_frequencies: %s is NULL", fm ? "W" : "fm");
    const kat_featmap_ops *ops = kat_featmap_get_ops(fm);
    if (ops != &rff_gaussian_ops && ops != &rff_laplace_ops && ops != &favor_ops)
        return kat__fail(KAT_EINVAL, "featmap_random_frequencies: map %s is not a random feature "
                                    "map", kat_featmap_name(fm));
    const rf_map *m = kat_featmap_state(fm);
    W->rows = m->M;
    W->cols = m->d;
    W->ld = m->d;
    W->data = m->W;
    return KAT_OK;
}
