/* libFuzzer harness for the linear-attention forward: the input picks a positive map (elu + 1,
 * Taylor-2, Taylor-1 or Taylor-2 behind the per-token normalisation), small shapes (batch,
 * heads, N_q, N_k, d, d_v), causal or not, the chunk, the in-chunk scores (features or the
 * map's exact score), an initial state, the ISA of the dispatched kernels and the values, with
 * now and then a NaN. A call the API must refuse (causal with N_q != N_k, a NaN) must fail
 * with a message and leave o untouched; an accepted one must agree with the library's oracle:
 * kat_linear_reference in fp64, within the error model kat_attn_error_bound against its naive
 * fp32 run (precision 32) - twice the naive error plus a floor of N_k + D + d + 8 roundings of
 * the output's magnitude, max |v| (positive maps make every output a convex combination of
 * value rows, the state's too). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kat/kat.h"
#include "fuzz_bytes.h"

/* A value in [-1, 1] from one byte. */
static float unit(bytes *b) { return ((float)take(b) - 127.5f) / 127.5f; }

static kat_tensor tensor(size_t B, size_t H, size_t N, size_t D)
{
    size_t n = B * H * N * D;
    return kat_tensor_view(calloc(n ? n : 1, sizeof(float)), B, H, N, D);
}

static kat_featmap *make_map(unsigned kind, size_t d)
{
    kat_featmap *fm = NULL, *inner = NULL;
    switch (kind % 4) {
    case 0:
        kat_featmap_elu1_create(d, &fm);
        break;
    case 1:
        kat_featmap_taylor_create(d, 2, 0.0, &fm);
        break;
    default:
        /* 1 + x is positive for |x| <= 0.9 (the normalised q.k); 1 + x + x^2/2 always */
        if (!kat_featmap_taylor_create(d, kind % 4 == 2 ? 1 : 2, 1.0, &inner))
            kat_featmap_token_norm_create(inner, 1, 0.9, KAT_FEATMAP_POSITIVE, &fm);
        break;
    }
    CHECK(fm != NULL);   /* valid arguments: the constructors must succeed */
    return fm;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bytes in = {data, size};
    unsigned kind = take(&in), flags = take(&in);
    size_t B = 1 + take(&in) % 2, H = 1 + take(&in) % 2, d = 1 + take(&in) % 6;
    size_t dv = take(&in) % 20, nk = take(&in) % 100;
    int causal = (flags & 1) != 0;
    size_t nq = flags & 2 ? take(&in) % 100 : nk;   /* causal with nq != nk is refused */
    kat_arch arch = (kat_arch)(take(&in) % KAT_ARCH_COUNT);
    if (!kat_arch_supported(arch))
        arch = KAT_ARCH_REF;
    kat_arch_set(arch);
    int score = (flags & 4) && kind % 4 != 0;   /* elu + 1 has no score callback */
    kat_linear_opts opts = {.causal = causal, .chunk = take(&in) % 40,
                            .intra = score ? KAT_LINEAR_INTRA_SCORE : KAT_LINEAR_INTRA_AUTO};
    kat_featmap *fm = make_map(kind, d);
    size_t D = kat_featmap_out_dim(fm);

    kat_tensor q = tensor(B, H, nq, d), k = tensor(B, H, nk, d), v = tensor(B, H, nk, dv);
    kat_tensor o = tensor(B, H, nq, dv), s0 = tensor(B, H, D, dv + 1);
    float vmax = 0.0f;
    for (size_t i = 0; i < B * H * nq * d; i++)
        q.data[i] = unit(&in);
    for (size_t i = 0; i < B * H * nk * d; i++)
        k.data[i] = unit(&in);
    for (size_t i = 0; i < B * H * nk * dv; i++)
        vmax = fmaxf(vmax, fabsf(v.data[i] = unit(&in)));
    /* the state of three prefix tokens per head, by the definition S = sum psi(k) [v | 1] */
    int with_state = (flags & 8) != 0;
    for (size_t hd = 0; with_state && hd < B * H; hd++) {
        double xk[3 * 6], fk[3 * 64];   /* d <= 6: D <= 28 */
        kat_dmat X = {3, d, d, xk}, F = {3, D, D, fk};
        for (size_t i = 0; i < 3 * d; i++)
            xk[i] = unit(&in);
        CHECK(kat_featmap_apply(fm, KAT_SIDE_KEY, &X, &F) == KAT_OK);
        for (int t = 0; t < 3; t++) {
            float vt[20];
            for (size_t c = 0; c < dv; c++)
                vmax = fmaxf(vmax, fabsf(vt[c] = unit(&in)));
            for (size_t r = 0; r < D; r++) {
                float *row = s0.data + (hd * D + r) * (dv + 1);
                for (size_t c = 0; c < dv; c++)
                    row[c] += (float)fk[t * D + r] * vt[c];
                row[dv] += (float)fk[t * D + r];
            }
        }
    }
    int nan = (flags & 16) && nq * d > 0;
    if (nan)
        q.data[take(&in) % (B * H * nq * d)] = NAN;
    for (size_t i = 0; i < B * H * nq * dv; i++)
        o.data[i] = 12345.0f;   /* sentinel: a refused call must leave it */

    const kat_tensor *state = with_state ? &s0 : NULL;
    kat_status st = kat_linear_forward(fm, &opts, &q, &k, &v, &o, state, NULL);
    int must_refuse = (causal && nq != nk) || nan;
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "status %d: %s\n", (int)st, st ? kat_last_error() : "");
    CHECK(must_refuse == (st != KAT_OK));
    if (st != KAT_OK) {
        CHECK(kat_last_error()[0] != '\0');
        for (size_t i = 0; i < B * H * nq * dv; i++)
            CHECK(o.data[i] == 12345.0f);
    } else {
        size_t n = B * H * nq * dv;
        double *ref = malloc((n ? n : 1) * sizeof(double));
        double *naive = malloc((n ? n : 1) * sizeof(double));
        CHECK(kat_linear_reference(fm, &opts, 0, 64, &q, &k, &v, state, ref) == KAT_OK);
        CHECK(kat_linear_reference(fm, &opts, 0, 32, &q, &k, &v, state, naive) == KAT_OK);
        double err = 0.0, nerr = 0.0;
        for (size_t i = 0; i < n; i++) {
            err = fmax(err, fabs((double)o.data[i] - ref[i]));
            nerr = fmax(nerr, fabs(naive[i] - ref[i]));
        }
        double bound = kat_attn_error_bound(nerr, vmax, (double)(nk + D + d + 8), 0.0);
        if (!(err <= bound)) {
            fprintf(stderr, "fuzz_linear: error %.3g above the bound %.3g (naive fp32 %.3g)\n",
                    err, bound, nerr);
            abort();
        }
        free(ref), free(naive);
    }
    kat_featmap_destroy(fm);
    free(q.data), free(k.data), free(v.data), free(o.data), free(s0.data);
    return 0;
}
