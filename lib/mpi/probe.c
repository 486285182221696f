/* The distributed rank probe: SLEPc's SVD on the shell matrix of M, asked for more singular
 * values (k doubling) until at least `oversample` of them fall below the rank threshold. */
#include <math.h>
#include <slepcsvd.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include "core/internal.h"
#include "mpi/mpi_internal.h"

/* The options as numbers, to compare across processes (names for the message). */
enum { NOPT = 13 };
static const char *const opt_names[NOPT] = {
    "form", "scale", "rtol", "atol", "eps", "predict", "seed", "block", "oversample",
    "power_iters", "max_rank", "tile_rows", "f"};

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; s && *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static kat_status check_same_opts(MPI_Comm comm, const kat_fn *f, const kat_rank_opts *o)
{
    /* Bit patterns, so that every value (a NaN too) compares exactly. */
    double dv[NOPT] = {(double)o->form, o->scale, o->rtol, o->atol, o->eps, (double)o->predict,
                       0, (double)o->block, (double)o->oversample, (double)o->power_iters,
                       (double)o->max_rank, (double)o->tile_rows, 0};
    uint64_t mine[NOPT], lo[NOPT], hi[NOPT];
    for (int i = 0; i < NOPT; i++)
        memcpy(&mine[i], &dv[i], sizeof mine[i]);
    mine[6] = o->seed;
    mine[12] = fnv1a(f ? kat_fn_name(f) : "identity");
    MPI_Allreduce(mine, lo, NOPT, MPI_UINT64_T, MPI_MIN, comm);
    MPI_Allreduce(mine, hi, NOPT, MPI_UINT64_T, MPI_MAX, comm);
    for (int i = 0; i < NOPT; i++)
        if (lo[i] != hi[i])
            return kat__fail(KAT_EINVAL, "kat_mpi_rank_probe: %s%s differs between processes; "
                            "every process must be given the same options", i == 12 ? "" :
                            "opts.", opt_names[i]);
    return KAT_OK;
}

static kat_status check_local(const kat_rank_opts *o, const kat_dmat *Q, const kat_dmat *K,
                              kat_rank_result *res)
{
    const char *who = "kat_mpi_rank_probe";
    if (!o || !res || !Q || !K)
        return kat__fail(KAT_EINVAL, "%s: %s is NULL", who, !o ? "opts" : !res ? "res"
                                                                 : !Q ? "Qloc" : "Kloc");
    kat_rank_opts r = *o;   /* the distributed probe is the randomized search */
    r.method = KAT_RANK_RANDOMIZED;
    return kat__rank_check_opts(who, &r);
}

/* One SVDSolve for the k largest singular values, starting from the right vectors v0 (n0 of
 * them, may be 0). On success sv[0..k-1] and the right vectors (replacing v0) are set. */
