/* kat core: status codes, errors, allocation, version, CPU dispatch, threads, RNG. */
#ifndef KAT_CORE_H
#define KAT_CORE_H

#include <stddef.h>
#include <stdint.h>

/* KAT_API marks the library's public functions: the only symbols libkat.so exports (the
 * library is built with hidden visibility by default). */
#if defined(KAT_BUILDING_LIBRARY) && defined(__GNUC__)
#define KAT_API __attribute__((visibility("default")))
#else
#define KAT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Every fallible kat function returns a kat_status. On failure kat_last_error() holds a
 * sentence naming the argument and the value that was wrong; outputs are left untouched. */
typedef enum {
    KAT_OK = 0,
    KAT_EINVAL,   /* invalid argument: NULL, zero size, bad stride, mismatched shapes */
    KAT_EDOM,     /* NaN or Inf in input data, or a function value that is not finite */
    KAT_ERANGE,   /* a size product overflows, or a size is beyond what kat supports */
    KAT_ENOMEM,   /* allocation failed */
    KAT_ENOTSUP,  /* valid request that this build or this object cannot do */
    KAT_ELAPACK,  /* LAPACK reported failure (no convergence) */
    KAT_EPARSE,   /* malformed expression or text */
    KAT_EIO,      /* file could not be opened, read or written */
    KAT_EFORMAT,  /* file opened but its content is malformed, truncated or of the wrong type */
    KAT_STATUS_COUNT
} kat_status;

/* Short fixed text for a status code ("invalid argument", ...). Never NULL. */
KAT_API const char *kat_strerror(kat_status st);

/* The calling thread's last error sentence, or "" when none. Valid until the next kat call
 * on this thread that fails. */
KAT_API const char *kat_last_error(void);

/* Forget the calling thread's last error. */
KAT_API void kat_clear_error(void);

/* ---- allocation ------------------------------------------------------------------------ */

/* 64-byte aligned allocation; NULL (with kat_last_error set) on failure or when bytes == 0
 * overflows. kat_free(NULL) is a no-op. All kat allocations go through these two functions. */
KAT_API void *kat_malloc(size_t bytes);
KAT_API void *kat_calloc(size_t count, size_t size);
KAT_API void kat_free(void *p);

/* Testing hook: make the n-th allocation from now on fail (n >= 1); n = 0 disables.
 * Returns the number of allocations made since the hook was last armed. Process-wide. */
KAT_API size_t kat_debug_fail_alloc_at(size_t n);

/* ---- version and machine --------------------------------------------------------------- */

KAT_API const char *kat_version(void);          /* "0.2.0" */
KAT_API int kat_version_major(void);

typedef enum { KAT_ARCH_REF = 0, KAT_ARCH_AVX2, KAT_ARCH_AVX512, KAT_ARCH_COUNT } kat_arch;

/* The ISA whose kernels are in use: chosen once from cpuid, or from KAT_ARCH=ref|avx2|avx512. */
KAT_API kat_arch kat_arch_get(void);
KAT_API const char *kat_arch_name(void);
/* Force an ISA (for tests and benchmarks). KAT_ENOTSUP if the CPU or the build lacks it. */
KAT_API kat_status kat_arch_set(kat_arch arch);
/* Whether the CPU and the build support an ISA. */
KAT_API int kat_arch_supported(kat_arch arch);

/* Threads used by kat's parallel regions: kat_set_num_threads's n, else KAT_NUM_THREADS, else
 * OpenMP's default; never more than kat_max_threads() (a larger request is capped: thousands
 * of threads only cost time and memory). */
KAT_API int kat_num_threads(void);
KAT_API void kat_set_num_threads(int n);   /* n <= 0 restores the default */
/* The most threads kat uses: 4 per online CPU (at least 4). */
KAT_API int kat_max_threads(void);

/* Under an address-space limit (ulimit -v), make OpenBLAS keep one free work buffer (128 MiB
 * of address space) for the BLAS calls kat makes outside its own checked ones (the feature
 * maps, the theorem checks, the metric routines), so that none of them has to map a buffer:
 * OpenBLAS retries a failed mapping forever; and start the calling thread's OpenMP team of
 * kat_num_threads() threads, whose stacks libgomp cannot do without (it ends the process
 * when one does not fit). Call it again after raising kat's thread count. KAT_ENOMEM naming
 * the memory when they do not fit; KAT_OK at once without a limit. kat's attention and rank
 * calls check their own buffers. OpenBLAS's workers started when it is loaded map their
 * buffers beside the caller: under a limit, load it with OPENBLAS_NUM_THREADS=1. */
KAT_API kat_status kat_blas_reserve(void);

/* BLAS calls of the caller's own (a benchmark's sgemm reference, say) under kat's process-wide
 * BLAS hold: between kat_blas_begin and kat_blas_end OpenBLAS runs `threads` threads
 * (<= 0: kat_num_threads()), no kat call changes that count, and the count found before is
 * put back by kat_blas_end. The bits of kat's results do not depend on OpenBLAS's count or
 * on what other threads compute, the caller's unheld BLAS calls included; they do when
 * another thread changes OpenBLAS's count (openblas_set_num_threads) during a kat call:
 * change it between kat_blas_begin and kat_blas_end. Under an address-space limit KAT_ENOMEM, naming the memory, when
 * OpenBLAS's work buffers for that many threads do not fit (nothing is held then). */
KAT_API kat_status kat_blas_begin(int threads);
KAT_API void kat_blas_end(void);

/* The BLAS in use and its core ("OpenBLAS 0.3.21 ... SkylakeX"), for reports. */
KAT_API const char *kat_blas_info(void);

/* ---- random numbers (GSL mt19937) -------------------------------------------------------- */

typedef struct kat_rng kat_rng;

KAT_API kat_status kat_rng_create(uint64_t seed, kat_rng **out);
KAT_API void kat_rng_destroy(kat_rng *rng);
KAT_API double kat_rng_uniform(kat_rng *rng);                  /* [0, 1) */
KAT_API double kat_rng_gaussian(kat_rng *rng, double sigma);   /* N(0, sigma^2) */
KAT_API double kat_rng_cauchy(kat_rng *rng, double scale);
KAT_API uint64_t kat_rng_uint(kat_rng *rng, uint64_t n);      /* uniform on {0, ..., n-1}, n >= 1 */

/* ---- dense double matrices (row-major views) --------------------------------------------- */

/* A rows x cols row-major view: element (i, j) at data[i*ld + j], ld >= cols. */
typedef struct {
    size_t rows, cols, ld;
    double *data;
} kat_dmat;

/* Allocate a rows x cols matrix (ld = cols), zero-filled. rows or cols may be 0. */
KAT_API kat_status kat_dmat_alloc(size_t rows, size_t cols, kat_dmat *out);
KAT_API void kat_dmat_free(kat_dmat *m);   /* frees data, zeroes the struct; NULL ok */
/* Check a caller's view: non-NULL data when non-empty, ld >= cols, no overflow, and (when
 * check_finite) every entry finite. `what` names the argument in the error. */
KAT_API kat_status kat_dmat_check(const kat_dmat *m, const char *what, int check_finite);

#ifdef __cplusplus
}
#endif
#endif
