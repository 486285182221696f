/* The flash tile operations on one core: kat's AVX-512 micro-kernels against OpenBLAS's
 * cblas_sgemm and libxsmm's JIT small GEMMs on the same tiles, and kat's vector 2^x against
 * SLEEF's (the libraries docs/design.md says to measure before writing one's own).
 *
 *   bench_attn_tiles [D] [reps]      (run with OPENBLAS_CORETYPE=SkylakeX, one thread)
 *
 * Tiles: scores S^T[96 x 48] = K[96 x D] Q^T[D x 48]; accumulation O[48 x D] += P V[96 x D];
 * 2^x over 4096 floats in [-30, 0]. Each library gets the layout it takes natively. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "kernels/kernels.h"
#if HAVE_LIBXSMM
#include <libxsmm.h>
#endif
#if HAVE_SLEEF
#include <immintrin.h>
#include <sleef.h>
#endif

enum { BQ = KAT_KERN_LANES, BK = 96 };

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Best of 7 timings of `reps` calls, in ns per call. */
#define TIME(ns, reps, body)                                                                 \
    do {                                                                                     \
        double best_ = 1e300;                                                                \
        for (int r_ = 0; r_ < 7; r_++) {                                                     \
            double t0_ = now();                                                              \
            for (int i_ = 0; i_ < (reps); i_++) {                                            \
                body;                                                                        \
            }                                                                                \
            double t_ = (now() - t0_) / (reps) * 1e9;                                        \
            best_ = t_ < best_ ? t_ : best_;                                                 \
        }                                                                                    \
        (ns) = best_;                                                                        \
    } while (0)

static float *floats(size_t n, float lo, float hi, unsigned seed)
{
    float *p = kat_malloc(n * sizeof(float));
    srand(seed);
    for (size_t i = 0; i < n; i++)
        p[i] = lo + (hi - lo) * (float)rand() / (float)RAND_MAX;
    return p;
}

#if HAVE_SLEEF
/* sleef.h declares its AVX-512 entry points only when the whole file is built for AVX-512,
 * and the library is not: declare the one we call here, for AVX-512 only (clang refuses a
 * __m512 argument to a function whose declaration lacks the target). */
__attribute__((target("avx512f"))) __m512 Sleef_exp2f16_u10avx512f(__m512);

__attribute__((target("avx512f"))) static void sleef_exp2(int n, const float *x, float *y)
{
    for (int i = 0; i < n; i += 16)
        _mm512_storeu_ps(y + i, Sleef_exp2f16_u10avx512f(_mm512_loadu_ps(x + i)));
}
#endif

static void row(const char *op, const char *who, double ns, double flops)
{
    printf("| %-26s | %-22s | %9.1f | %7.1f |\n", op, who, ns, flops / ns);
}

int main(int argc, char **argv)
{
    size_t D = argc > 1 ? (size_t)atoi(argv[1]) : 64;
    int reps = argc > 2 ? atoi(argv[2]) : 2000;
    if (D < 1 || D > 256 || reps < 1) {
        fprintf(stderr, "usage: bench_attn_tiles [D in 1..256] [reps]\n");
        return 2;
    }
    const kat_kernels *kern = kat__kernels_for(KAT_ARCH_AVX512);
    if (!kern) {
        fprintf(stderr, "bench_attn_tiles: this CPU or build has no AVX-512 kernels\n");
        return 1;
    }
    openblas_set_num_threads(1);
    size_t ldd = (D + 15) / 16 * 16;
    float *K = floats(BK * D, -1, 1, 1), *V = floats(BK * D, -1, 1, 2);
    float *Qt = floats(D * BQ, -1, 1, 3), *S = floats(BK * BQ, 0, 0, 4);
    float *Pt = floats(BK * BQ, 0, 1, 5), *P = floats(BQ * BK, 0, 1, 6);
    float *O = floats(BQ * ldd, -1, 1, 7), *alpha = floats(BQ, 0.99f, 1.0f, 8);
    const float *krows[BK], *vrows[BK];
    for (size_t j = 0; j < BK; j++)
        krows[j] = K + j * D, vrows[j] = V + j * D;
    double fl = 2.0 * BK * BQ * (double)D, ns;

    printf("One core, D = %zu; ns per tile (best of 7 x %d) and GFLOP/s.\n\n", D, reps);
    printf("| %-26s | %-22s | %9s | %7s |\n|---|---|---|---|\n", "tile", "implementation",
           "ns", "GFLOP/s");
    TIME(ns, reps, kern->scores(BK, krows, D, Qt, BQ, S));
    row("S^T = K Q^T (96x48xD)", "kat avx512 kernel", ns, fl);
    TIME(ns, reps,
         cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, BK, BQ, (int)D, 1.0f, K, (int)D,
                     Qt, BQ, 0.0f, S, BQ));
    row("S^T = K Q^T (96x48xD)", "OpenBLAS cblas_sgemm", ns, fl);
