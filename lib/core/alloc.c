/* Aligned allocation, with a process-wide fault-injection hook for the allocation tests. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "core/internal.h"

static atomic_size_t alloc_count;
static atomic_size_t fail_at;   /* 0: never fail */

size_t kat_debug_fail_alloc_at(size_t n)
{
    size_t made = atomic_exchange(&alloc_count, 0);
    atomic_store(&fail_at, n);
    return made;
}

void *kat_malloc(size_t bytes)
{
    size_t k = atomic_fetch_add(&alloc_count, 1) + 1;
    size_t target = atomic_load(&fail_at);
    if (target != 0 && k == target) {
        kat__fail(KAT_ENOMEM, "allocation of %zu bytes failed (injected failure #%zu)", bytes, k);
        return NULL;
    }
    size_t rounded;
    if (kat_add_overflow(bytes ? bytes : 1, KAT_ALIGN - 1, &rounded)) {
        kat__fail(KAT_ERANGE, "allocation of %zu bytes is too large", bytes);
        return NULL;
    }
    rounded &= ~(size_t)(KAT_ALIGN - 1);
    void *p = aligned_alloc(KAT_ALIGN, rounded);
    if (!p)
        kat__fail(KAT_ENOMEM, "allocation of %zu bytes failed", bytes);
    return p;
}

void *kat_calloc(size_t count, size_t size)
{
    size_t bytes;
    if (kat_mul_overflow(count, size, &bytes)) {
        kat__fail(KAT_ERANGE, "allocation of %zu x %zu bytes overflows", count, size);
        return NULL;
    }
    void *p = kat_malloc(bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void *kat__alloc_array(size_t count, size_t size, const char *what)
{
    size_t bytes;
    if (kat_mul_overflow(count, size, &bytes)) {
        kat__fail(KAT_ERANGE, "%s: %zu elements of %zu bytes overflow size_t", what, count, size);
        return NULL;
    }
    void *p = kat_malloc(bytes);
    if (!p)
        kat__fail(KAT_ENOMEM, "%s: cannot allocate %zu bytes", what, bytes);
    return p;
}

void kat_free(void *p) { free(p); }