static kat_status solve(kmpi_op *op, Mat A, const kat_rank_opts *o, PetscInt k, Vec **v,
                        PetscInt *nv, double *sv)
{
    SVD svd = NULL;
    PetscErrorCode ierr;
    kat_status st = KAT_OK;
    PetscInt nconv = 0;
    const char *what = "SVDCreate";
#define KMPI_TRY(call)                                                                         \
    do {                                                                                       \
        what = #call;                                                                          \
        if ((ierr = (call)))                                                                   \
            goto fail;                                                                         \
    } while (0)
    KMPI_TRY(SVDCreate(op->comm, &svd));
    KMPI_TRY(SVDSetOperators(svd, A, NULL));
    KMPI_TRY(SVDSetWhichSingularTriplets(svd, SVD_LARGEST));
    KMPI_TRY(SVDSetDimensions(svd, k, k, k));
    /* A fixed number of subspace iterations, no residuals: SLEPc's residual check costs two
     * single-vector products per value, each a whole pass over M. */
    KMPI_TRY(SVDSetType(svd, SVDRANDOMIZED));
    KMPI_TRY(SVDSetConvergenceTest(svd, SVD_CONV_MAXIT));
    KMPI_TRY(SVDSetTolerances(svd, PETSC_DEFAULT, 1 + o->power_iters));
    KMPI_TRY(SVDSetImplicitTranspose(svd, PETSC_FALSE));
    if (*nv)
        KMPI_TRY(SVDSetInitialSpaces(svd, *nv, *v, 0, NULL));
    KMPI_TRY(SVDSetFromOptions(svd));
    KMPI_TRY(SVDSetUp(svd));
    {
        BV V, U;
        PetscRandom rnd;
        KMPI_TRY(SVDGetBV(svd, &V, &U));
        /* Block orthogonalisation by TSQR: one reduction over the processes per block, where
         * the default Gram-Schmidt takes two per column (k of them), each a synchronisation
         * that costs scheduling delays on a busy machine (4x the whole probe at n = 4096). */
        KMPI_TRY(BVSetOrthogonalization(V, BV_ORTHOG_CGS, BV_ORTHOG_REFINE_IFNEEDED,
                                        PETSC_DEFAULT, BV_ORTHOG_BLOCK_TSQR));
        KMPI_TRY(BVSetOrthogonalization(U, BV_ORTHOG_CGS, BV_ORTHOG_REFINE_IFNEEDED,
                                        PETSC_DEFAULT, BV_ORTHOG_BLOCK_TSQR));
        KMPI_TRY(BVGetRandomContext(V, &rnd));
        /* One stream per process: equal streams would repeat each process's block of the
         * Gaussian test vectors, which then span far fewer directions than they have. */
        KMPI_TRY(PetscRandomSetSeed(rnd, (unsigned long)(o->seed * 1000003ull + 0x6b6174ull +
                                                         7919ull * (unsigned long)op->me)));
        KMPI_TRY(PetscRandomSeed(rnd));
    }
    KMPI_TRY(SVDSolve(svd));
    KMPI_TRY(SVDGetConverged(svd, &nconv));
    if (nconv < k) {
        st = kat__fail(KAT_ELAPACK, "kat_mpi_rank_probe: SLEPc's randomized solver converged "
                      "%d of the %d singular values asked for", (int)nconv, (int)k);
        goto done;
    }
    /* The right singular vectors, the next solve's start. */
    if (*v)
        KMPI_TRY(VecDestroyVecs(*nv, v));
    *nv = 0;
    Vec tmp;
    KMPI_TRY(MatCreateVecs(A, &tmp, NULL));
    ierr = VecDuplicateVecs(tmp, k, v);
    VecDestroy(&tmp);
    what = "VecDuplicateVecs";
    if (ierr)
        goto fail;
    *nv = k;
    for (PetscInt i = 0; i < k; i++) {
        PetscReal s;
        KMPI_TRY(SVDGetSingularTriplet(svd, i, &s, NULL, (*v)[i]));
        sv[i] = (double)s;
    }
    goto done;
fail:
    if (op->failed) {   /* a product failed on some process: its agreed sentence stands */
        char msg[600];
        snprintf(msg, sizeof msg, "%s", kat_last_error());
        st = kat__fail(op->failed, "%s", msg);
        op->failed = KAT_OK;
    } else {
        st = kat__mpi_petsc_fail(ierr, what);
    }
done:
    SVDDestroy(&svd);
    return st;
#undef KMPI_TRY
}

