/* The dense flash plan: tiling, work items and workspace layout (never installed). */
#ifndef KAT_FLASH_PLAN_H
#define KAT_FLASH_PLAN_H

#include "attn/flash_internal.h"
#include "kat/attn.h"

typedef struct kat_flash_plan {
    kat_attn_desc d;            /* resolved */
    kat_flash_ctx ctx;
    int threads;
    int parallel;               /* enough work to be worth waking the threads */
    size_t g;                   /* query heads per key/value head */
    size_t tpn;                 /* query tiles per head: ceil(N / BQ) */
    size_t n_pad;               /* tpn * BQ */
    size_t nkt;                 /* key tiles per head: ceil(M / BK) */
    /* forward: units are query tiles; each is split into fwd_chunks key ranges */
    int stack;                  /* N < BQ with g > 1: tiles stack the g heads' rows */
    size_t fwd_units;
    size_t fwd_chunks;
    size_t fwd_thread_bytes;    /* per-thread scratch */
    size_t fwd_partial_floats;  /* per (unit, chunk) partial state when fwd_chunks > 1 */
    size_t fwd_bytes;
    /* backward: units are (b, key/value head, key chunk) */
    size_t bwd_chunks;
    size_t bwd_units;
    size_t bwd_thread_bytes;
    size_t bwd_part_bytes;      /* dq partials when bwd_chunks > 1 */
    size_t bwd_bytes;
} kat_flash_plan;

/* Below this many multiply-adds (B H N M D) a call runs on one thread: a parallel region
 * costs microseconds, far more under load, and tiny problems finish sooner alone. */
#define KAT_FLASH_PARALLEL_MIN ((double)(1 << 22))

/* Bytes rounded up to a multiple of 64 (sizes here are small; callers check products). */
static inline size_t kat_flash_round64(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

/* Carve `bytes` (rounded up to 64) from *cursor. */
static inline void *kat_flash_carve(unsigned char **cursor, size_t bytes)
{
    void *p = *cursor;
    *cursor += kat_flash_round64(bytes);
    return p;
}

/* Run the dense forward / backward on checked arguments (flash_forward.c, flash_backward.c). */
void kat__flash_dense_forward(const kat_flash_plan *plan, const kat_tensor *q,
                             const kat_tensor *k, const kat_tensor *v, const kat_tensor *o,
                             const kat_tensor *lse, unsigned char *work);
void kat__flash_dense_backward(const kat_flash_plan *plan, const kat_tensor *q,
                              const kat_tensor *k, const kat_tensor *v, const kat_tensor *o,
                              const kat_tensor *lse, const kat_tensor *dout,
                              const kat_tensor *dq, const kat_tensor *dk, const kat_tensor *dv,
                              unsigned char *work);

/* Fill a flash plan for a resolved desc (kernels and threads of now, workspace sizes). */
kat_status kat__flash_plan_init(kat_flash_plan *plan, const kat_attn_desc *desc);

/* Workspace sizes, computed at plan creation (overflow-checked). */
kat_status kat__flash_forward_layout(kat_flash_plan *plan);
kat_status kat__flash_backward_layout(kat_flash_plan *plan);

#endif