#if HAVE_LIBXSMM
    {
        libxsmm_blasint m = BQ, n = BK, k = (libxsmm_blasint)D, lda = BQ, ldb = k, ldc = BQ;
        float a1 = 1, b0 = 0;
        libxsmm_smmfunction f = libxsmm_smmdispatch(m, n, k, &lda, &ldb, &ldc, &a1, &b0, NULL,
                                                    NULL);
        if (f) {
            TIME(ns, reps, f(Qt, K, S));
            row("S^T = K Q^T (96x48xD)", "libxsmm JIT", ns, fl);
        } else {
            printf("| S^T = K Q^T | libxsmm: no kernel |\n");
        }
    }
#endif
    TIME(ns, reps, kern->accum(BQ, BK, Pt, 1, BQ, vrows, D, O, ldd, alpha));
    row("O = a O + P V (48x96xD)", "kat avx512 kernel", ns, fl);
    TIME(ns, reps,
         cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, BQ, (int)D, BK, 1.0f, Pt, BQ, V,
                     (int)D, 1.0f, O, (int)ldd));
    row("O = O + P V (48x96xD)", "OpenBLAS cblas_sgemm", ns, fl);
#if HAVE_LIBXSMM
    {
        libxsmm_blasint m = (libxsmm_blasint)D, n = BQ, k = BK, lda = m, ldb = BK,
                        ldc = (libxsmm_blasint)ldd;
        float a1 = 1, b1 = 1;
        libxsmm_smmfunction f = libxsmm_smmdispatch(m, n, k, &lda, &ldb, &ldc, &a1, &b1, NULL,
                                                    NULL);
        if (f) {
            TIME(ns, reps, f(V, P, O));
            row("O = O + P V (48x96xD)", "libxsmm JIT", ns, fl);
        }
    }
#endif

    /* 2^x: throughput and the largest error on these inputs. */
    enum { NX = 4096 };
    float *x = floats(NX, -30, 0, 9), *y = floats(NX, 0, 0, 10);
    printf("\n| %-26s | %-22s | %9s | %7s |\n|---|---|---|---|\n", "2^x, 4096 floats",
           "implementation", "ns/value", "max ulp");
    double ulp;
#define MAXULP()                                                                             \
    do {                                                                                     \
        ulp = 0;                                                                             \
        for (int i = 0; i < NX; i++) {                                                       \
            double e = exp2((double)x[i]);                                                   \
            int ex;                                                                          \
            frexp(e, &ex);                                                                   \
            double u = fabs(y[i] - e) / ldexp(1.0, ex - 24);                                 \
            ulp = u > ulp ? u : ulp;                                                         \
        }                                                                                    \
    } while (0)
    TIME(ns, reps / 10 + 1, kern->exp2(NX, x, y));
    MAXULP();
    printf("| %-26s | %-22s | %9.3f | %7.3f |\n", "2^x", "kat avx512", ns / NX, ulp);
#if HAVE_SLEEF
    TIME(ns, reps / 10 + 1, sleef_exp2(NX, x, y));
    MAXULP();
    printf("| %-26s | %-22s | %9.3f | %7.3f |\n", "2^x", "SLEEF exp2f16_u10avx512f", ns / NX,
           ulp);
#endif
    TIME(ns, reps / 10 + 1, for (int i = 0; i < NX; i++) y[i] = exp2f(x[i]));
    MAXULP();
    printf("| %-26s | %-22s | %9.3f | %7.3f |\n", "2^x", "libm exp2f (scalar)", ns / NX, ulp);
    kat_free(K), kat_free(V), kat_free(Qt), kat_free(S), kat_free(Pt), kat_free(P);
    kat_free(O), kat_free(alpha), kat_free(x), kat_free(y);
    return 0;
}