kat_status kat_mpi_rank_probe(MPI_Comm comm, const kat_fn *f, const kat_dmat *Qloc,
                              const kat_dmat *Kloc, const kat_rank_opts *opts,
                              kat_rank_result *res, kat_mpi_stats *stats)
{
    kat_status st = kat_mpi_agree(comm, check_local(opts, Qloc, Kloc, res));
    if (st || (st = kat_mpi_agree(comm, check_same_opts(comm, f, opts))))
        return st;
    kmpi_op op;
    if ((st = kat__mpi_op_init(&op, comm, f, opts->form, opts->scale, Qloc, Kloc, opts->tile_rows)))
        return st;
    size_t n = op.n, m = op.m, mn = n < m ? n : m, base, pred;
    size_t K = opts->max_rank && opts->max_rank < mn ? opts->max_rank : mn;
    if ((st = kat__mpi_predict(&op, f, opts, &base, &pred))) {
        kat__mpi_op_free(&op);
        return st;
    }
    double *sv = kat__alloc_array(K, sizeof(double), "mpi rank: singular values");
    Mat A = NULL;
    PetscErrorCode ierr = sv ? kat__mpi_shell_create(&op, 0, &A) : 0;
    if (!sv)
        st = KAT_ENOMEM;
    else if (ierr)
        st = kat__mpi_petsc_fail(ierr, "MatCreateShell");
    if ((st = kat_mpi_agree(comm, st))) {
        MatDestroy(&A);
        kat_free(sv);
        kat__mpi_op_free(&op);
        return st;
    }
    Vec *v = NULL;
    PetscInt nv = 0;
    /* The first solve asks for the predicted rank and the oversampling when theory gives
     * one (each solve multiplies all k vectors again, so starting low costs passes); the
     * search still has to find `oversample` values below the threshold. */
    size_t k = opts->block ? opts->block : 64, solves = 0;
    if (pred != KAT_RANK_NONE && pred + opts->oversample > k)
        k = pred + opts->oversample;
    if (k > K)
        k = K;
    int converged = 0;
    op.want_fro = 1;
    size_t nl = op.qoff[op.me + 1] - op.qoff[op.me], ml = op.koff[op.me + 1] - op.koff[op.me];
    for (;;) {
        /* SLEPc's two bases, the kept right vectors, kat's remote block (and its packed
         * copy) and partial product, and the k x k projected problem: checked first, so that a
         * search that would not fit fails on every process with a sentence instead of being
         * killed. */
        double words = (double)k * (2.0 * (double)nl + 3.0 * (double)ml +
                                    2.0 * (double)(n > m ? n : m) / (double)op.np) +
                       4.0 * (double)k * (double)k;
        if ((st = kat_mpi_agree(comm, kat__rank_mem_check(words * sizeof(double), "the distributed "
                                                     "probe's vectors on this process",
                                                     "; use more processes, lower max_rank "
                                                     "(--max-rank) or loosen the tolerance "
                                                     "(--rtol)"))))
            break;
        if ((st = kat_mpi_agree(comm, solve(&op, A, opts, (PetscInt)k, &v, &nv, sv))))
            break;
        solves++;
        /* Saturated: at least `oversample` values at or below the threshold, so (with high
         * probability, as in kat_rank_randomized) none above it is left out. */
        double tau = kat__rank_search_threshold(sv[0], n, m, opts);
        int done = k - kat__rank_count_above(sv, k, tau) >= opts->oversample;
        if (done && opts->eps > 0.0) {
            size_t kf = kat__rank_eps_frobenius_fro(sv, k, &op.fro, opts->eps);
            done = kf != KAT_RANK_NONE && k - kf >= opts->oversample;
        }
        if (done || k == mn) {
            converged = 1;
            break;
        }
        if (k == K)
            break;
        k = k > K / 2 ? K : 2 * k;
    }
    if (v)
        VecDestroyVecs(nv, &v);
    MatDestroy(&A);
    if (!st) {
        kat__rank_result_from_values(res, n, m, sv, k, &op.fro, opts, converged,
                                op.stats.products + op.stats.vector_products);
        res->d = op.d;
        res->base_rank = base;
        res->predicted_rank = pred;
        sv = NULL;
    }
    if (stats) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        *stats = op.stats;
        stats->solves = solves;
        stats->peak_rss_mib = (double)ru.ru_maxrss / 1024.0;
    }
    kat_free(sv);
    kat__mpi_op_free(&op);
    return st;
}
